//! Issue 16, point 5: shared pools are fair across accounts. Over HTTP on loopback against a
//! real server and a real (TLS) asset server.

use image::ImageEncoder as _;
use mediagate_testkit::asset_server::{AssetServer, Route};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::json;
use std::time::{Duration, Instant};

fn small_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(64, 64, image::Rgb([10, 120, 200]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), 64, 64, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// One fetch slot; account A queues four fetches of a slow URL, then account B fetches a fast
/// one. B gets the slot after A's first fetch instead of after all of A's (the old single
/// first-come queue made B wait for every one of them).
#[tokio::test]
async fn hardening_fetch_slots_are_fair_across_accounts() {
    let assets = AssetServer::builder().host("assets.test").start().await;
    let png = small_png();
    assets.route("/slow.png", Route::ok("image/png", png.clone()).header_delay(Duration::from_millis(1500)));
    assets.route("/fast.png", Route::ok("image/png", png));
    let (host, ip, ca) = (assets.host().to_string(), assets.addr().ip(), assets.ca_file().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.assets.resolve.insert(host, vec![ip]);
        c.assets.allowed_networks = vec![ipnet::IpNet::from(ip)];
        c.assets.extra_ca_certs = vec![ca];
        c.assets.max_concurrent_fetches = 1;
        c.assets.fetch_timeout_ms = 60_000;
    })
    .await;
    s.engine.admin().create_account("b", "1").await.unwrap();
    let b_key = s.create_key("b", &[]).await;
    let mut a_tasks = Vec::new();
    for _ in 0..4 {
        let u = task_uuid();
        let (st, b) = s
            .post(&json!([{"taskType": "upscale", "taskUUID": u, "inputImage": assets.url("/slow.png"),
                           "upscaleFactor": 2, "deliveryMethod": "async"}]))
            .await;
        assert_eq!(st, 200, "{b}");
        a_tasks.push(u);
    }
    // Let A's fetches take the slot and queue behind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let (st, b) = s
        .post_with_key(
            &b_key,
            &json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": assets.url("/fast.png"),
                     "upscaleFactor": 2}]),
        )
        .await;
    let b_took = t0.elapsed();
    assert_eq!(st, 200, "{b}");
    // A's last task is still waiting for its fetch when B's is done.
    let last = a_tasks.last().unwrap();
    let (_, r) = s.post(&json!([{"taskType": "getResponse", "taskUUID": last}])).await;
    assert_eq!(r["data"][0]["status"], "processing", "B ({b_took:?}) waited for all of A's fetches: {r}");
}

/// One CPU worker; account A queues three videos, then account B asks for one image. B's image
/// runs after A's current video instead of after all of A's (the old first-come queue made B
/// wait for every one of them).
#[tokio::test]
async fn hardening_cpu_workers_are_fair_across_accounts() {
    let s = TestServer::start_with(|c| c.providers.cpu_workers = 1).await;
    s.engine.admin().create_account("b", "1").await.unwrap();
    let b_key = s.create_key("b", &[]).await;
    let mut a_tasks = Vec::new();
    for _ in 0..3 {
        let u = task_uuid();
        let (st, b) = s
            .post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "a long pan",
                           "width": 1280, "height": 720, "duration": 2, "fps": 12,
                           "deliveryMethod": "async"}]))
            .await;
        assert_eq!(st, 200, "{b}");
        a_tasks.push(u);
    }
    // Let A's first video take the worker and the others queue behind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let (st, b) = s
        .post_with_key(
            &b_key,
            &json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a fox",
                     "width": 512, "height": 512}]),
        )
        .await;
    let b_took = t0.elapsed();
    assert_eq!(st, 200, "{b}");
    let last = a_tasks.last().unwrap();
    let (_, r) = s.post(&json!([{"taskType": "getResponse", "taskUUID": last}])).await;
    assert_eq!(r["data"][0]["status"], "processing", "B ({b_took:?}) waited for all of A's videos: {r}");
}

async fn settled(s: &TestServer, uuid: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (st, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        assert_eq!(st, 200, "{b}");
        if b["data"][0]["status"] != "processing" {
            return b["data"][0].clone();
        }
        assert!(Instant::now() < deadline, "task {uuid} still processing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Local work is priced by its size: the listed price pays for the reference size and less,
/// twice the work costs twice as much, and the charge is the cost reported by `includeCost`.
#[tokio::test]
async fn hardening_local_prices_follow_the_work() {
    let s = TestServer::start().await;
    // (request, expected cost in USD): video reference 5 s of 1280x720 at 24 fps for $0.005;
    // image reference 1024x1024 for $0.0006.
    let cases = [
        (
            json!({"taskType": "videoInference", "positivePrompt": "small", "width": 64, "height": 64,
                "duration": 1, "fps": 8}),
            0.005,
        ),
        (
            json!({"taskType": "videoInference", "positivePrompt": "big", "width": 1280, "height": 720,
                "duration": 10, "fps": 24}),
            0.01,
        ),
        (
            json!({"taskType": "imageInference", "positivePrompt": "small", "width": 512, "height": 512}),
            0.0006,
        ),
        (
            json!({"taskType": "imageInference", "positivePrompt": "big", "width": 2048, "height": 2048}),
            0.0024,
        ),
    ];
    for (mut task, cost) in cases {
        let cost: f64 = cost;
        let u = task_uuid();
        task["taskUUID"] = json!(u);
        task["includeCost"] = json!(true);
        let before = s.balance("default").await;
        let (st, b) = s.post(&json!([task])).await;
        assert_eq!(st, 200, "{b}");
        let item = settled(&s, &u).await;
        assert_eq!(item["status"], "success", "{item}");
        assert_eq!(item["cost"], json!(cost), "{task}");
        let charged = before - s.balance("default").await;
        assert_eq!(charged, (cost * 1e6).round() as i64, "the charge is the reported cost: {task}");
    }
}

use mediagate_testkit::images::png_data_uri;

/// An upscale is priced by its output size, which is known only once its input is read: it is
/// admitted at the listed price ($0.0002 for a 1024x1024 output and smaller) and the rest is
/// reserved before it runs. The charge is the reported cost; an account that can pay the listed
/// price but not the output's is refused before any work and keeps its balance.
#[tokio::test]
async fn hardening_an_upscale_is_priced_by_its_output_size() {
    let s = TestServer::start().await;
    let upscale = |input: &str, factor: u32| {
        json!({"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": input,
               "upscaleFactor": factor, "includeCost": true})
    };
    // (input side, factor, cost in USD): 256x256 x2 = 512x512, within the listed size;
    // 512x512 x4 = 2048x2048 = four times the reference.
    for (side, factor, cost) in [(256, 2, 0.0002), (512, 4, 0.0008)] {
        let before = s.balance("default").await;
        let (st, b) = s.post(&json!([upscale(&png_data_uri(side, side), factor)])).await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["data"][0]["cost"], json!(cost), "{side}x{side} x{factor}");
        let charged = before - s.balance("default").await;
        assert_eq!(charged, (cost * 1e6_f64).round() as i64, "the charge is the reported cost");
    }
    // $0.0005 pays the listed $0.0002 but not the $0.0008 of a 2048x2048 output.
    s.engine.admin().create_account("poor", "0.0005").await.unwrap();
    let key = s.create_key("poor", &[]).await;
    let (st, b) = s.post_with_key(&key, &json!([upscale(&png_data_uri(512, 512), 4)])).await;
    assert_eq!(st, 402, "{b}");
    let e = &b["errors"][0];
    assert_eq!(e["code"], "insufficientCredits", "{b}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("2048x2048") && message.contains("$0.0008"), "{message}");
    assert_eq!(s.balance("poor").await, 500, "refused before any work, nothing charged");
    // The listed-size upscale still runs for that account.
    let (st, b) = s.post_with_key(&key, &json!([upscale(&png_data_uri(256, 256), 2)])).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(s.balance("poor").await, 300);
}
