//! Issue 16, the HTTP edge: nothing is buffered for a stranger, every connection is bounded in
//! number and time, and every transport applies the same task limits. Each test talks raw TCP
//! or WebSocket to a real server on loopback, so it sees exactly what a hostile client would.

use futures::{SinkExt, StreamExt};
use mediagate_testkit::{TestServer, task_uuid};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn addr(s: &TestServer) -> String {
    s.base_url.trim_start_matches("http://").to_string()
}

/// Reads whatever the server sends until it closes the connection or `wait` passes.
async fn read_reply(tcp: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                // A complete response with a body: stop at its end.
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n")
                    && let Some(len) = head.lines().find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string)
                    })
                    && body.len() >= len.trim().parse::<usize>().unwrap_or(usize::MAX)
                {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(reply: &str) -> u16 {
    reply.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn body_of(reply: &str) -> Value {
    reply.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null)
}

/// Whether the server closed the connection within `wait` (a read returns end of stream).
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn hardening_an_unknown_upload_target_reads_no_body() {
    let s = TestServer::start().await;
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    // 160 MB announced, a few KB sent: the answer must come without the rest.
    let head = format!(
        "POST /v1/uploads/{} HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=B\r\n\
         content-length: 160000000\r\n\r\n--B\r\ncontent-disposition: form-data; name=\"token\"\r\n\r\n",
        uuid::Uuid::new_v4()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[b'a'; 4096]).await.unwrap();
    let reply = read_reply(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 401, "{reply}");
    assert_eq!(body_of(&reply)["code"], "invalidApiKey", "{reply}");
}

#[tokio::test]
async fn hardening_an_upload_token_field_is_read_only_up_to_its_bound() {
    let s = TestServer::start().await;
    let target: Value = s
        .http
        .post(format!("{}/v1/uploads", s.base_url))
        .bearer_auth(&s.api_key)
        .header("X-Runway-Version", "2024-11-06")
        .json(&json!({"filename": "a.png", "type": "ephemeral"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = target["uploadUrl"].as_str().unwrap();
    let path = url.split_once("/v1/").map(|(_, p)| format!("/v1/{p}")).unwrap();
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=B\r\n\
         content-length: 160000000\r\n\r\n--B\r\ncontent-disposition: form-data; name=\"token\"\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // A "token" far longer than any token: refused after a few hundred bytes, not buffered.
    tcp.write_all(&vec![b'a'; 256 * 1024]).await.unwrap();
    let reply = read_reply(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 401, "{reply}");
}

#[tokio::test]
async fn hardening_a_runway_body_is_not_read_before_the_key_is_checked() {
    let s = TestServer::start().await;
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    let head = "POST /v1/text_to_image HTTP/1.1\r\nhost: x\r\nx-runway-version: 2024-11-06\r\n\
                authorization: Bearer key_wrong\r\ncontent-type: application/json\r\ncontent-length: 1500000\r\n\r\n{";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let reply = read_reply(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 401, "{reply}");
}

#[tokio::test]
async fn hardening_runway_bodies_up_to_the_server_limit_are_read_and_past_it_answered_in_its_shape() {
    let s = TestServer::start_with(|c| c.server.max_body_bytes = 4_000_000).await;
    let post = |body: String| {
        s.http
            .post(format!("{}/v1/text_to_image", s.base_url))
            .bearer_auth(&s.api_key)
            .header("X-Runway-Version", "2024-11-06")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // 3 MB (past axum's 2 MiB default) is read and validated like any body.
    let big = json!({"model": "gen4_image", "ratio": "1280:720", "promptText": "x".repeat(3_000_000)});
    let r = post(big.to_string()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["issues"][0]["path"], json!(["promptText"]), "{v}");
    // Past the limit: Runway's shape with a code and a docUrl, not a plain-text 413.
    let r = post(format!("\"{}\"", "x".repeat(4_100_000))).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "payloadTooLarge", "{v}");
    assert!(v["docUrl"].as_str().is_some_and(|u| u.contains("payloadTooLarge")), "{v}");
}

#[tokio::test]
async fn hardening_unauthenticated_runware_bodies_share_one_budget() {
    let s = TestServer::start_with(|c| c.server.unauthenticated_body_budget_bytes = 1_000_000).await;
    // A stranger holds most of the budget with a body it never finishes.
    let mut hog = TcpStream::connect(addr(&s)).await.unwrap();
    hog.write_all(
        b"POST /v1 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n[",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A second stranger's body does not fit: 503 with Retry-After, without reading it.
    let mut other = TcpStream::connect(addr(&s)).await.unwrap();
    other
        .write_all(b"POST /v1 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n[")
        .await
        .unwrap();
    let reply = read_reply(&mut other, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 503, "{reply}");
    assert!(reply.to_ascii_lowercase().contains("retry-after: 1"), "{reply}");
    assert_eq!(body_of(&reply)["errors"][0]["code"], "serviceUnavailable", "{reply}");
    // A client with its key in the header is authenticated first and is not held to it.
    let filler = "x".repeat(800_000);
    let (status, v) =
        s.post(&json!([{"taskType": "ping", "ping": true, "taskUUID": task_uuid(), "note": filler}])).await;
    assert!(status == 200 || v["errors"][0]["code"] != "serviceUnavailable", "{status} {v}");
    // A wrong key in the header is no authentication: its body is held to the same budget.
    let mut wrong = TcpStream::connect(addr(&s)).await.unwrap();
    wrong
        .write_all(
            b"POST /v1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer key_wrong\r\ncontent-type: application/json\r\n\
              content-length: 900000\r\n\r\n[",
        )
        .await
        .unwrap();
    let reply = read_reply(&mut wrong, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 503, "{reply}");
    drop(hog);
}

#[tokio::test]
async fn hardening_slow_headers_and_idle_connections_are_cut() {
    let s = TestServer::start_with(|c| c.server.header_timeout_secs = 1).await;
    // One header line every 300 ms: cut at the header timeout, not kept open.
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for i in 0..30 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if tcp.write_all(format!("x-drip-{i}: 1\r\n").as_bytes()).await.is_err() {
            cut = true;
            break;
        }
        let mut probe = [0u8; 512];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut probe)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a connection dripping headers was still open after {:?}", started.elapsed());
    // An idle keep-alive connection is closed after the same time.
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let reply = read_reply(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn hardening_a_pausing_body_and_an_overlong_request_get_504_request_timeout_in_their_dialect() {
    let s = TestServer::start_with(|c| {
        c.server.body_timeout_secs = 1;
        c.server.request_timeout_secs = 3;
    })
    .await;
    let head = format!(
        "POST /v1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n[",
        s.api_key
    );
    // A body that stops: 504 after the pause bound.
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let reply = read_reply(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 504, "{reply}");
    assert_eq!(body_of(&reply)["errors"][0]["code"], "requestTimeout", "{reply}");
    // A body that trickles under the pause bound: cut by the whole-request deadline.
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if tcp.write_all(b" ").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), trickle).await;
    let reply = read_reply(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 504, "{reply}");
    assert!(started.elapsed() < Duration::from_secs(12));
    // The Runway dialect gets its own shape.
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    let runway = format!(
        "POST /v1/text_to_image HTTP/1.1\r\nhost: x\r\nx-runway-version: 2024-11-06\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{",
        s.api_key
    );
    tcp.write_all(runway.as_bytes()).await.unwrap();
    let reply = read_reply(&mut tcp, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 504, "{reply}");
    assert_eq!(body_of(&reply)["code"], "requestTimeout", "{reply}");
    assert!(body_of(&reply)["docUrl"].is_string(), "{reply}");
}

#[tokio::test]
async fn hardening_connections_past_the_limit_get_503_and_the_server_recovers() {
    let s = TestServer::start_with(|c| {
        c.server.max_connections = 40;
        c.server.header_timeout_secs = 2;
    })
    .await;
    // Half-sent requests fill every place.
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
        tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        held.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The next one is told to come back, at once, in a shape both dialects read.
    let mut extra = TcpStream::connect(addr(&s)).await.unwrap();
    extra.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let reply = read_reply(&mut extra, Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 503, "{reply}");
    assert!(reply.to_ascii_lowercase().contains("retry-after: 1"), "{reply}");
    let body = body_of(&reply);
    assert_eq!(body["errors"][0]["code"], "serviceUnavailable", "{reply}");
    assert!(body["error"].as_str().is_some_and(|m| m.contains("server.max_connections")), "{reply}");
    // The half-sent requests are cut by the header timeout; the server serves again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.http.get(format!("{}/health", s.base_url)).send().await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);
}

#[tokio::test]
async fn hardening_requests_past_the_in_flight_limit_are_shed_with_503_in_their_dialect() {
    let s = TestServer::start_with(|c| c.server.max_in_flight_requests = 2).await;
    // Two requests whose bodies are still coming hold both places.
    let head = format!(
        "POST /v1 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\n\r\n[",
        s.api_key
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        held.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ping = json!([{"taskType": "ping", "ping": true}]);
    // A third is refused at once, in Runware's shape...
    let r =
        s.http.post(format!("{}/v1", s.base_url)).bearer_auth(&s.api_key).json(&ping).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["errors"][0]["code"], "serviceUnavailable", "{b}");
    assert!(b["errors"][0]["message"].as_str().unwrap().contains("server.max_in_flight_requests"), "{b}");
    // ...and in Runway's.
    let r = s
        .http
        .get(format!("{}/v1/tasks/{}", s.base_url, task_uuid()))
        .header("x-runway-version", "2024-11-06")
        .bearer_auth(&s.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let b: Value = r.json().await.unwrap();
    assert!(b["error"].as_str().unwrap().contains("server.max_in_flight_requests"), "{b}");
    // The operator's routes, and the portal's pages, are not shed.
    for path in ["/livez", "/readyz", "/metrics", "/portal"] {
        let r = s.http.get(format!("{}{path}", s.base_url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // One held request ends (its body completes: a bad array, answered 400); its place is free.
    let mut first = held.remove(0);
    first.write_all(format!("{}]", " ".repeat(98)).as_bytes()).await.unwrap();
    let reply = read_reply(&mut first, Duration::from_secs(5)).await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    let r =
        s.http.post(format!("{}/v1", s.base_url)).bearer_auth(&s.api_key).json(&ping).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(held);
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(s: &TestServer) -> Ws {
    let url = format!("{}/v1", s.base_url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.expect("ws connect").0
}

async fn ws_recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn ws_auth(ws: &mut Ws, key: &str) -> String {
    ws.send(Message::Text(json!([{"taskType": "authentication", "apiKey": key}]).to_string().into()))
        .await
        .unwrap();
    let m = ws_recv(ws).await.unwrap();
    m["data"][0]["connectionSessionUUID"].as_str().expect("authenticated").to_string()
}

#[tokio::test]
async fn hardening_websocket_messages_have_the_rest_task_limits() {
    let s = TestServer::start_with(|c| {
        c.server.max_tasks_per_request = 100;
        c.websocket.max_inflight_tasks = 5;
    })
    .await;
    let mut ws = ws_connect(&s).await;
    let session = ws_auth(&mut ws, &s.api_key).await;
    // More tasks in one message than a REST request may hold: one error, no task started.
    let many: Vec<Value> =
        (0..101).map(|_| json!({"taskType": "getResponse", "taskUUID": task_uuid()})).collect();
    ws.send(Message::Text(Value::Array(many).to_string().into())).await.unwrap();
    let m = ws_recv(&mut ws).await.unwrap();
    assert_eq!(m["errors"][0]["code"], "invalidRequestBody", "{m}");
    assert!(m["errors"][0]["message"].as_str().unwrap().contains("at most 100"), "{m}");
    // Within the message limit, at most max_inflight_tasks run at once; the rest are refused
    // one by one with a retryable queueFull naming the task.
    let tasks: Vec<Value> =
        (0..20).map(|_| json!({"taskType": "getResponse", "taskUUID": task_uuid()})).collect();
    ws.send(Message::Text(Value::Array(tasks).to_string().into())).await.unwrap();
    let (mut refused, mut ran) = (0, 0);
    for _ in 0..20 {
        let m = ws_recv(&mut ws).await.unwrap();
        match m["errors"][0]["code"].as_str() {
            Some("queueFull") => {
                assert!(m["errors"][0]["taskUUID"].is_string(), "{m}");
                refused += 1
            }
            _ => ran += 1,
        }
    }
    assert_eq!((ran, refused), (5, 15));
    // A second authentication on the open socket is answered with its session.
    ws.send(Message::Text(json!([{"taskType": "authentication", "apiKey": s.api_key}]).to_string().into()))
        .await
        .unwrap();
    let m = ws_recv(&mut ws).await.unwrap();
    assert_eq!(m["data"][0]["connectionSessionUUID"], json!(session), "{m}");
}

#[tokio::test]
async fn hardening_websockets_count_against_the_connection_limit() {
    let s = TestServer::start_with(|c| c.server.max_connections = 3).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = ws_connect(&s).await;
        ws_auth(&mut ws, &s.api_key).await;
        sockets.push(ws);
    }
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    assert_eq!(status_of(&read_reply(&mut tcp, Duration::from_secs(5)).await), 503);
    // Closing one frees its place.
    let mut ws = sockets.pop().unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.http.get(format!("{}/health", s.base_url)).send().await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the closed socket's place was not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn hardening_detached_sessions_hold_bounded_results_and_say_what_they_dropped() {
    let s = TestServer::start_with(|c| c.websocket.backlog_max_bytes = 2_000).await;
    let mut ws = ws_connect(&s).await;
    let session = ws_auth(&mut ws, &s.api_key).await;
    let u = task_uuid();
    let task = json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": "a detached fox",
        "model": "mediagate:procedural@1", "width": 256, "height": 256, "numberResults": 4,
        "outputType": "base64Data"}]);
    ws.send(Message::Text(task.to_string().into())).await.unwrap();
    // Walk away at once: the results (far more than 2,000 bytes) are produced while detached.
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = s.post(&json!([{"taskType": "getResponse", "taskUUID": u}])).await;
        if v["data"].as_array().is_some_and(|d| d.iter().all(|i| i["status"] == "success")) {
            break;
        }
        assert!(Instant::now() < deadline, "the task did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Resuming says what was dropped, in an error object with no task, before anything else.
    let mut ws = ws_connect(&s).await;
    ws.send(Message::Text(
        json!([{"taskType": "authentication", "apiKey": s.api_key, "connectionSessionUUID": session}])
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let m = ws_recv(&mut ws).await.unwrap();
    assert_eq!(m["data"][0]["connectionSessionUUID"], json!(session), "{m}");
    let m = ws_recv(&mut ws).await.unwrap();
    let e = &m["errors"][0];
    assert_eq!(e["code"], "sessionExpired", "{m}");
    assert!(e["message"].as_str().unwrap().contains("getResponse"), "{m}");
    assert!(e["taskUUID"].is_null() && e["taskType"].is_null(), "{m}");
    // A session that cannot be resumed at all is answered with a new one and the same notice.
    let mut ws = ws_connect(&s).await;
    let gone = uuid::Uuid::new_v4().to_string();
    ws.send(Message::Text(
        json!([{"taskType": "authentication", "apiKey": s.api_key, "connectionSessionUUID": gone}])
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let m = ws_recv(&mut ws).await.unwrap();
    assert!(m["data"][0]["connectionSessionUUID"].as_str().is_some_and(|n| n != gone), "{m}");
    let m = ws_recv(&mut ws).await.unwrap();
    assert_eq!(m["errors"][0]["code"], "sessionExpired", "{m}");
}
