//! Data URIs, raw base64, stored UUIDs, URL-stage refusals through `Intake::resolve`, and
//! `assets check` (asset-safety.md §6 lines 1–4 and 14–16).

mod support;

use async_trait::async_trait;
use base64::Engine as _;
use mediagate_assets::url_check::NOT_HTTPS_MESSAGE;
use mediagate_assets::{
    AssetKind, AssetRequest, AssetSource, Intake, IntakeConfig, StoredAsset, StoredAssets, check_command,
};
use mediagate_core::{ErrorCode, ParamPath};
use support::asset_server::{AssetServer, Route};
use support::*;
use uuid::Uuid;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn uri(media: &str, b: &[u8]) -> String {
    format!("data:{media};base64,{}", b64(b))
}

fn intake() -> Intake {
    Intake::new(IntakeConfig::default()).unwrap()
}

const UNSUPPORTED: &str =
    "Unsupported asset type. Data URIs must include the content type of the value they encode.";

#[tokio::test]
async fn valid_data_uris_of_each_kind() {
    let i = intake();
    for (media, bytes, kind, canonical) in [
        ("image/png", png(64, 48), AssetKind::Image, "image/png"),
        ("image/jpg", jpeg(64, 48), AssetKind::Image, "image/jpeg"),
        ("image/webp", webp(64, 48), AssetKind::Image, "image/webp"),
        ("video/mp4", mp4(640, 360), AssetKind::Video, "video/mp4"),
        ("audio/mpeg", mp3(), AssetKind::Audio, "audio/mpeg"),
        ("audio/wav", wav(), AssetKind::Audio, "audio/wav"),
    ] {
        let a = i.resolve(&uri(media, &bytes), &req(kind)).await.unwrap();
        assert_eq!(a.bytes, bytes, "{media}");
        assert_eq!(a.media_type, canonical);
        assert_eq!(a.source, AssetSource::DataUri);
    }
}

#[tokio::test]
async fn malformed_data_uris() {
    let i = intake();
    for s in [
        "data:image/png;base64".to_string(),
        format!("data:image/png;base64;{}", b64(&png(2, 2))),
        "data:image/png;base64,!!!notbase64!!!".to_string(),
        "data:image/png,%89PNG%0D%0A".to_string(),
        "data:image/png;base64,".to_string(),
    ] {
        assert_err(
            i.resolve(&s, &req(AssetKind::Image)).await,
            ErrorCode::InvalidDataUri,
            "Invalid data URI.…",
        );
    }
}

#[tokio::test]
async fn missing_or_unsupported_media_types() {
    let i = intake();
    let p = png(4, 4);
    assert_err(
        i.resolve(&format!("data:;base64,{}", b64(&p)), &req(AssetKind::Image)).await,
        ErrorCode::UnsupportedAssetType,
        UNSUPPORTED,
    );
    assert_err(
        i.resolve(&format!("data:base64,{}", b64(&p)), &req(AssetKind::Image)).await,
        ErrorCode::UnsupportedAssetType,
        UNSUPPORTED,
    );
    for media in ["image/gif", "text/plain", "application/octet-stream", "video/mp4", "image/svg+xml"] {
        let e = assert_err(
            i.resolve(&uri(media, &p), &req(AssetKind::Image)).await,
            ErrorCode::UnsupportedAssetType,
            &format!("{UNSUPPORTED}…"),
        );
        assert!(e.message.contains(&format!("\"{media}\" is not accepted for images")), "{}", e.message);
    }
}

#[tokio::test]
async fn data_uri_limits_are_measured_on_the_uri_as_sent() {
    let i = intake();
    // 5,000,000 characters exactly pass the size rule (and then fail on content, proving the
    // size rule let them through); one more is refused before decoding.
    let head = "data:image/png;base64,";
    let at = format!("{head}{}", "A".repeat(5_000_000 - head.len()));
    let e = i.resolve(&at, &req(AssetKind::Image)).await.unwrap_err();
    assert_ne!(e.code, ErrorCode::AssetTooLarge);
    let over = format!("{at}A");
    assert_err(
        i.resolve(&over, &req(AssetKind::Image)).await,
        ErrorCode::AssetTooLarge,
        "Asset size exceeds 5.0MB.",
    );
    for kind in [AssetKind::Video, AssetKind::Audio] {
        let head = format!("data:{}/x;base64,", kind.as_str());
        let over = format!("{head}{}", "A".repeat(16_000_001 - head.len()));
        assert_err(
            i.resolve(&over, &req(kind)).await,
            ErrorCode::AssetTooLarge,
            "Asset size exceeds 16.0MB.",
        );
    }
    // A real image whose encoding crosses a configured limit.
    let c = IntakeConfig { data_uri_image_max_bytes: 100, ..Default::default() };
    let small = Intake::new(c).unwrap();
    let u = uri("image/png", &png(64, 64));
    assert!(u.len() > 100);
    assert_err(
        small.resolve(&u, &req(AssetKind::Image)).await,
        ErrorCode::AssetTooLarge,
        "Asset size exceeds 0.0MB.",
    );
}

#[tokio::test]
async fn data_uri_content_checks() {
    let i = intake();
    assert_err(
        i.resolve(&uri("image/jpeg", &png(10, 10)), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentMismatch,
        "The asset was declared as image/jpeg but its bytes are PNG.",
    );
    assert_err(
        i.resolve(&uri("image/png", b"<html><script>alert(1)</script></html>"), &req(AssetKind::Image)).await,
        ErrorCode::AssetContentMismatch,
        "The asset was declared as image/png but its bytes are not a recognised media format.",
    );
    assert_err(
        i.resolve(&uri("image/png", &png_header(9000, 100)), &req(AssetKind::Image)).await,
        ErrorCode::AssetDimensions,
        "Invalid asset dimensions. Height and width must not exceed 8000px. Got 9000x100.",
    );
    assert_err(
        i.resolve(&uri("image/png", &png_header(320, 100)), &req(AssetKind::Image)).await,
        ErrorCode::AssetAspectRatio,
        "Invalid asset aspect ratio. width / height ratio must be between 0.5 and 2. Got 3.2.",
    );
    // Video has no default aspect rule, only the model's.
    let v = uri("video/mp4", &mp4(3000, 100));
    i.resolve(&v, &req(AssetKind::Video)).await.unwrap();
    let mut r = req(AssetKind::Video);
    r.aspect = Some((0.5, 2.0));
    assert_err(
        i.resolve(&v, &r).await,
        ErrorCode::AssetAspectRatio,
        "Invalid asset aspect ratio. width / height ratio must be between 0.5 and 2. Got 30.",
    );
}

#[tokio::test]
async fn raw_base64_is_sniffed() {
    let i = intake();
    let p = png(20, 20);
    let a = i.resolve(&b64(&p), &req(AssetKind::Image)).await.unwrap();
    assert_eq!((a.media_type.as_str(), a.source), ("image/png", AssetSource::Base64));
    let e = assert_err(
        i.resolve(&b64(&mp4(10, 10)), &req(AssetKind::Image)).await,
        ErrorCode::UnsupportedAssetType,
        "Unsupported asset type. The base64 data is MP4…",
    );
    assert!(e.message.contains("image/jpeg, image/jpg, image/png, image/webp"));
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    assert_err(
        i.resolve(&b64(gif), &req(AssetKind::Image)).await,
        ErrorCode::UnsupportedAssetType,
        "Unsupported asset type. The base64 data is GIF…",
    );
    assert_err(
        i.resolve("example.com/a.png", &req(AssetKind::Image)).await,
        ErrorCode::InvalidDataUri,
        "Invalid data URI. The asset is neither a data URI, base64 data, an HTTPS URL nor the UUID of an upload or output.",
    );
    let a = i.resolve(&b64(&mp4(640, 480)), &req(AssetKind::Video)).await.unwrap();
    assert_eq!(a.media_type, "video/mp4");
}

struct OneFile(Uuid, StoredAsset);

#[async_trait]
impl StoredAssets for OneFile {
    async fn load(&self, account: i64, uuid: Uuid) -> Option<StoredAsset> {
        (account == 7 && uuid == self.0).then(|| self.1.clone())
    }
}

#[tokio::test]
async fn uuids_name_stored_files_of_the_right_kind() {
    let i = intake();
    let id = Uuid::new_v4();
    let store = OneFile(id, StoredAsset { bytes: png(30, 20), media_type: "image/png".into() });
    let a = i.resolve(&id.to_string(), &req_with(AssetKind::Image, &store)).await.unwrap();
    assert_eq!((a.width, a.height, a.source), (Some(30), Some(20), AssetSource::Stored(id)));
    let other = Uuid::new_v4();
    assert_err(
        i.resolve(&other.to_string(), &req_with(AssetKind::Image, &store)).await,
        ErrorCode::AssetNotFound,
        &format!("No upload or output with UUID {other} exists for this account (it may have expired)."),
    );
    assert_err(
        i.resolve(&id.to_string(), &req_with(AssetKind::Video, &store)).await,
        ErrorCode::UnsupportedAssetType,
        &format!(
            "Unsupported asset type. The stored file {id} is image/png, which is not accepted as a video here."
        ),
    );
}

#[tokio::test]
async fn url_stage_refusals_name_the_parameter_path() {
    let i = intake();
    let path = ParamPath::key("inputs").child("referenceImages").index(2);
    let r = AssetRequest {
        kind: AssetKind::Image,
        param: path.clone(),
        aspect: None,
        account_id: 1,
        stored: &NO_STORE,
    };
    for (u, code, msg) in [
        ("http://example.com/a.png", ErrorCode::InvalidAssetUrl, NOT_HTTPS_MESSAGE),
        ("ftp://example.com/a.png", ErrorCode::InvalidAssetUrl, NOT_HTTPS_MESSAGE),
        ("file:///etc/passwd", ErrorCode::InvalidAssetUrl, NOT_HTTPS_MESSAGE),
        ("https://11.22.33.44/foo/bar", ErrorCode::InvalidAssetUrl, "URLs must be hosted on a domain."),
        ("https://2130706433/", ErrorCode::InvalidAssetUrl, "URLs must be hosted on a domain."),
        ("https://0x7f.1/", ErrorCode::InvalidAssetUrl, "URLs must be hosted on a domain."),
        ("https://[::ffff:127.0.0.1]/", ErrorCode::InvalidAssetUrl, "URLs must be hosted on a domain."),
        ("https://[fe80::1%25eth0]/", ErrorCode::InvalidAssetUrl, "URLs must be hosted on a domain."),
        (
            "https://user:pw@example.com/a.png",
            ErrorCode::InvalidAssetUrl,
            "Invalid URL. URLs must not contain a username or password.",
        ),
        (
            "https://localhost./a.png",
            ErrorCode::AssetHostBlocked,
            "URLs must be hosted on a public domain: \"localhost\" names this machine or an internal service.",
        ),
        (
            "https://metadata.google.internal/computeMetadata/v1/",
            ErrorCode::AssetHostBlocked,
            "URLs must be hosted on a public domain: \"metadata.google.internal\" names this machine or an internal service.",
        ),
        (
            "https://exa mple.com/",
            ErrorCode::InvalidAssetUrl,
            "Invalid URL. The URL cannot be parsed: invalid international domain name.",
        ),
    ] {
        let e = i.resolve(u, &r).await.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (code, msg), "{u}");
        assert_eq!(e.parameter.unwrap().first(), Some(&path));
    }
    let long = format!("https://example.com/{}", "a".repeat(2030));
    let e = i.resolve(&long, &r).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidAssetUrl);
    assert_eq!(e.message, "Invalid URL. URLs must be at most 2048 characters long; this one has 2050.");
}

// ---------------------------------------------------------------- assets check

async fn run_check(config: IntakeConfig, input: &str, kind: AssetKind, json: bool) -> (i32, String) {
    let mut out: Vec<u8> = Vec::new();
    let code = check_command(config, input, kind, json, &mut out).await;
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn check_a_url_prints_every_step() {
    let s = AssetServer::start().await;
    s.route("/a.png", Route::ok("image/png", png(300, 200)));
    let (code, out) = run_check(config_for(&s), &s.url("/a.png"), AssetKind::Image, false).await;
    assert_eq!(code, 0, "{out}");
    for needle in [
        "reference: URL",
        &format!("[ok] URL: {}", s.url("/a.png")),
        "[..] DNS assets.test (configured override): 1 answer(s)",
        "[ok] 127.0.0.1: loopback, allowed by test-support configuration",
        "[ok] HEAD 200 from 127.0.0.1:",
        "TLS certificate verified",
        "content-type: image/png",
        "[ok] GET 200",
        "[ok] sniffed: PNG matches image/png",
        "[ok] dimensions: 300x200",
        "[ok] aspect ratio: 1.5000 (allowed 0.5 to 2)",
        "VALID: image/png, 300x200",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let body = png(300, 200).len();
    assert!(out.contains(&format!("[ok] body: {body} bytes received, Content-Length {body}")), "{out}");
    // Order: DNS before HEAD before GET before the verdict.
    let pos = |n: &str| out.find(n).unwrap();
    assert!(
        pos("DNS") < pos("HEAD 200") && pos("HEAD 200") < pos("GET 200") && pos("GET 200") < pos("VALID")
    );
}

#[tokio::test]
async fn check_reports_the_blocked_address_and_the_api_error() {
    let s = AssetServer::start().await;
    s.route("/a.png", Route::ok("image/png", png(30, 20)));
    let mut c = config_for(&s);
    c.resolve.insert("assets.test".into(), vec!["127.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap()]);
    let (code, out) = run_check(c, &s.url("/a.png"), AssetKind::Image, false).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[!!] 10.1.2.3: blocked, private network (RFC 1918)"), "{out}");
    assert!(out.contains("code:      assetHostBlocked"), "{out}");
    assert!(out.contains("parameter: asset"), "{out}");
    assert!(out.contains("hint:      Host the asset on a publicly reachable address"), "{out}");
    assert_eq!(s.connections(), 0);
}

#[tokio::test]
async fn check_json_lines_end_with_the_result() {
    let s = AssetServer::start().await;
    s.route("/a", Route::ok("image/png", png(10, 10)).with_status(404));
    let (code, out) = run_check(config_for(&s), &s.url("/a"), AssetKind::Image, true).await;
    assert_eq!(code, 1);
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let steps: Vec<&str> = lines.iter().map(|v| v["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["reference", "urlChecked", "request", "dns", "response", "result"]);
    let last = lines.last().unwrap();
    assert_eq!(last["valid"], false);
    assert_eq!(last["error"]["code"], "assetHttpStatus");
    assert_eq!(last["error"]["message"], "Failed to fetch asset. Received HTTP response code 404");
    assert_eq!(last["error"]["parameter"], "asset");
    assert_eq!(lines[4]["status"], 404);
}

#[tokio::test]
async fn check_files_as_data_uris_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.bin"); // the extension says nothing
    std::fs::write(&ok, png(120, 100)).unwrap();
    let (code, out) = run_check(IntakeConfig::default(), ok.to_str().unwrap(), AssetKind::Image, false).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("reference: data URI") && out.contains("[ok] decoded: image/png declared"), "{out}");

    let wide = dir.path().join("wide.png");
    std::fs::write(&wide, png_header(9000, 100)).unwrap();
    let (code, out) =
        run_check(IntakeConfig::default(), wide.to_str().unwrap(), AssetKind::Image, false).await;
    assert_eq!(code, 1);
    assert!(out.contains("[!!] dimensions: 9000x100"), "{out}");
    assert!(
        out.contains(
            "message:   Invalid asset dimensions. Height and width must not exceed 8000px. Got 9000x100."
        ),
        "{out}"
    );
    assert!(out.contains("hint:      Resize the asset so that neither side exceeds 8000 px."), "{out}");

    let text = dir.path().join("notes.png");
    std::fs::write(&text, "just text").unwrap();
    let (code, out) =
        run_check(IntakeConfig::default(), text.to_str().unwrap(), AssetKind::Image, true).await;
    assert_eq!(code, 1);
    assert!(out.lines().last().unwrap().contains("unsupportedAssetType"), "{out}");

    let (code, out) = run_check(IntakeConfig::default(), "/no/such/file.png", AssetKind::Image, false).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no such file"));
    let (code, _) =
        run_check(IntakeConfig::default(), dir.path().to_str().unwrap(), AssetKind::Image, false).await;
    assert_eq!(code, 2, "a directory cannot be read as a file");
    let (code, _) =
        run_check(IntakeConfig::default(), &Uuid::new_v4().to_string(), AssetKind::Image, false).await;
    assert_eq!(code, 2);
    let bad = IntakeConfig { extra_ca_certs: vec![dir.path().join("missing.pem")], ..Default::default() };
    let (code, out) = run_check(bad, "https://example.com/a.png", AssetKind::Image, false).await;
    assert_eq!(code, 2, "{out}");
    // URL rules need no network.
    let (code, out) =
        run_check(IntakeConfig::default(), "http://example.com/a.png", AssetKind::Image, false).await;
    assert_eq!(code, 1);
    assert!(out.contains(&format!("message:   {NOT_HTTPS_MESSAGE}")), "{out}");
}
