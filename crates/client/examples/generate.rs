//! Generates one image and prints its URL and cost.
//!
//! ```sh
//! MEDIAGATE_URL=http://127.0.0.1:8800 MEDIAGATE_API_KEY=key_… \
//!   cargo run -p mediagate-client --example generate -- "a lighthouse at dusk"
//! ```

use mediagate_client::Client;
use mediagate_client::tasks::ImageInference;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args().nth(1).unwrap_or_else(|| "a lighthouse at dusk".into());
    // MEDIAGATE_URL (default http://127.0.0.1:8800) and MEDIAGATE_API_KEY.
    let client = Client::from_env()?;
    let task = ImageInference::new(prompt).size(512, 512).include_cost(true);
    let task_uuid = mediagate_client::tasks::Task::task_uuid(&task);
    match client.run(task).await {
        Ok(images) => {
            for img in images {
                println!("imageUUID {}", img.image_uuid);
                println!("URL       {}", img.image.url().unwrap_or("(inline)"));
                println!("seed      {:?}", img.seed);
                println!("cost      ${}", img.cost.map(|c| c.to_string()).unwrap_or_else(|| "?".into()));
            }
            Ok(())
        }
        Err(e) => {
            // Display carries code, message, parameter and taskUUID: log it whole.
            eprintln!("task {task_uuid} failed: {e}");
            if let Some(doc) = e.api_error().and_then(|a| a.documentation.as_deref()) {
                eprintln!("see {doc}");
            }
            std::process::exit(1);
        }
    }
}
