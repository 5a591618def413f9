//! Several tasks in one request: each gets its own result or error.
//!
//! ```sh
//! MEDIAGATE_URL=http://127.0.0.1:8800 MEDIAGATE_API_KEY=key_… cargo run -p mediagate-client --example batch
//! ```

use mediagate_client::tasks::{ImageInference, Ping, Upscale};
use mediagate_client::{Batch, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;

    let mut batch = Batch::new();
    let ping = batch.push(Ping::new());
    let good = batch.push(ImageInference::new("a red fox in snow").size(256, 256).seed(7));
    // 100 px is not a multiple of 64 for the procedural model: this task fails on its own.
    let bad = batch.push(ImageInference::new("a fox with an odd width").size(100, 256));
    let results = client.run_batch(batch).await?;

    println!("pong: {}", results.get(&ping)?.pong);
    match results.get(&bad) {
        Ok(_) => println!("the odd width was accepted by this server"),
        Err(e) => println!("rejected as expected: {e}"),
    }
    let images = results.get(&good)?;
    println!("generated {} (seed {:?})", images[0].image_uuid, images[0].seed);

    // Outputs can be the input of later tasks by their imageUUID.
    let bigger = client.run(Upscale::new(&images[0].image_uuid).factor(2)).await?;
    println!("upscaled: {}", bigger.image.url().unwrap_or("(inline)"));
    Ok(())
}
