//! Issue 16, point 6: uploads are streamed to storage, never held in the server's memory, and
//! every account keeps them within a storage quota that it can see.

mod common;

use common::*;
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};

fn png_with_tail(tail: usize) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(64, 64, image::Rgb([10, 200, 30]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    let mut bytes = out.into_inner();
    // Bytes after IEND: the file is as large as we like while its header stays a small image.
    bytes.resize(bytes.len() + tail, 0);
    bytes
}

/// Creates a Runway upload target and sends `file` to it; returns the upload's status and body.
async fn runway_upload(base: &str, key: &str, file: Vec<u8>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let target: Value = client
        .post(format!("{base}/v1/uploads"))
        .bearer_auth(key)
        .header("X-Runway-Version", "2024-11-06")
        .json(&json!({"filename": "big.png", "type": "ephemeral"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("key", target["fields"]["key"].as_str().unwrap().to_string())
        .text("token", target["fields"]["token"].as_str().unwrap().to_string())
        .part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name("big.png").mime_str("image/png").unwrap(),
        );
    let r = client.post(target["uploadUrl"].as_str().unwrap()).multipart(form).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn hardening_a_large_upload_is_streamed_to_disk_not_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let key = server.banner_key().unwrap();
    let pid = server.child.id();
    // Warm up (first requests allocate pools and caches), then take the peak RSS so far.
    let (st, _) = runway_upload(&server.base, &key, png_with_tail(1_000)).await;
    assert_eq!(st, 204);
    let before = rss_kib(pid);
    let (st, body) = runway_upload(&server.base, &key, png_with_tail(150_000_000)).await;
    assert_eq!(st, 204, "{body}");
    let grew_mib = rss_kib(pid).saturating_sub(before) / 1024;
    eprintln!("server peak RSS {before} KiB before, +{grew_mib} MiB after a 150 MB upload");
    // Held in a Vec it was +150 MB at least (410 MB measured on the old code); streamed, the
    // peak moves by buffers only.
    assert!(grew_mib < 40, "the server's peak RSS grew by {grew_mib} MiB for a 150 MB upload");
}

#[tokio::test]
async fn hardening_uploads_stay_within_the_account_storage_quota_and_it_is_visible() {
    let s = TestServer::start_with(|c| {
        c.uploads.quota_files_per_account = 2;
        c.uploads.quota_bytes_per_account = 0;
    })
    .await;
    let small = |n: u8| {
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([n, 0, 0]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        use base64::Engine as _;
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(out.into_inner())
        )
    };
    let mut first = String::new();
    for n in 0..2 {
        let (st, v) =
            s.post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": small(n)}])).await;
        assert_eq!(st, 200, "{v}");
        first = v["data"][0]["imageUUID"].as_str().unwrap().to_string();
    }
    // The third is refused with a catalog error that says what to do, and nothing is stored.
    let (st, v) =
        s.post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": small(9)}])).await;
    assert_eq!(st, 403, "{v}");
    let e = &v["errors"][0];
    assert_eq!(e["code"], "storageQuotaExceeded", "{v}");
    assert!(e["message"].as_str().unwrap().contains("delete"), "{v}");
    // The same quota holds for Runway uploads, answered in Runway's shape.
    let (status, v) = runway_upload(&s.base_url, &s.api_key, png_with_tail(0)).await;
    assert_eq!(status, 403);
    assert_eq!(v["code"], "storageQuotaExceeded", "{v}");
    let http = &s.http;
    // The account sees its usage and quota; so does the operator.
    let org: Value = http
        .get(format!("{}/v1/organization", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(org["usage"]["storage"]["uploads"], 2, "{org}");
    assert!(org["usage"]["storage"]["bytes"].as_u64().unwrap() > 0, "{org}");
    assert_eq!(org["tier"]["storage"], json!({"maxUploads": 2, "maxBytes": null}), "{org}");
    let admin = s.engine.admin().create_admin_key("ops").await.unwrap().1;
    let v: Value = http
        .get(format!("{}/admin/v1/accounts/default/storage", s.base_url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((v["uploads"].as_u64(), v["maxUploads"].as_u64()), (Some(2), Some(2)), "{v}");
    // Deleting one makes room again.
    let (st, v) = s
        .post(&json!([{"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "delete", "mediaUUID": first}]))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) =
        s.post(&json!([{"taskType": "imageUpload", "taskUUID": task_uuid(), "image": small(7)}])).await;
    assert_eq!(st, 200, "{v}");
}

/// A second of silence as a 16-bit mono WAV file.
fn wav() -> Vec<u8> {
    let data = vec![0u8; 16_000];
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8_000u32.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

#[tokio::test]
async fn hardening_a_media_storage_url_is_fetched_once_whatever_its_family() {
    use mediagate_testkit::asset_server::{AssetServer, Route};
    let assets = AssetServer::builder().host("assets.test").start().await;
    assets.route("/page.html", Route::ok("text/html", b"<html>not media</html>".to_vec()));
    assets.route("/sound.wav", Route::ok("audio/wav", wav()));
    let (host, ip, ca) = (assets.host().to_string(), assets.addr().ip(), assets.ca_file().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.assets.resolve.insert(host, vec![ip]);
        c.assets.allowed_networks = vec![ipnet::IpNet::from(ip)];
        c.assets.extra_ca_certs = vec![ca];
    })
    .await;
    let upload = |url: String| json!([{"taskType": "mediaStorage", "taskUUID": task_uuid(), "operation": "upload", "media": url}]);
    // Not media: refused after one request, not one per media family (three on the old code).
    let (st, v) = s.post(&upload(assets.url("/page.html"))).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["errors"][0]["code"], "assetContentType", "{v}");
    assert_eq!(
        assets.requests().len(),
        1,
        "{:?}",
        assets.requests().iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    // Audio, the last family tried: one HEAD and one GET (four requests on the old code).
    let (st, v) = s.post(&upload(assets.url("/sound.wav"))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"][0]["mediaType"], "audio/wav", "{v}");
    assert_eq!(assets.requests().len(), 3);
}
