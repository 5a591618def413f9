//! Async delivery: submit, then poll `getResponse` with a growing interval under a budget.
//!
//! A server that does not serve async delivery answers the submit with a 400 on
//! `deliveryMethod`; the example prints it and exits.
//!
//! ```sh
//! MEDIAGATE_URL=http://127.0.0.1:8800 MEDIAGATE_API_KEY=key_… cargo run -p mediagate-client --example async_poll
//! ```

use mediagate_client::tasks::{Delivery, ImageInference};
use mediagate_client::{Client, PollPolicy};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::from_env()?;
    let task = ImageInference::new("a storm over the sea").size(512, 512).delivery(Delivery::Async);
    let submitted = match client.submit(task).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("submit failed: {e}");
            std::process::exit(1);
        }
    };
    println!("submitted {}; polling", submitted.task_uuid());
    let policy = PollPolicy::default()
        .initial_delay(Duration::from_secs(1))
        .interval(Duration::from_secs(1), 1.5, Duration::from_secs(10))
        .budget(Duration::from_secs(300));
    let images = client.wait_with(&submitted, &policy).await?;
    for img in images {
        println!("{} {}", img.image_uuid, img.image.url().unwrap_or("(inline)"));
    }
    Ok(())
}
