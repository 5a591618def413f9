//! The `mediagate` binary as a user runs it: the CLI, the server process, its logs, signals,
//! configuration and crash recovery.

use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use base64::Engine as _;

use common::*;

fn ping() -> Value {
    json!([{"taskType": "ping", "ping": true}])
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[test]
fn the_cli_manages_accounts_keys_and_credits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = mg(d, &["accounts", "create", "acme", "--credit-usd", "2.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("$2.50"));
    // Each command says, once, which store it used, and that it created one when it did.
    let db = std::path::absolute(d.join("mediagate.db")).unwrap();
    let said = stderr(&o);
    assert_eq!(said.matches("store: SQLite at ").count(), 1, "{said}");
    assert!(
        said.contains(&db.display().to_string()) && said.contains("new: there was no store here"),
        "{said}"
    );
    let o = mg(d, &["accounts", "create", "acme"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("store: SQLite at ") && !stderr(&o).contains("new:"), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = mg(d, &["accounts", "create", "bad name!"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not allowed"));

    let o =
        mg(d, &["keys", "create", "--account", "acme", "--description", "ci", "--scopes", "task:upscale"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = stdout(&o).trim().to_string();
    assert!(key.starts_with("key_") && key.len() == 132 && key[4..].chars().all(|c| c.is_ascii_hexdigit()));
    assert!(stderr(&o).contains("shown once"));
    let o = mg(d, &["keys", "create", "--account", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("account 'nobody' not found"), "{}", stderr(&o));
    let o = mg(d, &["keys", "create", "--account", "acme", "--scopes", "task:dance"]);
    assert_eq!(o.status.code(), Some(1));

    let o = mg(d, &["keys", "list"]);
    let list = stdout(&o);
    assert!(list.contains(&key[..12]) && !list.contains(&key[12..40]), "only the prefix is listed:\n{list}");
    assert!(list.contains("task:upscale") && list.contains("active"));
    // Columns line up with their headings (statuses are padded like every other cell).
    let header = list.lines().next().unwrap();
    let column = |line: &str, word: &str| line.find(word).map(|at| line[..at].chars().count());
    for row in list.lines().skip(1) {
        assert_eq!(column(row, "active"), column(header, "STATUS"), "{list}");
        assert_eq!(column(row, "task:upscale"), column(header, "SCOPES"), "{list}");
    }
    let id = list.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(mg(d, &["keys", "disable", &id]).status.success());
    assert!(stdout(&mg(d, &["keys", "list", "--account", "acme"])).contains("disabled"));
    assert!(mg(d, &["keys", "enable", &id]).status.success());
    assert!(mg(d, &["keys", "revoke", &id]).status.success());
    let o = mg(d, &["keys", "enable", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("revoked"));
    let o = mg(d, &["keys", "disable", "9999"]);
    assert_eq!(o.status.code(), Some(1));
    // The message once, not repeated as its own cause.
    assert_eq!(stderr(&o).matches("key 9999 not found").count(), 1, "{}", stderr(&o));

    let o = mg(d, &["credits", "grant", "--account", "acme", "--usd", "12.50"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("$15.00"), "{}", stdout(&o));
    for bad in ["-1", "abc", "0", "1.1234567"] {
        let o = mg(d, &["credits", "grant", "--account", "acme", "--usd", bad]);
        assert_ne!(o.status.code(), Some(0), "{bad}");
    }
    let o = mg(d, &["credits", "show", "--account", "acme"]);
    let shown = stdout(&o);
    assert!(shown.contains("balance $15.00") && shown.contains("grant"), "{shown}");

    assert!(mg(d, &["accounts", "suspend", "acme"]).status.success());
    assert!(stdout(&mg(d, &["accounts", "list"])).contains("suspended"));
    assert!(mg(d, &["accounts", "unsuspend", "acme"]).status.success());
    assert_eq!(mg(d, &["accounts", "suspend", "ghost"]).status.code(), Some(1));

    for args in
        [&["--help"][..], &["keys", "--help"], &["keys", "create", "--help"], &["credits", "grant", "--help"]]
    {
        let o = mg(d, args);
        assert!(o.status.success() && stdout(&o).contains("Usage"), "{args:?}");
    }
    assert_eq!(mg(d, &["frobnicate"]).status.code(), Some(2));
}

#[test]
fn first_start_prints_the_key_once_and_logs_never_show_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[], &[]);
    let key = s.banner_key().expect("first start prints a key");
    let bad = format!("key_{}", "ab".repeat(64));
    assert_eq!(post(&s.base, &key, &ping()).0, 200);
    let img = json!([{"taskType": "imageInference", "taskUUID": uuid(), "positivePrompt": "a cat", "width": 64, "height": 64}]);
    assert_eq!(post(&s.base, &key, &img).0, 200);
    assert_eq!(post(&s.base, &bad, &ping()).0, 401);
    let payload = json!([{"taskType": "authentication", "apiKey": key}, {"taskType": "ping"}]);
    assert_eq!(post(&s.base, "", &payload).0, 200);
    s.signal("-TERM");
    assert!(s.wait().success());
    let log = s.log_text();
    assert_eq!(log.matches(&key).count(), 1, "the key appears only in the first-start banner");
    assert_eq!(log.matches(&key[4..40]).count(), 1);
    assert!(!log.contains(&bad[4..40]), "a presented key was logged");
    assert!(log.contains("task_uuid"), "tasks are logged with their taskUUID:\n{log}");

    // A second start prints no key, and the first key still works.
    let s2 = Server::start(dir.path(), &[], &[]);
    assert!(s2.banner_key().is_none());
    assert!(!s2.log_text().contains(&key));
    assert_eq!(post(&s2.base, &key, &ping()).0, 200);
}

#[test]
fn cli_changes_reach_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let o = mg(dir.path(), &["keys", "create", "--account", "default"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let key = stdout(&o).trim().to_string();
    assert_eq!(post(&s.base, &key, &ping()).0, 200);
    let id = stdout(&mg(dir.path(), &["keys", "list"]))
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(mg(dir.path(), &["keys", "disable", &id]).status.success());
    // Within auth.cache_ttl_ms (1 s by default) the server refuses the key.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (st, b) = post(&s.base, &key, &ping());
        if st == 401 {
            assert_eq!(b["errors"][0]["code"], "apiKeyDisabled");
            break;
        }
        assert!(Instant::now() < deadline, "the disabled key is still accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Credits granted by the CLI are spendable at once (balances are never cached).
    let o = mg(dir.path(), &["credits", "grant", "--account", "default", "--usd", "1"]);
    assert!(stdout(&o).contains("$11.00"));
}

#[test]
fn a_second_server_on_the_same_sqlite_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start(dir.path(), &[], &[]);
    let key = first.banner_key().unwrap();
    // The second `serve` exits at once, saying why, and touches nothing of the first's.
    let second = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("MEDIAGATE_CONFIG")
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second server started on the same data directory");
    let err = stderr(&second);
    assert!(err.contains(mediagate_store::sqlite::SERVER_LOCK_MESSAGE), "{err}");
    assert!(!err.contains("resumed"), "{err}");
    // CLI commands still work beside the running server, and it still serves.
    let o = mg(dir.path(), &["accounts", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(post(&first.base, &key, &ping()).0, 200);
    // Once the first server stops, the lock is free: a new server starts on the directory.
    first.signal("-TERM");
    assert!(first.wait().success());
    drop(first);
    let again = Server::start(dir.path(), &[], &[]);
    assert_eq!(post(&again.base, &key, &ping()).0, 200);
}

#[test]
fn json_logs_carry_one_line_per_request_with_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[("MEDIAGATE_LOG", "info"), ("MEDIAGATE_LOG__FORMAT", "json"), ("MEDIAGATE_LOG__REQUESTS", "true")],
        &[],
    );
    let key = s.banner_key().unwrap();
    let task_uuid = uuid();
    let image = json!([{"taskType": "imageInference", "taskUUID": task_uuid, "positivePrompt": "a log line",
        "width": 64, "height": 64}]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("{}/v1", s.base))
            .bearer_auth(&key)
            .header("x-request-id", "json-log-probe-7")
            .json(&image)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    });
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = s.log_text();
        if let Some(l) = log.lines().find(|l| l.contains("json-log-probe-7")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no log line with the request id:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["span"]["request_id"], "json-log-probe-7", "{v}");
    assert_eq!(v["span"]["route"], "/v1", "{v}");
    assert_eq!(v["fields"]["status"], 200, "{v}");
    // Whose request and which task, recorded once known: the ids, never the key.
    assert_eq!(v["span"]["task_uuids"], task_uuid.as_str(), "{v}");
    assert!(v["span"]["account"].as_i64().is_some_and(|a| a > 0), "{v}");
    assert!(v["span"]["key"].as_i64().is_some_and(|k| k > 0), "{v}");
    assert!(!line.contains(&key[4..40]), "the key is in the log: {line}");
}

/// Five quick 64x64 images from one key; the status of each.
fn five_quick_images(base: &str, key: &str) -> Vec<u16> {
    (0..5)
        .map(|_| {
            let task = json!([{"taskType": "imageInference", "taskUUID": uuid(), "positivePrompt": "burst",
                "model": "mediagate:procedural@1", "width": 64, "height": 64}]);
            post(base, key, &task).0
        })
        .collect()
}

#[test]
fn a_burst_set_by_the_cli_while_the_server_runs_admits_exactly_that_many() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let key = s.banner_key().unwrap();
    // The defaults limit nothing: all five pass.
    assert_eq!(five_quick_images(&s.base, &key), vec![200; 5]);
    for burst in [1u16, 3] {
        let o = mg(
            dir.path(),
            &[
                "limits",
                "set",
                "--account",
                "default",
                "--key-rate-per-sec",
                "0.1",
                "--key-burst",
                &burst.to_string(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        // A key idle since the change was made, longer than limits.refresh_ms (1 s).
        let o = mg(dir.path(), &["keys", "create", "--account", "default"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let key = stdout(&o).trim().to_string();
        std::thread::sleep(Duration::from_millis(1_300));
        let got = five_quick_images(&s.base, &key);
        let admitted = got.iter().filter(|&&c| c == 200).count();
        assert_eq!(admitted, usize::from(burst), "burst {burst}: {got:?}");
        assert!(got[usize::from(burst)..].iter().all(|&c| c == 429), "burst {burst}: {got:?}");
    }
}

/// Twenty 2048x2048 images: each four times the 1024x1024 the listed $0.0006 pays for, $0.048.
fn slow_task(id: &str) -> Value {
    json!([{"taskType": "imageInference", "taskUUID": id, "positivePrompt": "slow", "width": 2048, "height": 2048,
            "numberResults": 20, "outputType": "URL"}])
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[], &[]);
    let key = s.banner_key().unwrap();
    let base = s.base.clone();
    let id = uuid();
    let body = slow_task(&id);
    let req = std::thread::spawn(move || post(&base, &key, &body));
    // Wait until the task is admitted, then ask the server to stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log_text().lines().any(|l| l.contains(&id) && l.contains("task admitted")) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    s.signal("-TERM");
    let (st, b) = req.join().unwrap();
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 20);
    assert!(s.wait().success());
    assert!(s.log_text().contains("stopped cleanly"));
    let o = mg(dir.path(), &["credits", "show", "--account", "default"]);
    assert!(stdout(&o).contains("balance $9.952"), "{}", stdout(&o));
}

#[test]
fn kill_9_mid_task_is_settled_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let key = s.banner_key().unwrap();
    let (base, id) = (s.base.clone(), uuid());
    let body = slow_task(&id);
    let k = key.clone();
    let req = std::thread::spawn(move || post(&base, &k, &body));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log_text().lines().any(|l| l.contains(&id) && l.contains("task admitted")) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    s.signal("-KILL");
    let _ = req.join();
    drop(s);
    // On restart the task is recorded as interrupted and its reservation refunded.
    let s2 = Server::start(dir.path(), &[], &[]);
    let (st, b) = post(&s2.base, &key, &json!([{"taskType": "getResponse", "taskUUID": id}]));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"][0]["status"], "error");
    assert_eq!(b["data"][0]["error"]["code"], "taskInterrupted");
    let o = mg(dir.path(), &["credits", "show", "--account", "default"]);
    assert!(stdout(&o).contains("balance $10.00"), "{}", stdout(&o));
    assert!(stdout(&o).contains("refund"));
    // taskInterrupted is transient: resending the identical task runs it again, charged once.
    let (st, b) = post(&s2.base, &key, &slow_task(&id));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"].as_array().unwrap().len(), 20);
    let o = mg(dir.path(), &["credits", "show", "--account", "default"]);
    assert!(stdout(&o).contains("balance $9.952"), "{}", stdout(&o));
}

#[test]
fn an_acknowledged_async_task_survives_kill_9_and_is_charged_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let key = s.banner_key().unwrap();
    let id = uuid();
    let mut body = slow_task(&id);
    body[0]["deliveryMethod"] = json!("async");
    let (st, b) = post(&s.base, &key, &body);
    assert_eq!((st, &b["data"][0]["status"]), (200, &json!("processing")), "{b}");
    s.signal("-KILL");
    drop(s);
    let s2 = Server::start(dir.path(), &[], &[]);
    assert!(s2.log_text().contains("resumed acknowledged tasks"), "{}", s2.log_text());
    let deadline = Instant::now() + Duration::from_secs(120);
    let items = loop {
        let (st, b) = post(&s2.base, &key, &json!([{"taskType": "getResponse", "taskUUID": id}]));
        assert_eq!(st, 200, "{b}");
        let items = b["data"].as_array().unwrap().clone();
        // Partial results come first; the task is done when no item is still processing.
        if items.iter().all(|i| i["status"] != "processing") {
            break items;
        }
        assert!(Instant::now() < deadline, "the resumed task never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|i| i["status"] == "success"));
    let o = mg(dir.path(), &["credits", "show", "--account", "default"]);
    assert!(stdout(&o).contains("balance $9.952"), "charged exactly once: {}", stdout(&o));
    assert!(!stdout(&o).contains("refund"));
}

#[test]
fn an_accepted_runway_task_survives_kill_9_and_is_charged_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[], &[]);
    let key = s.banner_key().unwrap();
    // A first frame sent inline is kept as an upload, so the resumed task still has it.
    let frame = {
        let img = image::RgbImage::from_fn(160, 90, |x, y| image::Rgb([x as u8, y as u8, 200]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png.into_inner())
        )
    };
    let body = json!({"model": "gen4_turbo", "promptImage": frame, "ratio": "1584:672", "duration": 10});
    let (st, b) = runway(&s.base, &key, "POST", "/v1/image_to_video", Some(&body));
    assert_eq!(st, 200, "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    s.signal("-KILL");
    drop(s);
    let s2 = Server::start(dir.path(), &[], &[]);
    assert!(s2.log_text().contains("resumed acknowledged tasks"), "{}", s2.log_text());
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let (st, b) = runway(&s2.base, &key, "GET", &format!("/v1/tasks/{id}"), None);
        assert_eq!(st, 200, "{b}");
        if !["PENDING", "THROTTLED", "RUNNING"].contains(&b["status"].as_str().unwrap()) {
            break b;
        }
        assert!(Instant::now() < deadline, "the resumed task never finished");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    // URLs carry the port actually bound (the test server listens on `:0`).
    let url = done["output"][0].as_str().unwrap();
    assert!(url.starts_with(&s2.base) && url.ends_with(".mp4"), "{url} vs {}", s2.base);
    let o = mg(dir.path(), &["credits", "show", "--account", "default"]);
    assert!(stdout(&o).contains("balance $9.75"), "charged exactly once: {}", stdout(&o));
}

#[test]
fn configuration_comes_from_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mediagate.toml");
    std::fs::write(
        &cfg,
        "[bootstrap]\naccount = \"team\"\ninitial_credit_usd = \"3.00\"\n[server]\nmax_body_bytes = 1000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let cfg_s = cfg.to_str().unwrap();
    let s =
        Server::start(&data, &[("MEDIAGATE_BOOTSTRAP__INITIAL_CREDIT_USD", "4.00")], &["--config", cfg_s]);
    let key = s.banner_key().unwrap();
    let o = mg(&data, &["credits", "show", "--account", "team"]);
    assert!(stdout(&o).contains("balance $4.00"), "env overrides the file: {}", stdout(&o));
    let big = json!([{"taskType": "ping", "pad": "x".repeat(2000)}]);
    assert_eq!(post(&s.base, &key, &big).0, 413, "the file's max_body_bytes applies");

    // Unknown keys and missing files are refused with their names.
    std::fs::write(&cfg, "[server]\nmax_body_byte = 1\n").unwrap();
    let o = Command::new(BIN).args(["--config", cfg_s, "docs", "config"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("max_body_byte"), "{}", stderr(&o));
    let o = Command::new(BIN).args(["--config", "/nonexistent.toml", "docs", "config"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"));
}
