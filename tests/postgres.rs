//! The server on PostgreSQL, over real HTTP: `store.backend = "postgres"` in a schema of its own
//! on the local server (`MEDIAGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Skipped, saying so, without PostgreSQL; under
//! `CI=true` that fails instead.

use mediagate_engine::config::StoreBackend;
use mediagate_store::postgres::{SERVER_LOCK_MESSAGE, SERVER_LOCK_TAKEN_MESSAGE};
use mediagate_testkit::services::PgSchema;
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

async fn on_postgres(schema: &PgSchema, credit_usd: &str) -> Result<TestServer, String> {
    let url = schema.url();
    let credit = credit_usd.to_string();
    TestServer::try_start_with(move |c| {
        c.store.backend = StoreBackend::Postgres;
        c.store.url = url;
        c.bootstrap.initial_credit_usd = credit;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_charges_once_replays_and_never_overdraws() {
    let Some(schema) = mediagate_testkit::services::postgres("a_server_on_postgres").await else { return };
    let s = on_postgres(&schema, "0.0030").await.unwrap();
    // The bootstrap key works, and the task is charged ($0.0006).
    let u = task_uuid();
    let task = image(&u, json!({"includeCost": true, "outputType": "base64Data"}));
    let (st, first) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["data"][0]["cost"], json!(0.0006));
    assert!(first["data"][0]["imageBase64Data"].as_str().is_some_and(|d| d.len() > 100));
    assert_eq!(s.balance("default").await, 3_000 - 600);
    // A replay returns the stored result and charges nothing.
    let (st, again) = s.post(&json!([task])).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(first, again);
    assert_eq!(s.balance("default").await, 2_400);
    // getResponse reads it back from PostgreSQL.
    let (st, got) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["data"][0]["status"], "success");
    assert_eq!(got["data"][0]["imageUUID"], first["data"][0]["imageUUID"]);
    // A URL output (stored inline in the row) is served.
    let (st, url_item) = s.post(&json!([image(&task_uuid(), json!({}))])).await;
    assert_eq!(st, 200, "{url_item}");
    let url = url_item["data"][0]["imageURL"].as_str().unwrap().to_string();
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
    // $0.0018 left pays for exactly three more; 40 at once never overdraw.
    let tasks = (0..40).map(|_| {
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
    assert_eq!((ok, refused), (3, 37));
    assert_eq!(s.balance("default").await, 0);
    let ledger = s.engine.admin().credits("default", 100).await.unwrap().1;
    assert_eq!(
        ledger.iter().map(|e| e.amount_micros).sum::<i64>(),
        0,
        "grants minus charges equals the balance"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_database_fails_to_start_and_the_cli_still_works() {
    let Some(schema) = mediagate_testkit::services::postgres("a_second_server_fails").await else { return };
    let first = on_postgres(&schema, "1").await.unwrap();
    let err = on_postgres(&schema, "1").await.err().expect("a second server on the same database started");
    assert!(err.contains(SERVER_LOCK_MESSAGE), "{err}");
    // The binary says the same, and its CLI commands work beside the running server.
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mediagate"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("MEDIAGATE_CONFIG")
            .env("MEDIAGATE_STORE__BACKEND", "postgres")
            .env("MEDIAGATE_STORE__URL", schema.url())
            .output()
            .unwrap()
    };
    let serve = run(&["serve", "--listen", "127.0.0.1:0"]);
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(!serve.status.success());
    assert!(stderr.contains(SERVER_LOCK_MESSAGE), "{stderr}");
    let grant = run(&["credits", "grant", "--account", "default", "--usd", "2"]);
    assert!(grant.status.success(), "{}", String::from_utf8_lossy(&grant.stderr));
    assert_eq!(first.balance("default").await, 3_000_000, "the CLI's grant is in the server's database");
    let list = run(&["accounts", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("default"));
    first.stop().await;
}

#[tokio::test]
async fn a_server_whose_lock_another_server_took_stops() {
    use std::io::BufRead as _;
    let Some(schema) = mediagate_testkit::services::postgres("a_server_whose_lock_was_taken").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Killed if the test fails, so that no server outlives it.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mediagate"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("MEDIAGATE_CONFIG")
        .env("MEDIAGATE_STORE__BACKEND", "postgres")
        .env("MEDIAGATE_STORE__URL", schema.url())
        .env("MEDIAGATE_STORE__LOCK_CHECK_MS", "200")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !log.contains("mediagate listening") {
        let line =
            lines.recv_timeout(deadline - std::time::Instant::now()).expect("the server did not start");
        log.push_str(&line);
        log.push('\n');
    }
    // A database restart, and another server taking the lock before this one is back.
    let _other = schema.break_server_lock(true).await.unwrap().expect("the lock, taken");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the server kept running:\n{log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(2)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(status.code(), Some(3), "{log}");
    assert!(log.contains(SERVER_LOCK_TAKEN_MESSAGE), "{log}");
}

#[tokio::test]
async fn postgres_without_a_url_is_a_clear_configuration_error() {
    let err = TestServer::try_start_with(|c| c.store.backend = StoreBackend::Postgres).await.err().unwrap();
    assert!(err.contains("store.url is required"), "{err}");
}
