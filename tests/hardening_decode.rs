//! Issue 16, point 2: image decodes are bounded by their header, run off the async runtime and
//! share one memory budget. Over HTTP on loopback against a real server.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use image::ImageEncoder as _;
use mediagate_testkit::images::png_bomb;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

async fn poll(s: &TestServer, uuid: &str, budget: Duration) -> Value {
    let deadline = Instant::now() + budget;
    loop {
        let (st, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        assert_eq!(st, 200, "{b}");
        let item = b["data"][0].clone();
        if item["status"] != "processing" {
            return item;
        }
        assert!(Instant::now() < deadline, "task {uuid} still processing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn data_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", B64.encode(png))
}

fn assert_bomb_refused(error: &Value, parameter: &str) {
    assert_eq!(error["code"], "assetDimensions", "{error}");
    assert_eq!(error["parameter"], parameter, "{error}");
    let m = error["message"].as_str().unwrap();
    for part in
        ["8000x8000", "Rgba16", "512000000 bytes once decoded", "256000000 bytes", "assets.max_decoded_bytes"]
    {
        assert!(m.contains(part), "message lacks {part:?}: {m}");
    }
}

#[tokio::test]
async fn hardening_decode_bomb_upscale_input_is_refused_from_its_header() {
    let s = TestServer::start().await;
    let bomb = png_bomb(8000, 8000);
    assert!(bomb.len() < 2_000, "a few hundred bytes on the wire, 512 MB decoded: {}", bomb.len());
    let before = s.balance("default").await;
    let (st, b) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": data_uri(&bomb),
                       "upscaleFactor": 2}]))
        .await;
    assert_eq!(st, 400, "{b}");
    assert_bomb_refused(&b["errors"][0], "inputImage");
    assert_eq!(s.balance("default").await, before, "nothing is charged for a refused input");
}

#[tokio::test]
async fn hardening_decode_bomb_first_frame_is_refused_from_its_header() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let before = s.balance("default").await;
    let (st, b) = s
        .post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "it moves",
                       "width": 256, "height": 256, "duration": 1, "fps": 8,
                       "frameImages": [{"inputImage": data_uri(&png_bomb(8000, 8000)), "frame": "first"}]}]))
        .await;
    // Refused at once, or accepted and failed: either way with the asset's path, never decoded.
    let error = if st == 200 {
        let item = poll(&s, &u, Duration::from_secs(60)).await;
        assert_eq!(item["status"], "error", "{item}");
        item["error"].clone()
    } else {
        assert_eq!(st, 400, "{b}");
        b["errors"][0].clone()
    };
    assert_bomb_refused(&error, "frameImages[0].inputImage");
    assert_eq!(s.balance("default").await, before, "nothing is charged for a refused input");
}

/// A real, allowed image: `side`×`side` 16-bit RGBA of one colour (251 MB decoded at 5600,
/// under the 256 MB limit) that compresses to a small data URI.
fn big_png(side: u32) -> Vec<u8> {
    let raw = vec![0x40u8; side as usize * side as usize * 8];
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    )
    .write_image(&raw, side, side, image::ExtendedColorType::Rgba16)
    .unwrap();
    out
}

/// Large first frames decode on the blocking pool, one at a time under a small budget, while
/// the runtime keeps answering: `/health` stays quick with one runtime worker thread (on the old code
/// each decode ran on a runtime thread and stalled it for the whole decode).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn hardening_health_answers_while_large_first_frames_decode() {
    let s = TestServer::start_with(|c| {
        // Room for one 5600×5600 16-bit decode (251 MB) at a time: the others queue for budget.
        c.providers.decode_memory_budget_bytes = 300_000_000;
        c.providers.cpu_workers = 1;
    })
    .await;
    let png = big_png(5600);
    // How long one such decode takes on this machine now: the yardstick for a stall, so that
    // a loaded machine slows the bound with the work.
    let one_decode = {
        let png = png.clone();
        tokio::task::spawn_blocking(move || {
            let t0 = Instant::now();
            drop(image::load_from_memory(&png).unwrap());
            t0.elapsed()
        })
        .await
        .unwrap()
    };
    let frame = data_uri(&png);
    // Probe /health from another thread (its own runtime) from before the first task until
    // the last one is done.
    let health = format!("{}/health", s.base_url);
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let (mut worst, mut probes) = (Duration::ZERO, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let r = http.get(&health).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    worst = worst.max(t0.elapsed());
                    probes += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (worst, probes)
            })
        })
    };
    let mut uuids = Vec::new();
    for _ in 0..4 {
        let u = task_uuid();
        let (st, b) = s
            .post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "it moves",
                           "width": 256, "height": 256, "duration": 1, "fps": 8, "deliveryMethod": "async",
                           "frameImages": [{"inputImage": frame, "frame": "first"}]}]))
            .await;
        assert_eq!(st, 200, "{b}");
        uuids.push(u);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    for u in &uuids {
        let item = poll(&s, u, deadline.saturating_duration_since(Instant::now())).await;
        assert_eq!(item["status"], "success", "{item}");
    }
    stop.store(true, Ordering::Relaxed);
    let (worst, probes) = prober.join().unwrap();
    eprintln!("{probes} probes, worst {worst:?}; one decode takes {one_decode:?}");
    assert!(probes >= 3, "the decodes took long enough to probe: {probes}");
    // A decode on the runtime's one thread stalls /health for all of it (the old code: about
    // one decode's time); off the runtime, /health waits for no decode.
    let bound = (one_decode * 4 / 5).max(Duration::from_millis(300));
    assert!(worst < bound, "/health took {worst:?} while decodes ran (bound {bound:?})");
}
