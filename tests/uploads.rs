//! Runware uploads over real HTTP: `imageUpload` and `mediaStorage` store a validated asset and
//! return its UUID, usable in any asset field; uploads are kept `uploads.keep_after_use_secs`
//! after their last use, and `mediaStorage` deletes them.

use base64::Engine as _;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3 % 256) as u8, (y * 5 % 256) as u8, 40]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn upload_image(s: &TestServer) -> uuid::Uuid {
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": b64(&png(16, 16))}]))
        .await;
    assert_eq!(st, 200, "{b}");
    uuid::Uuid::parse_str(b["data"][0]["imageUUID"].as_str().unwrap()).unwrap()
}

async fn upscale(s: &TestServer, input: &str) -> (u16, Value) {
    s.post(
        &json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": input, "upscaleFactor": 2}]),
    )
    .await
}

#[tokio::test]
async fn image_upload_returns_a_uuid_usable_as_an_input() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": u,
                       "image": format!("data:image/png;base64,{}", b64(&png(64, 48)))}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let item = &b["data"][0];
    assert_eq!(
        (item["taskType"].as_str(), item["taskUUID"].as_str()),
        (Some("imageUpload"), Some(u.as_str()))
    );
    let id = item["imageUUID"].as_str().unwrap().to_string();
    // The upload is served and is the same image.
    let served = s.http.get(item["imageURL"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&served).unwrap().width(), 64);
    let (st, b) = upscale(&s, &id).await;
    assert_eq!(st, 200, "{b}");
    let out =
        s.http.get(b["data"][0]["imageURL"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(image::load_from_memory(&out).unwrap().height(), 96);
    // Raw base64 is accepted too; another account cannot use the upload.
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": b64(&png(8, 8))}]))
        .await;
    assert_eq!(st, 200, "{b}");
    s.engine.admin().create_account("other", "5").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let (st, b) = s
        .post_with_key(&other, &json!([{"taskType": "upscale", "taskUUID": task_uuid(), "inputImage": id}]))
        .await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("assetNotFound")), "{b}");
}

#[tokio::test]
async fn uploads_are_validated_like_every_asset() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": "data:image/png;base64,!!"}]))
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(
        (b["errors"][0]["code"].as_str(), b["errors"][0]["parameter"].as_str()),
        (Some("invalidDataUri"), Some("image"))
    );
    // A video is not an image.
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(),
                       "image": format!("data:video/mp4;base64,{}", b64(b"\0\0\0\x18ftypisom"))}]))
        .await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("unsupportedAssetType")), "{b}");
    let (st, b) = s
        .post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": "http://x.test/a.png"}]))
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["errors"][0]["message"], mediagate_assets::url_check::NOT_HTTPS_MESSAGE);
    let (st, b) = s.post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid()}])).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("missingParameter")), "{b}");
}

#[tokio::test]
async fn media_storage_uploads_any_family_and_deletes() {
    let s = TestServer::start().await;
    // A video the server made itself (videoInference is async: poll it), uploaded back.
    let u = task_uuid();
    s.post(&json!([{"taskType": "videoInference", "taskUUID": u, "positivePrompt": "loop", "width": 128,
                    "height": 128, "duration": 1, "fps": 4}]))
        .await;
    let url = loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
        if b["data"][0]["status"] == "success" {
            break b["data"][0]["videoURL"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    };
    let video = s.http.get(url).send().await.unwrap().bytes().await.unwrap().to_vec();
    let (st, b) = s
        .post(&json!([{"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "upload",
                       "media": format!("data:video/mp4;base64,{}", b64(&video))}]))
        .await;
    assert_eq!(st, 200, "{b}");
    let item = b["data"][0].clone();
    assert_eq!((item["operation"].as_str(), item["mediaType"].as_str()), (Some("upload"), Some("video/mp4")));
    let media = item["mediaUUID"].as_str().unwrap().to_string();
    let served = s.http.get(item["mediaURL"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(served.as_ref(), video.as_slice());
    // An image by raw base64, used as a first frame.
    let (_, b) = s
        .post(&json!([{"taskType": "mediaStorage", "taskUUID": task_uuid(), "media": b64(&png(32, 32))}]))
        .await;
    assert_eq!(b["data"][0]["mediaType"], "image/png", "{b}");
    let image = b["data"][0]["mediaUUID"].as_str().unwrap().to_string();
    let (st, b) = upscale(&s, &image).await;
    assert_eq!(st, 200, "{b}");

    let delete = |id: String| {
        let s = &s;
        async move {
            s.post(&json!([{"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "delete", "mediaUUID": id}]))
                .await
        }
    };
    let (st, b) = delete(image.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["operation"], "delete");
    let (st, b) = upscale(&s, &image).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("assetNotFound")), "{b}");
    let (st, b) = delete(image).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (404, Some("mediaNotFound")), "{b}");
    let (st, _) = delete(media).await;
    assert_eq!(st, 200);
    let (st, b) = s
        .post(&json!([{"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "rename", "media": "x"}]))
        .await;
    assert_eq!((st, b["errors"][0]["parameter"].as_str()), (400, Some("operation")), "{b}");
}

#[tokio::test]
async fn uploads_live_on_while_used_and_expire_when_not() {
    let s = TestServer::start_with(|c| c.uploads.keep_after_use_secs = 2).await;
    let used = upload_image(&s).await;
    let unused = upload_image(&s).await;
    let expiry = |id| {
        let e = s.engine.clone();
        async move { e.store().get_output(id).await.unwrap().unwrap().expires_at }
    };
    let first = expiry(used).await;
    // Each use restarts the count: used every second, it outlives its first expiry.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let (st, b) = upscale(&s, &used.to_string()).await;
        assert_eq!(st, 200, "{b}");
    }
    assert!(expiry(used).await >= first + 2500, "the expiry moved with each use");
    assert!(mediagate_store::now_ms() > first, "the first expiry has passed");
    // The unused one expired and is refused (and is not revived by the attempt).
    let (st, b) = upscale(&s, &unused.to_string()).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("assetNotFound")), "{b}");
}

#[tokio::test]
async fn a_resent_upload_returns_the_first_and_stores_no_second_copy() {
    let s = TestServer::start().await;
    let u = task_uuid();
    let body = json!([{"taskType": "imageUpload", "taskUUID": u, "image": b64(&png(24, 24))}]);
    let (st, first) = s.post(&body).await;
    assert_eq!(st, 200, "{first}");
    let (st, again) = s.post(&body).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(first["data"][0]["imageUUID"], again["data"][0]["imageUUID"]);
    assert_eq!(first["data"][0]["imageURL"], again["data"][0]["imageURL"]);
    // One stored file: the first upload's. Its task is on record, at no cost.
    let account = s.engine.store().account_by_name("default").await.unwrap().unwrap().id;
    let rec = s.engine.store().get_task(account, u.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (rec.status, rec.cost_micros, rec.results.len()),
        (mediagate_store::TaskStatus::Success, 0, 1)
    );
    assert_eq!(rec.results[0].output_uuid.to_string(), first["data"][0]["imageUUID"].as_str().unwrap());

    // The same taskUUID for another file is a conflict, and nothing is stored for it.
    let other = json!([{"taskType": "imageUpload", "taskUUID": u, "image": b64(&png(8, 8))}]);
    let (st, b) = s.post(&other).await;
    assert_eq!((st, b["errors"][0]["code"].as_str()), (400, Some("conflictTaskUUID")), "{b}");

    // mediaStorage alike.
    let m = task_uuid();
    let media = json!([{"taskType": "mediaStorage", "taskUUID": m, "operation": "upload",
                        "media": format!("data:image/png;base64,{}", b64(&png(12, 12)))}]);
    let (_, one) = s.post(&media).await;
    let (_, two) = s.post(&media).await;
    assert_eq!(one["data"][0]["mediaUUID"], two["data"][0]["mediaUUID"], "{one} {two}");
    assert!(one["data"][0]["mediaUUID"].is_string(), "{one}");

    // A refused upload stays refused when sent again with the same taskUUID.
    let bad =
        json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": "data:image/png;base64,@@@"}]);
    let (st1, b1) = s.post(&bad).await;
    let (st2, b2) = s.post(&bad).await;
    assert_eq!(st1, 400, "{b1}");
    assert_eq!((st2, b2["errors"][0]["code"].clone()), (st1, b1["errors"][0]["code"].clone()));
}
