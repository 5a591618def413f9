//! Task types over real HTTP: imageInference, upscale, getResponse; outputs, determinism,
//! idempotent replay and credits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

fn image(uuid: &str, extra: Value) -> Value {
    let mut t = json!({"taskType": "imageInference", "taskUUID": uuid, "positivePrompt": "a lighthouse at dusk",
                       "width": 128, "height": 64});
    for (k, v) in extra.as_object().unwrap() {
        t[k] = v.clone();
    }
    t
}

async fn one(s: &TestServer, task: Value) -> Value {
    let (st, b) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{b}");
    assert!(b.get("errors").is_none(), "{b}");
    b["data"][0].clone()
}

fn decode(item: &Value) -> image::DynamicImage {
    let bytes = B64.decode(item["imageBase64Data"].as_str().expect("base64 output")).unwrap();
    image::load_from_memory(&bytes).unwrap()
}

#[tokio::test]
async fn image_inference_returns_urls_that_serve_the_file() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let item = one(&s, image(&u, json!({"outputFormat": "WEBP", "includeCost": true}))).await;
    assert_eq!(item["taskType"], "imageInference");
    assert_eq!(item["taskUUID"], u);
    assert!(item["seed"].as_u64().unwrap() >= 1, "a seed is always returned");
    assert_eq!(item["cost"], 0.0006);
    let url = item["imageURL"].as_str().unwrap();
    assert_eq!(url, format!("{}/v1/outputs/{}.webp", s.base_url, item["imageUUID"].as_str().unwrap()));
    let r = s.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
    let len: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len(), len);
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (128, 64));
    // An unknown output and a wrong extension are 404 in JSON.
    let bad = url.replace(".webp", ".png");
    let r = s.http.get(&bad).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["errors"][0]["code"], "outputNotFound");
}

#[tokio::test]
async fn outputs_expire_after_their_ttl() {
    // File-backed outputs (inline threshold 0): the file exists, then is swept.
    let s = TestServer::start_with(|c| {
        c.outputs.min_ttl_secs = 1;
        c.outputs.inline_max_bytes = 0;
    })
    .await;
    let item = one(&s, image(&task_uuid(), json!({"ttl": 1}))).await;
    let url = item["imageURL"].as_str().unwrap().to_string();
    let uuid: uuid::Uuid = item["imageUUID"].as_str().unwrap().parse().unwrap();
    assert!(s.engine.outputs().path(uuid, "png").exists());
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Expired outputs are refused at once, and the sweeper deletes their files.
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(s.engine.sweep_outputs_once().await.unwrap(), 1);
    assert!(!s.engine.outputs().path(uuid, "png").exists());
    // Inline outputs (the default for small files) expire the same way, with no file at all.
    let s = TestServer::start_with(|c| c.outputs.min_ttl_secs = 1).await;
    let item = one(&s, image(&task_uuid(), json!({"ttl": 1}))).await;
    let uuid: uuid::Uuid = item["imageUUID"].as_str().unwrap().parse().unwrap();
    assert!(!s.engine.outputs().path(uuid, "png").exists(), "small outputs live in the store");
    let url = item["imageURL"].as_str().unwrap().to_string();
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(s.http.get(&url).send().await.unwrap().status(), 404);
    assert_eq!(s.engine.sweep_outputs_once().await.unwrap(), 1);
    assert!(s.engine.store().get_output(uuid).await.unwrap().is_none());
}

#[tokio::test]
async fn the_procedural_stand_in_is_deterministic() {
    let s = TestServer::start().await;
    let a = one(&s, image(&task_uuid(), json!({"seed": 1234, "outputType": "base64Data"}))).await;
    let b = one(&s, image(&task_uuid(), json!({"seed": 1234, "outputType": "base64Data"}))).await;
    let c = one(&s, image(&task_uuid(), json!({"seed": 1235, "outputType": "base64Data"}))).await;
    assert_eq!(a["imageBase64Data"], b["imageBase64Data"], "same inputs, byte-identical output");
    assert_ne!(a["imageUUID"], b["imageUUID"], "distinct tasks store distinct outputs");
    let (ia, ic) = (decode(&a).to_rgb8(), decode(&c).to_rgb8());
    let differing = ia.pixels().zip(ic.pixels()).filter(|(p, q)| p != q).count();
    assert!(differing > 128 * 64 / 4, "another seed is visibly different ({differing} px)");
}

#[tokio::test]
async fn number_results_gives_each_result_its_own_seed_and_item() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let (st, b) =
        s.post(&json!([image(&u, json!({"numberResults": 3, "seed": 10, "outputType": "dataURI"}))])).await;
    assert_eq!(st, 200);
    let data = b["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let seeds: Vec<u64> = data.iter().map(|d| d["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, vec![10, 11, 12]);
    for d in data {
        assert_eq!(d["taskUUID"], u);
        assert!(d["imageDataURI"].as_str().unwrap().starts_with("data:image/png;base64,iVBOR"));
    }
    assert_eq!(s.balance("default").await, 10_000_000 - 3 * 600);
}

#[tokio::test]
async fn replaying_a_task_uuid_returns_the_stored_result_and_charges_once() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let task = image(&u, json!({"outputType": "base64Data"}));
    let first = one(&s, task.clone()).await;
    let after_first = s.balance("default").await;
    assert_eq!(after_first, 10_000_000 - 600);
    let again = one(&s, task.clone()).await;
    assert_eq!(first, again, "a replay returns the stored result");
    assert_eq!(s.balance("default").await, after_first, "a replay is not charged");
    // Concurrent duplicates also collapse into one task.
    let u2 = task_uuid();
    let t2 = image(&u2, json!({}));
    let body2 = json!([t2]);
    let (a, b) = tokio::join!(s.post(&body2), s.post(&body2));
    assert_eq!(a.1["data"][0]["imageUUID"], b.1["data"][0]["imageUUID"]);
    assert_eq!(s.balance("default").await, after_first - 600);
    // The same UUID with another body is a conflict, not a replay.
    let (st, b) = s.post(&json!([image(&u, json!({"seed": 99}))])).await;
    assert_eq!(st, 400);
    assert_eq!(b["errors"][0]["code"], "conflictTaskUUID");
    assert_eq!(b["errors"][0]["parameter"], "taskUUID");
    // taskUUIDs are per account: another account may use the same one.
    s.engine.admin().create_account("other", "1").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let (st, _) = s.post_with_key(&other, &json!([task])).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn get_response_returns_stored_tasks_of_the_same_account_only() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let item = one(&s, image(&u, json!({}))).await;
    let got = one(&s, json!({"taskType": "getResponse", "taskUUID": u})).await;
    assert_eq!(got["status"], "success");
    assert_eq!(got["taskType"], "imageInference");
    assert_eq!(got["imageUUID"], item["imageUUID"]);
    assert_eq!(got["imageURL"], item["imageURL"]);
    // A failed task's stored error is returned as an error item.
    let bad = task_uuid();
    let pixel = B64.encode(include_bytes!("fixtures/wide_200x50.png"));
    let (st, _) = s.post(&json!([{"taskType": "upscale", "taskUUID": bad, "inputImage": pixel}])).await;
    assert_eq!(st, 400);
    let got = one(&s, json!({"taskType": "getResponse", "taskUUID": bad})).await;
    assert_eq!(got["status"], "error");
    assert_eq!(got["error"]["code"], "assetAspectRatio");
    // Another account cannot see it.
    s.engine.admin().create_account("other", "0").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let (st, b) = s.post_with_key(&other, &json!([{"taskType": "getResponse", "taskUUID": u}])).await;
    assert_eq!(st, 404);
    assert_eq!(b["errors"][0]["code"], "taskNotFound");
    assert_eq!(b["errors"][0]["taskType"], "getResponse");
}

#[tokio::test]
async fn upscale_accepts_data_uris_base64_and_earlier_outputs() {
    let s = TestServer::start().await;
    let src = one(&s, image(&task_uuid(), json!({"outputType": "base64Data", "seed": 5}))).await;
    let b64 = src["imageBase64Data"].as_str().unwrap().to_string();
    let inputs =
        [format!("data:image/png;base64,{b64}"), b64.clone(), src["imageUUID"].as_str().unwrap().to_string()];
    for (i, input) in inputs.iter().enumerate() {
        let tt = if i == 1 { "imageUpscale" } else { "upscale" };
        let u = task_uuid();
        let item = one(
            &s,
            json!({"taskType": tt, "taskUUID": u, "inputImage": input, "upscaleFactor": 3, "outputType": "base64Data",
                   "outputFormat": "JPG", "outputQuality": 80, "includeCost": true}),
        )
        .await;
        assert_eq!(item["taskType"], tt, "the task type is echoed as sent");
        assert_eq!(item["cost"], 0.0002);
        assert!(item.get("seed").is_none());
        let out = decode(&item);
        assert_eq!((out.width(), out.height()), (384, 192), "input {i}");
    }
    // Bad inputs fail with asset codes on `inputImage`, and are refunded.
    let before = s.balance("default").await;
    for (input, code) in [
        ("data:image/png;base64,@@@", "invalidDataUri"),
        ("data:;base64,iVBORw0KGgo=", "unsupportedAssetType"),
        ("00000000-0000-4000-8000-000000000000", "assetNotFound"),
        ("aGVsbG8gd29ybGQ=", "unsupportedAssetType"),
        (&format!("data:image/jpeg;base64,{b64}"), "assetContentMismatch"),
    ] {
        let (st, b) =
            s.post(&json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": input}])).await;
        assert_eq!(st, 400, "{b}");
        assert_eq!(b["errors"][0]["code"], code, "{input}: {b}");
        assert_eq!(b["errors"][0]["parameter"], "inputImage");
    }
    assert_eq!(s.balance("default").await, before, "failed tasks are refunded");
    // An output larger than the model allows is refused before any resampling, and not charged.
    let s2 = TestServer::start_with(|c| {
        let mut m = mediagate_core::model::builtin_models().remove(1);
        m.bounds.upscale_output_max = 300;
        c.models.push(m);
    })
    .await;
    let (st, b) = s2
        .post(
            &json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": b64, "upscaleFactor": 3}]),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["errors"][0]["parameter"], "upscaleFactor");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("exceed 300px"));
    assert_eq!(s2.balance("default").await, 10_000_000);
}

#[tokio::test]
async fn an_unaffordable_task_is_402_before_any_work() {
    let s = TestServer::start_with(|c| c.bootstrap.initial_credit_usd = "0.0010".into()).await;
    let (st, b) = s.post(&json!([image(&task_uuid(), json!({"numberResults": 2}))])).await;
    assert_eq!(st, 402, "{b}");
    assert_eq!(b["errors"][0]["code"], "insufficientCredits");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("$0.0012"));
    assert_eq!(s.balance("default").await, 1000);
    assert_eq!(s.engine.store().count_tasks(None, None).await.unwrap(), 0, "nothing was recorded");
    one(&s, image(&task_uuid(), json!({}))).await;
    assert_eq!(s.balance("default").await, 400);
}

#[tokio::test]
async fn parallel_spending_never_overdraws() {
    // $0.0030 pays for exactly five results at $0.0006.
    let s = TestServer::start_with(|c| c.bootstrap.initial_credit_usd = "0.0030".into()).await;
    let tasks = (0..60).map(|_| {
        let body = json!([image(&task_uuid(), json!({"width": 64, "height": 64}))]);
        let s = &s;
        async move { s.post(&body).await }
    });
    let results = futures::future::join_all(tasks).await;
    let ok = results.iter().filter(|(st, _)| *st == 200).count();
    let refused = results
        .iter()
        .filter(|(st, b)| *st == 402 && b["errors"][0]["code"] == "insufficientCredits")
        .count();
    assert_eq!((ok, refused), (5, 55));
    assert_eq!(s.balance("default").await, 0);
    let ledger = s.engine.admin().credits("default", 100).await.unwrap().1;
    let sum: i64 = ledger.iter().map(|e| e.amount_micros).sum();
    assert_eq!(sum, 0, "grants minus charges equals the balance");
}
