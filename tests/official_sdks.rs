//! The official SDKs against a real mediagate process.
//!
//! Runware (Python `runware`, JavaScript `@runware/sdk-js`), over WebSocket: authenticate,
//! imageInference with the procedural stand-in, upscale, an error with its code, message and
//! taskUUID, and reconnection after the server goes away and comes back.
//!
//! Runway (Python `runwayml`, Node `@runwayml/sdk`), over REST with `base_url` pointed at
//! mediagate: text_to_image waited for with the SDK's poller, image_to_video with a data-URI
//! promptImage, an ephemeral upload used by its runway:// URI, AuthenticationError for a bad key,
//! BadRequestError with the asset's issue path, and tasks.delete cancelling a running task.
//!
//! CI installs the SDKs (see .ci/run). Elsewhere a missing interpreter or package skips the
//! test with a message; with CI=true it fails instead.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether `python3` can import `modules` (e.g. "runware, websockets"); skips (or, under CI,
/// fails) with `install` as the hint when it cannot.
fn have_python(modules: &str, install: &str) -> bool {
    let have = Command::new("python3").args(["-c", &format!("import {modules}")]).output();
    if matches!(&have, Ok(o) if o.status.success()) {
        return true;
    }
    skip_or_fail(&format!("python3 with {modules} is not installed ({install})"));
    false
}

/// Whether node and the npm package `package` (under tests/sdk) are there; skips (or, under
/// CI, fails) when not.
fn have_node_package(dir: &Path, package: &str) -> bool {
    if Command::new("node").arg("--version").output().is_err() {
        skip_or_fail("node is not installed");
        return false;
    }
    if !dir.join("node_modules").join(package).exists() {
        skip_or_fail(&format!("{package} is not installed (run `npm ci` in tests/sdk)"));
        return false;
    }
    true
}

const RUNWARE_PY: (&str, &str) = ("runware, websockets", "pip install runware==0.5.24");
const RUNWAY_PY: (&str, &str) = ("runwayml, httpx", "pip install runwayml==5.24.0");

/// Runs an SDK script against a server, restarting the server when the script asks.
fn drive(program: &str, args: &[&str], cwd: &Path) {
    drive_with(program, args, cwd, &[]);
}

/// [`drive`] with environment variables for the server and the script (`MEDIAGATE_CONFIG`, …).
fn drive_with(program: &str, args: &[&str], cwd: &Path, envs: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut server = Server::start_on(dir.path(), &listen, envs, &[]);
    let key = server.banner_key().unwrap();
    let mut script = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("MG_URL", format!("ws://{listen}/v1"))
        .env("MG_HTTP", format!("http://{listen}"))
        .env("MG_KEY", &key)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the SDK script");
    let stderr = script.stderr.take().unwrap();
    let err_log = std::thread::spawn(move || {
        let mut s = String::new();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            s.push_str(&l);
            s.push('\n');
        }
        s
    });
    let mut stdin = script.stdin.take().unwrap();
    let mut ok = false;
    for line in BufReader::new(script.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if line == "RESTART" {
            // The server goes away (every socket drops) and comes back on the same address.
            server.signal("-TERM");
            assert!(server.wait().success());
            server = Server::start_on(dir.path(), &listen, envs, &[]);
            writeln!(stdin, "go").unwrap();
        } else if line == "OK" {
            ok = true;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(200);
    let status = loop {
        if let Some(s) = script.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the SDK script hung");
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = err_log.join().unwrap();
    assert!(
        status.success() && ok,
        "SDK script failed ({status}):\n{err}\nserver log:\n{}",
        server.log_text()
    );
    drop(server);
}

#[test]
fn the_runware_python_sdk_works_against_mediagate() {
    if !have_python(RUNWARE_PY.0, RUNWARE_PY.1) {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    drive("python3", &["runware_sdk.py"], &dir);
}

#[test]
fn the_runware_python_sdk_reports_a_wrong_key_promptly() {
    if !have_python(RUNWARE_PY.0, RUNWARE_PY.1) {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    drive("python3", &["runware_wrong_key.py"], &dir);
}

#[test]
fn the_runware_js_sdk_works_against_mediagate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    if !have_node_package(&dir, "@runware/sdk-js") {
        return;
    }
    drive("node", &["runware_sdk.mjs"], &dir);
}

#[test]
fn the_runway_python_sdk_works_against_mediagate() {
    if !have_python(RUNWAY_PY.0, RUNWAY_PY.1) {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    drive("python3", &["runway_sdk.py"], &dir);
}

#[test]
fn the_runway_node_sdk_works_against_mediagate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    if !have_node_package(&dir, "@runwayml/sdk") {
        return;
    }
    drive("node", &["runway_sdk.mjs"], &dir);
}

#[test]
fn the_runware_python_sdk_gets_an_async_video_as_soon_as_it_is_rendered() {
    if !have_python(RUNWARE_PY.0, RUNWARE_PY.1) {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    drive("python3", &["runware_video.py"], &dir);
}

#[test]
fn the_runware_js_sdk_gets_seeds_it_can_hold_and_send_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    if !have_node_package(&dir, "@runware/sdk-js") {
        return;
    }
    drive("node", &["runware_seeds.mjs"], &dir);
}

/// A one-second 64x64 MP4 made by the built-in video stand-in's encoder.
fn a_clip() -> Vec<u8> {
    use mediagate_providers::video::{VideoSpec, render_video};
    let spec = VideoSpec {
        prompt: "a clip".into(),
        seed: 1,
        width: 64,
        height: 64,
        duration_secs: 1,
        fps: 2,
        format: mediagate_providers::video::VideoFormat::Mp4,
        first_frame: None,
    };
    render_video(&spec).expect("the stand-in renders").bytes
}

/// A configuration whose text task types run on `openai-chat` against the testkit's chat mock
/// (a test double answering `<prompt>, in rich detail (reply N)`) and whose background removal
/// runs on `runware-upstream` against a scripted mock of Runware's API answering one PNG; both
/// kept running by `rt`.
fn chat_configured(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
) -> (mediagate_testkit::chat_mock::ChatMock, mediagate_testkit::mock_upstream::MockUpstream, String) {
    use base64::Engine as _;
    use mediagate_testkit::mock_upstream::{MockUpstream, Reply, png};
    let chat = rt.block_on(mediagate_testkit::chat_mock::ChatMock::start());
    let runware = rt.block_on(MockUpstream::start());
    let cutout = base64::engine::general_purpose::STANDARD.encode(png(8, 8, [0, 0, 0]));
    runware.on(
        "POST",
        "/v1",
        vec![Reply::json(
            200,
            serde_json::json!({"data": [{"taskType": "removeBackground", "taskUUID": "x", "imageUUID": "x",
                                         "status": "success", "imageBase64Data": cutout, "maskImageBase64Data": cutout,
                                         "videoBase64Data": base64::engine::general_purpose::STANDARD.encode(a_clip()),
                                         "text": "a scripted caption",
                                         "detections": [{"x_min": 1, "y_min": 2, "x_max": 5, "y_max": 7}]}]}),
        )],
    );
    let config = dir.join("mediagate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[providers.upstreams]]
name = "chat"
kind = "openai-chat"
base_url = "{}"

[[providers.upstreams]]
name = "runware"
kind = "runware-upstream"
base_url = "{}"

[[models]]
air = "test:photomaker@1"
task_type = "photoMaker"
provider = "runware"
price_usd = "0.0001"
description = "A scripted mock of Runware's API behind runware-upstream (a test double)."

[[models]]
air = "test:sdxl@1"
task_type = "imageInference"
provider = "runware"
price_usd = "0.0001"
description = "A scripted mock of Runware's API behind runware-upstream (a test double)."

[[models]]
air = "test:vupscale@1"
task_type = "upscale"
provider = "runware"
price_usd = "0.0001"
description = "A scripted mock of Runware's API behind runware-upstream (a test double)."

[[models]]
air = "test:vcaption@1"
task_type = "caption"
provider = "runware"
price_usd = "0.0001"
description = "A scripted mock of Runware's API behind runware-upstream (a test double)."

[[models]]
air = "test:masker@1"
task_type = "imageMasking"
provider = "runware"
price_usd = "0.0001"
description = "A scripted mock of Runware's API behind runware-upstream (a test double)."

[[models]]
air = "test:rembg@1"
task_type = "removeBackground"
provider = "runware"
price_usd = "0.0001"
description = "A scripted mock of Runware's API behind runware-upstream (a test double)."

[[models]]
air = "test:chat@1"
task_type = "promptEnhance"
provider = "chat"
price_usd = "0.0001"
description = "The testkit's chat mock behind openai-chat (a test double, not a language model)."

[[models]]
air = "test:llm@1"
task_type = "textInference"
provider = "chat"
price_usd = "0.0001"
description = "The testkit's chat mock behind openai-chat (a test double, not a language model)."

[[models]]
air = "test:vision@1"
task_type = "caption"
provider = "chat"
price_usd = "0.0001"
description = "The testkit's chat mock behind openai-chat (a test double, not a vision model)."
"#,
            chat.base_url, runware.base_url
        ),
    )
    .unwrap();
    (chat, runware, config.to_string_lossy().into_owned())
}

#[test]
fn the_runware_python_sdk_methods_run_on_configured_providers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    if !have_python(RUNWARE_PY.0, RUNWARE_PY.1) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let (chat, runware, config) = chat_configured(&rt, conf.path());
    let video = format!("data:video/mp4;base64,{}", {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(a_clip())
    });
    drive_with(
        "python3",
        &["runware_providers.py"],
        &dir,
        &[("MEDIAGATE_CONFIG", &config), ("MG_VIDEO", &video)],
    );
    // Two versions, one completion each, asked for at most promptMaxLength tokens; then the
    // caption, whose image reached the chat server as a data URL.
    let asked = chat.requests();
    let budgets: Vec<_> = asked.iter().map(|r| r["max_tokens"].clone()).collect();
    assert_eq!(budgets[..3], [serde_json::json!(64), serde_json::json!(64), serde_json::json!(512)]);
    let image = asked[2]["messages"][0]["content"][1]["image_url"]["url"].as_str().unwrap_or_default();
    assert!(image.starts_with("data:image/png;base64,"), "{}", &image[..image.len().min(60)]);
    // The background removal reached Runware's API (the mock) with its settings and the image.
    let sent = &runware.requests("POST", "/v1")[0].json()[0];
    assert_eq!(sent["taskType"], "removeBackground");
    assert_eq!(sent["settings"]["rgba"], serde_json::json!([255, 255, 255, 0]));
    assert!(sent["inputImage"].as_str().unwrap().starts_with("data:image/png;base64,"));
    let made = &runware.requests("POST", "/v1")[1].json()[0];
    assert_eq!(
        (made["taskType"].as_str(), made["style"].as_str()),
        (Some("photoMaker"), Some("Photographic"))
    );
    assert!(made["inputImages"][0].as_str().unwrap().starts_with("data:image/png;base64,"));
    // The image inference: LoRA, ControlNet and refiner as the SDK sent them, the guide image
    // (sent by the SDK as this server's imageUUID) as the bytes it names.
    // The video forms: each sent async with its video as bytes, then polled.
    let video_forms: Vec<serde_json::Value> = runware
        .requests("POST", "/v1")
        .iter()
        .map(|r| r.json()[0].clone())
        .filter(|t| t["inputs"]["video"].is_string())
        .collect();
    let types: Vec<&str> = video_forms.iter().filter_map(|t| t["taskType"].as_str()).collect();
    assert_eq!(types, ["upscale", "removeBackground", "caption"]);
    for t in &video_forms {
        assert_eq!(t["deliveryMethod"], "async", "{t}");
        assert!(t["inputs"]["video"].as_str().unwrap().starts_with("data:video/mp4;base64,"));
    }
    let guided = &runware.requests("POST", "/v1")[2].json()[0];
    assert_eq!(guided["taskType"], "imageInference");
    assert_eq!(guided["lora"], serde_json::json!([{"model": "civitai:58390@62833", "weight": 0.8}]));
    assert_eq!(guided["refiner"], serde_json::json!({"model": "civitai:101055@128080", "startStep": 30}));
    assert_eq!(
        (guided["controlNet"][0]["weight"].as_f64(), guided["scheduler"].as_str()),
        (Some(0.5), Some("Euler"))
    );
    assert!(guided["controlNet"][0]["guideImage"].as_str().unwrap().starts_with("data:image/png;base64,"));
    // The text inference: its settings, system prompt and seed as sent through the SDK.
    assert_eq!(asked[3]["max_tokens"], 16);
    assert_eq!(asked[3]["seed"], 41);
    assert_eq!(
        asked[3]["messages"][0],
        serde_json::json!({"role": "system", "content": "answer in one word"})
    );
}

#[test]
fn the_runware_js_sdk_methods_run_on_configured_providers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    if !have_node_package(&dir, "@runware/sdk-js") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let (chat, runware, config) = chat_configured(&rt, conf.path());
    drive_with("node", &["runware_providers.mjs"], &dir, &[("MEDIAGATE_CONFIG", &config)]);
    assert_eq!(chat.requests().len(), 6, "three versions, the caption, then two text inferences");
    assert_eq!(runware.requests("POST", "/v1").len(), 4, "background removal, photoMaker, image, masking");
    let masking = &runware.requests("POST", "/v1")[3].json()[0];
    assert_eq!(
        (masking["taskType"].as_str(), masking["confidence"].as_f64()),
        (Some("imageMasking"), Some(0.3))
    );
    let guided = &runware.requests("POST", "/v1")[2].json()[0];
    assert_eq!(guided["lora"], serde_json::json!([{"model": "civitai:58390@62833", "weight": 0.8}]));
    assert_eq!(guided["controlNet"][0]["endStepPercentage"], 80);
    assert!(guided["controlNet"][0]["guideImage"].as_str().unwrap().starts_with("data:image/png;base64,"));
}
