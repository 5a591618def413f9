//! The Runware WebSocket API over a real socket: authentication first, ping, tasks pushed as
//! they finish, the same error objects as REST, malformed input, idle close, size limits, resume.

use futures::{SinkExt, StreamExt};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &TestServer) -> Ws {
    let url = format!("{}/v1", s.base_url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("ws connect").0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON message, or None when the socket closed.
async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn auth(ws: &mut Ws, key: &str, resume: Option<&str>) -> String {
    let mut a = json!({"taskType": "authentication", "apiKey": key});
    if let Some(r) = resume {
        a["connectionSessionUUID"] = json!(r);
    }
    send(ws, json!([a])).await;
    let m = recv(ws).await.expect("auth reply");
    assert_eq!(m["data"][0]["taskType"], "authentication", "{m}");
    m["data"][0]["connectionSessionUUID"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn authentication_comes_first_and_a_bad_key_is_answered_on_the_open_socket() {
    let s = TestServer::start().await;
    let mut ws = connect(&s).await;
    send(&mut ws, json!([{"taskType": "authentication", "apiKey": "key_nope"}])).await;
    let m = recv(&mut ws).await.unwrap();
    let e = &m["errors"][0];
    assert_eq!(
        (e["code"].as_str(), e["parameter"].as_str(), e["taskType"].as_str()),
        (Some("invalidApiKey"), Some("apiKey"), Some("authentication"))
    );
    // The socket stays open (the official SDKs read the error from it) and takes another try.
    auth(&mut ws, &s.api_key, None).await;

    let mut ws = connect(&s).await;
    send(&mut ws, json!([{"taskType": "ping", "ping": true}])).await;
    let m = recv(&mut ws).await.unwrap();
    assert_eq!(m["errors"][0]["code"], "missingApiKey");
    // A bare object is not an array, on the WebSocket as on REST.
    send(&mut ws, json!({"taskType": "authentication", "apiKey": s.api_key})).await;
    assert_eq!(recv(&mut ws).await.unwrap()["errors"][0]["code"], "missingApiKey");
    auth(&mut ws, &s.api_key, None).await;

    // Without an upgrade, GET /v1 says how to use it.
    let r = s.http.get(format!("{}/v1", s.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn tasks_and_pings_are_answered_and_errors_match_rest() {
    let s = TestServer::start().await;
    let mut ws = connect(&s).await;
    let session = auth(&mut ws, &s.api_key, None).await;
    assert!(uuid::Uuid::try_parse(&session).is_ok());

    send(&mut ws, json!([{"taskType": "ping", "ping": true}])).await;
    assert_eq!(recv(&mut ws).await.unwrap(), json!({"data": [{"taskType": "ping", "pong": true}]}));

    let good = task_uuid();
    let bad = task_uuid();
    send(
        &mut ws,
        json!([
            {"taskType": "imageInference", "taskUUID": good, "positivePrompt": "over the socket", "width": 64,
             "height": 64, "numberResults": 2, "outputType": "base64Data"},
            {"taskType": "imageInference", "taskUUID": bad, "positivePrompt": "x", "width": 100}
        ]),
    )
    .await;
    let (mut got_good, mut got_bad) = (None, None);
    for _ in 0..2 {
        let m = recv(&mut ws).await.unwrap();
        if let Some(d) = m.get("data") {
            got_good = Some(d.clone());
        } else {
            got_bad = Some(m["errors"][0].clone());
        }
    }
    let d = got_good.unwrap();
    assert_eq!(d.as_array().unwrap().len(), 2, "one message per task, grouped by taskUUID");
    assert!(d.as_array().unwrap().iter().all(|i| i["taskUUID"] == good && i["imageBase64Data"].is_string()));
    let e = got_bad.unwrap();
    let (_, rest) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": bad, "positivePrompt": "x", "width": 100}]))
        .await;
    let mut rest_e = rest["errors"][0].clone();
    rest_e["documentation"] = e["documentation"].clone();
    assert_eq!(e, rest_e, "the WebSocket error object is the REST one");

    // Malformed JSON gets an error and the socket stays usable.
    ws.send(Message::Text("{oops".into())).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap()["errors"][0]["code"], "invalidJson");
    send(&mut ws, json!([{"taskType": "ping", "ping": true}])).await;
    assert_eq!(recv(&mut ws).await.unwrap()["data"][0]["pong"], true);
}

#[tokio::test]
async fn results_produced_while_away_arrive_on_resume() {
    let s = TestServer::start().await;
    let mut ws = connect(&s).await;
    let session = auth(&mut ws, &s.api_key, None).await;
    let u = task_uuid();
    send(
        &mut ws,
        json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "while away",
                          "width": 2048, "height": 2048, "numberResults": 4}]),
    )
    .await;
    // Drop the connection, and let the task finish while nobody is connected.
    drop(ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
        if b["data"][0]["status"] == "success" {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut ws = connect(&s).await;
    let resumed = auth(&mut ws, &s.api_key, Some(&session)).await;
    assert_eq!(resumed, session, "the session is resumed, not replaced");
    let m = recv(&mut ws).await.unwrap();
    let items = m["data"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i["taskUUID"] == u));

    // Another account cannot resume someone else's session.
    s.engine.admin().create_account("other", "1").await.unwrap();
    let other = s.create_key("other", &[]).await;
    let mut ws2 = connect(&s).await;
    assert_ne!(auth(&mut ws2, &other, Some(&session)).await, session);
}

#[tokio::test]
async fn idle_sockets_close_and_oversized_messages_are_refused() {
    let s = TestServer::start_with(|c| {
        c.websocket.idle_timeout_secs = 1;
        c.websocket.max_message_bytes = 4096;
    })
    .await;
    let mut ws = connect(&s).await;
    auth(&mut ws, &s.api_key, None).await;
    let t0 = std::time::Instant::now();
    assert!(recv(&mut ws).await.is_none(), "closed for idleness");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(10), "{waited:?}");

    let mut ws = connect(&s).await;
    auth(&mut ws, &s.api_key, None).await;
    let big = json!([{"taskType": "ping", "pad": "x".repeat(10_000)}]);
    let _ = ws.send(Message::Text(big.to_string().into())).await;
    assert!(recv(&mut ws).await.is_none(), "a message over the limit closes the socket");
}

#[tokio::test]
async fn a_consumer_that_cannot_keep_up_is_closed_and_loses_nothing() {
    let s = TestServer::start_with(|c| c.websocket.outbound_queue = 1).await;
    let mut ws = connect(&s).await;
    let session = auth(&mut ws, &s.api_key, None).await;
    // 24 results of ~1.4 MB each (base64 of a 1024x1024 PNG): far more than socket buffers hold.
    let ids: Vec<String> = (0..24).map(|_| task_uuid()).collect();
    let tasks: Vec<Value> = ids
        .iter()
        .map(|u| {
            json!({"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a flood of pixels",
                        "width": 1024, "height": 1024, "outputType": "base64Data"})
        })
        .collect();
    send(&mut ws, Value::Array(tasks)).await;
    // Read nothing until every task has finished on the server.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for u in &ids {
        loop {
            let (_, b) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
            if b["data"][0]["status"] == "success" {
                break;
            }
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The server gave up on this socket: what it had already written can be read, then it ends.
    let mut got = std::collections::HashSet::new();
    while let Some(m) = recv(&mut ws).await {
        if let Some(u) = m["data"][0]["taskUUID"].as_str() {
            got.insert(u.to_string());
        }
    }
    assert!(got.len() < ids.len(), "the slow socket was closed before everything was pushed");
    // Resume: the rest arrives; nothing is lost.
    let mut ws = connect(&s).await;
    assert_eq!(auth(&mut ws, &s.api_key, Some(&session)).await, session);
    while got.len() < ids.len() {
        let m = recv(&mut ws).await.expect("the backlog arrives on resume");
        got.insert(m["data"][0]["taskUUID"].as_str().unwrap().to_string());
    }
    assert_eq!(got, ids.into_iter().collect());
}

/// A `getResponse` sent right behind its task's submission on the same socket is answered from
/// that task, never `taskNotFound` (the Python SDK's `videoCaption` polls that way). Messages
/// are handled concurrently otherwise, so without the ordering the poll can overtake the
/// submission's admission. The race is timing-dependent: on the 2-core machine this test passed
/// without the ordering too; it showed, and was fixed, through the Python SDK's `videoCaption`
/// in `official_sdks.rs` (`taskNotFound` before, the caption after). This test keeps the
/// ordering under a submission slowed by a 1 MB first frame.
#[tokio::test]
async fn a_poll_right_behind_its_submission_on_the_same_socket_finds_the_task() {
    let s = TestServer::start().await;
    let mut ws = connect(&s).await;
    auth(&mut ws, &s.api_key, None).await;
    // A first frame of about 1 MB makes the submission's handling slower than the poll's.
    let frame = mediagate_testkit::images::png_data_uri(640, 480);
    for _ in 0..10 {
        let uuid = task_uuid();
        let submit = json!({"taskType": "videoInference", "taskUUID": uuid, "positivePrompt": "a quick clip",
                            "width": 64, "height": 64, "duration": 1, "fps": 1,
                            "frameImages": [{"inputImage": frame, "frame": "first"}]});
        send(&mut ws, json!([submit])).await;
        send(&mut ws, json!([{"taskType": "getResponse", "taskUUID": uuid}])).await;
        let mut answers = 0;
        while answers < 2 {
            let msg = recv(&mut ws).await.expect("an answer");
            let about_this = |v: &Value| v["taskUUID"] == uuid.as_str();
            if let Some(e) = msg["errors"].as_array().and_then(|e| e.iter().find(|e| about_this(e))) {
                panic!("the poll did not find its task: {e}");
            }
            if msg["data"].as_array().is_some_and(|d| d.iter().any(about_this)) {
                answers += 1;
            }
        }
    }
}
