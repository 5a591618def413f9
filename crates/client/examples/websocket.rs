//! The same typed API over one WebSocket: authenticate, generate, upscale, ping, close.
//!
//! ```sh
//! MEDIAGATE_URL=ws://127.0.0.1:8800 MEDIAGATE_API_KEY=key_… \
//!   cargo run -p mediagate-client --example websocket -- "a lighthouse at dusk"
//! ```
//!
//! An `http://` URL works too: `.websocket()` turns it into `ws://`. If the socket drops while a
//! task runs, the client reconnects with backoff, resumes the session by its
//! `connectionSessionUUID` and still returns the result (charged once).

use mediagate_client::tasks::{ImageInference, Upscale};
use mediagate_client::{Client, RetryPolicy};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prompt = std::env::args().nth(1).unwrap_or_else(|| "a lighthouse at dusk".into());
    let url = std::env::var("MEDIAGATE_URL").unwrap_or_else(|_| "ws://127.0.0.1:8800".into());
    let key = std::env::var("MEDIAGATE_API_KEY").map_err(|_| "MEDIAGATE_API_KEY is not set")?;
    let client = Client::builder()
        .base_url(url)
        .api_key(key)
        .websocket()
        // Keepalive every 20 s; a socket silent for 5 s after a ping is replaced.
        .ws_ping(Some(Duration::from_secs(20)), Duration::from_secs(5))
        // Reconnect up to 6 times within a minute (exponential backoff, full jitter).
        .reconnect(
            RetryPolicy::default()
                .max_attempts(6)
                .backoff(Duration::from_millis(250), Duration::from_secs(10))
                .total_deadline(Duration::from_secs(60)),
        )
        .build()?;

    let session = client.authenticate().await?;
    println!("session   {}", session.connection_session_uuid.as_deref().unwrap_or("?"));

    let images = client.run(ImageInference::new(prompt).size(512, 512).include_cost(true)).await?;
    let image = &images[0];
    println!("imageUUID {}", image.image_uuid);
    println!("URL       {}", image.image.url().unwrap_or("(inline)"));
    println!("cost      ${}", image.cost.map(|c| c.to_string()).unwrap_or_else(|| "?".into()));

    let up = client.run(Upscale::new(&image.image_uuid).factor(2)).await?;
    println!("upscaled  {}", up.image.url().unwrap_or("(inline)"));

    println!("pong      {}", client.ping().await?.pong);
    // A close frame; dropping the last clone of the client would do it too.
    client.close().await;
    Ok(())
}
