//! The developer portal at `/portal`: plain HTTP checks of its security properties (cookie
//! flags, headers on every page, CSRF, sign-out, expiry, the key policy, escaping), and a real
//! browser (Debian's Chromium driven by playwright-core from tests/sdk/portal_browser.mjs)
//! through every page, which also saves the screenshots of docs/portal.md.
//!
//! The browser test needs `chromium` (apt) and `npm ci` in tests/sdk; elsewhere it is skipped
//! with a message, and under CI=true it fails instead (see .ci/run).

mod common;

use common::skip_or_fail;
use mediagate_server::portal::{CSP, ROUTES};
use mediagate_testkit::images::png_data_uri;
use mediagate_testkit::{TestServer, task_uuid};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in with `key`; returns the `Set-Cookie` header and the `name=value` pair to send back.
async fn sign_in(s: &TestServer, key: &str) -> (String, String) {
    let r =
        client().post(format!("{}/portal/sign-in", s.base_url)).form(&[("key", key)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (set, pair)
}

async fn get(s: &TestServer, cookie: &str, path: &str) -> (StatusCode, HeaderMap, String) {
    let r = client().get(format!("{}{path}", s.base_url)).header("cookie", cookie).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

async fn post(
    s: &TestServer,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let r = client()
        .post(format!("{}{path}", s.base_url))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

/// The synchronizer token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with the token") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

async fn token(s: &TestServer, cookie: &str) -> String {
    let (status, _, page) = get(s, cookie, "/portal/keys").await;
    assert_eq!(status, 200, "{page}");
    csrf_of(&page)
}

async fn admin_key(s: &TestServer) -> String {
    s.engine.admin().create_admin_key("portal test").await.unwrap().1
}

fn assert_portal_headers(path: &str, h: &HeaderMap) {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(header("content-security-policy"), CSP, "{path}");
    assert_eq!(header("x-frame-options"), "DENY", "{path}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    assert_eq!(header("cache-control"), "no-store", "{path}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_expiring_and_secure_behind_https() {
    let s = TestServer::start().await;
    let (set, _) = sign_in(&s, &s.api_key).await;
    assert!(set.starts_with("mg_portal="), "{set}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Max-Age=28800"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP has no Secure flag: {set}");
    assert!(!set.contains(&s.api_key));
    let tls = TestServer::start_with(|c| c.public_base_url = "https://media.example".into()).await;
    let (set, _) = sign_in(&tls, &tls.api_key).await;
    assert!(set.contains("; Secure") && set.contains("HttpOnly"), "{set}");
}

#[tokio::test]
async fn every_portal_response_carries_the_csp_and_the_other_headers() {
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    let (_, account) = sign_in(&s, &s.api_key).await;
    let (_, operator) = sign_in(&s, &admin).await;
    let mut checked = 0;
    for (method, path) in ROUTES {
        let concrete = path.replace("{id}", "1").replace("{action}", "disable").replace("{name}", "default");
        for cookie in [&account, &operator, &String::new()] {
            let (_, h, _) = if *method == "GET" {
                get(&s, cookie, &concrete).await
            } else {
                post(&s, cookie, &concrete, &[]).await
            };
            assert_portal_headers(&concrete, &h);
            checked += 1;
        }
    }
    // The portal's own 404 and a method no portal route takes.
    let (status, h, _) = get(&s, &account, "/portal/nowhere").await;
    assert_eq!(status, 404);
    assert_portal_headers("/portal/nowhere", &h);
    let r = client().delete(format!("{}/portal/keys", s.base_url)).send().await.unwrap();
    assert_portal_headers("DELETE /portal/keys", r.headers());
    assert!(checked >= 40);
    // Not on the API's responses.
    let r = client().get(format!("{}/health", s.base_url)).send().await.unwrap();
    assert!(r.headers().get("content-security-policy").is_none());
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_is_refused() {
    let s = TestServer::start().await;
    let (_, cookie) = sign_in(&s, &s.api_key).await;
    let good = token(&s, &cookie).await;
    for form in [vec![("description", "x")], vec![("description", "x"), ("csrf", "0".repeat(64).as_str())]] {
        let (status, _, page) = post(&s, &cookie, "/portal/keys", &form).await;
        assert_eq!(status, 403, "{page}");
        let (status, _, _) = post(&s, &cookie, "/portal/sign-out", &form[1..]).await;
        assert_eq!(status, 403);
    }
    // Another session's token is wrong too.
    let (_, other) = sign_in(&s, &s.api_key).await;
    let theirs = token(&s, &other).await;
    assert_ne!(theirs, good);
    let (status, _, _) = post(&s, &cookie, "/portal/keys", &[("description", "x"), ("csrf", &theirs)]).await;
    assert_eq!(status, 403);
    assert_eq!(s.engine.admin().list_keys(Some("default")).await.unwrap().len(), 1, "no key was made");
    let (status, _, page) = post(&s, &cookie, "/portal/keys", &[("description", "x"), ("csrf", &good)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("shown only this once"));
    // A cross-site sign-in post (login CSRF) is refused by its Sec-Fetch-Site.
    let r = client()
        .post(format!("{}/portal/sign-in", s.base_url))
        .header("sec-fetch-site", "cross-site")
        .form(&[("key", s.api_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get(SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_session_is_gone_after_sign_out_and_after_it_expires() {
    let s = TestServer::start_with(|c| c.portal.session_ttl_secs = 1).await;
    let (set, cookie) = sign_in(&s, &s.api_key).await;
    assert!(set.contains("Max-Age=1"), "{set}");
    let csrf = token(&s, &cookie).await;
    let (status, h, _) = post(&s, &cookie, "/portal/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(h[LOCATION], "/portal");
    assert!(h[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (status, _, page) = get(&s, &cookie, "/portal/keys").await;
    assert_eq!(status, 401, "signed out: {page}");
    assert!(page.contains("Sign in"));
    let (status, _, _) = get(&s, &cookie, "/portal/usage").await;
    assert_eq!(status, 401);
    // Expiry: the TTL is one second, absolute.
    let (_, cookie) = sign_in(&s, &s.api_key).await;
    assert_eq!(get(&s, &cookie, "/portal/keys").await.0, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(get(&s, &cookie, "/portal/keys").await.0, 401, "expired");
    // Signing in again from the same browser ends the session it had.
    let (_, first) = sign_in(&s, &s.api_key).await;
    let r = client()
        .post(format!("{}/portal/sign-in", s.base_url))
        .header("cookie", &first)
        .form(&[("key", s.api_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(get(&s, &first, "/portal/keys").await.0, 401, "the earlier session is gone");
    // A made-up cookie is no session either.
    assert_eq!(get(&s, &format!("mg_portal={}", "ab".repeat(32)), "/portal/keys").await.0, 401);
}

#[tokio::test]
async fn a_wrong_key_gets_one_generic_answer_and_failures_are_throttled() {
    let s = TestServer::start_with(|c| {
        c.limits.invalid_key_burst = 3;
        c.limits.invalid_key_rate_per_sec = 0.01;
    })
    .await;
    let wrong = format!("key_{}", "0".repeat(128));
    for key in [wrong.as_str(), "key_<script>alert(1)</script>", "admin_nope"] {
        let r = client()
            .post(format!("{}/portal/sign-in", s.base_url))
            .form(&[("key", key)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers().get(SET_COOKIE).is_none_or(|c| c.to_str().unwrap().contains("Max-Age=0")));
        let page = r.text().await.unwrap();
        assert!(page.contains("This key is not valid."), "{page}");
        assert!(!page.contains(key) && !page.contains("<script>alert"), "the key is not echoed: {page}");
    }
    let r = client()
        .post(format!("{}/portal/sign-in", s.base_url))
        .form(&[("key", wrong.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "the API's throttle of failing addresses applies");
    assert!(r.headers().get("retry-after").is_some());
    // A valid key still signs in from a throttled address (as on the API).
    sign_in(&s, &s.api_key).await;
}

#[tokio::test]
async fn only_an_unrestricted_key_manages_keys_and_only_its_accounts() {
    let s = TestServer::start().await;
    let scoped = s.create_key("default", &["task:imageInference"]).await;
    let (_, cookie) = sign_in(&s, &scoped).await;
    let (status, _, page) = get(&s, &cookie, "/portal/keys").await;
    assert_eq!(status, 200);
    assert!(page.contains("read-only") && !page.contains("Create key"), "{page}");
    let csrf = csrf_of(&page);
    let (status, _, _) =
        post(&s, &cookie, "/portal/keys", &[("description", "wider"), ("csrf", &csrf)]).await;
    assert_eq!(status, 403);
    let keys = s.engine.admin().list_keys(Some("default")).await.unwrap();
    let path = format!("/portal/keys/{}/disable", keys[0].id);
    assert_eq!(post(&s, &cookie, &path, &[("csrf", &csrf)]).await.0, 403);
    assert_eq!(s.engine.admin().list_keys(Some("default")).await.unwrap().len(), 2);
    // An unrestricted key of one account cannot touch another account's keys.
    s.engine.admin().create_account("other", "1").await.unwrap();
    let theirs = s.engine.admin().create_key("other", "theirs", &[]).await.unwrap().record;
    let (_, cookie) = sign_in(&s, &s.api_key).await;
    let csrf = token(&s, &cookie).await;
    let (status, _, _) =
        post(&s, &cookie, &format!("/portal/keys/{}/disable", theirs.id), &[("csrf", &csrf)]).await;
    assert_eq!(status, 404);
    let after = s.engine.admin().list_keys(Some("other")).await.unwrap();
    assert_eq!(after[0].status.as_str(), "active");
    // An account's session is not an operator's.
    assert_eq!(get(&s, &cookie, "/portal/operator").await.0, 403);
}

#[tokio::test]
async fn values_from_requests_are_escaped() {
    let s = TestServer::start().await;
    let (_, cookie) = sign_in(&s, &s.api_key).await;
    let csrf = token(&s, &cookie).await;
    let evil = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    let (status, _, page) =
        post(&s, &cookie, "/portal/keys", &[("description", evil), ("csrf", &csrf)]).await;
    assert_eq!(status, 200);
    assert!(!page.contains(evil) && !page.contains("<img src=x"), "{page}");
    assert!(
        page.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;"),
        "{page}"
    );
}

#[tokio::test]
async fn sessions_are_bounded_and_the_portal_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.portal.max_sessions = 1).await;
    sign_in(&s, &s.api_key).await;
    let r = client()
        .post(format!("{}/portal/sign-in", s.base_url))
        .form(&[("key", s.api_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("maximum of 1 sessions"));
    let off = TestServer::start_with(|c| c.portal.enabled = false).await;
    let r = client().get(format!("{}/portal", off.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("content-security-policy").is_none());
}

#[tokio::test]
async fn the_usage_page_shows_the_same_figures_as_the_organization_endpoint() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post(
            &json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": "a lighthouse",
            "model": "mediagate:procedural@1", "width": 128, "height": 128}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, cookie) = sign_in(&s, &s.api_key).await;
    let (status, _, page) = get(&s, &cookie, "/portal/usage").await;
    assert_eq!(status, 200);
    let balance = mediagate_core::money::format_usd(s.balance("default").await);
    assert!(page.contains(&format!("<dd id=\"balance\">${balance}</dd>")), "{page}");
    let today = chrono::Utc::now().date_naive().to_string();
    assert!(page.contains(&format!("data-day=\"{today}\" data-model=\"mediagate:procedural@1\"")), "{page}");
    let (status, _, page) = get(&s, &cookie, "/portal/usage?from=2020-01-01&to=2026-13-01").await;
    assert_eq!(status, 400);
    assert!(page.contains("not a date"));
}

#[tokio::test]
async fn the_operator_manages_accounts_credit_and_limits() {
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    let (_, cookie) = sign_in(&s, &admin).await;
    let (status, _, page) = get(&s, &cookie, "/portal/operator").await;
    assert_eq!(status, 200);
    assert!(page.contains("data-account=\"default\""));
    let csrf = csrf_of(&page);
    let (status, h, _) =
        post(&s, &cookie, "/portal/operator/accounts", &[("name", "acme"), ("credit", "5"), ("csrf", &csrf)])
            .await;
    assert_eq!((status, h[LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/portal/operator"));
    let f = [("status", "suspended"), ("csrf", csrf.as_str())];
    assert_eq!(post(&s, &cookie, "/portal/operator/accounts/acme/status", &f).await.0, 303);
    let f = [("usd", "2.50"), ("note", "welcome"), ("csrf", csrf.as_str())];
    assert_eq!(post(&s, &cookie, "/portal/operator/accounts/acme/credits", &f).await.0, 303);
    let f = [("model", "mediagate:procedural@1"), ("maxDaily", "7"), ("csrf", csrf.as_str())];
    assert_eq!(post(&s, &cookie, "/portal/operator/accounts/acme/limits", &f).await.0, 303);
    let acme = s.engine.store().account_by_name("acme").await.unwrap().unwrap();
    assert_eq!((acme.status.as_str(), acme.balance_micros), ("suspended", 7_500_000));
    let (status, _, page) = get(&s, &cookie, "/portal/operator/accounts/acme").await;
    assert_eq!(status, 200);
    assert!(page.contains("welcome") && page.contains("&quot;maxDaily&quot;:7"), "{page}");
    let f = [("model", "mediagate:procedural@1"), ("maxDaily", "x"), ("csrf", csrf.as_str())];
    assert_eq!(post(&s, &cookie, "/portal/operator/accounts/acme/limits", &f).await.0, 400);
    assert_eq!(get(&s, &cookie, "/portal/operator/accounts/nobody").await.0, 404);
}

#[tokio::test]
async fn the_request_history_pages_filter_page_and_show_a_task_as_text() {
    let s = TestServer::start_with(|c| c.history.page_size = 2).await;
    let evil = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    let mut sent = Vec::new();
    for prompt in ["a lighthouse", evil, "a heron", "an owl"] {
        let u = task_uuid();
        let (status, body) = s
            .post(&json!([{"taskType": "imageInference", "taskUUID": u, "positivePrompt": prompt,
                "model": "mediagate:procedural@1", "width": 64, "height": 64}]))
            .await;
        assert_eq!(status, 200, "{body}");
        sent.push(u);
    }
    let failed = task_uuid();
    let (status, _) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": failed, "inputImage": png_data_uri(4000, 400), "upscaleFactor": 4}]))
        .await;
    assert_eq!(status, 400);
    let (_, cookie) = sign_in(&s, &s.api_key).await;
    // Newest first, two a page, the next page by its cursor (the filters kept).
    let (status, _, page) = get(&s, &cookie, "/portal/history?status=success").await;
    assert_eq!(status, 200, "{page}");
    let order = |page: &str| -> Vec<String> {
        page.split("data-task=\"").skip(1).map(|r| r[..36].to_string()).collect()
    };
    assert_eq!(order(&page), vec![sent[3].clone(), sent[2].clone()]);
    let next = page
        .split("id=\"next-page\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(next.contains("status=success") && next.contains("cursor="), "{next}");
    let (_, _, page2) = get(&s, &cookie, &next).await;
    assert_eq!(order(&page2), vec![sent[1].clone(), sent[0].clone()]);
    // Status and error code at a glance; the filter by error code and by text.
    let (_, _, page) = get(&s, &cookie, "/portal/history?errorCode=assetAspectRatio").await;
    assert_eq!(order(&page), vec![failed.clone()]);
    assert!(page.contains("<code class=\"error-code\">assetAspectRatio</code>"), "{page}");
    let (_, _, page) = get(&s, &cookie, "/portal/history?q=__pwned").await;
    assert_eq!(order(&page), vec![sent[1].clone()]);
    // A filter the API refuses is said on the page.
    let (status, _, page) = get(&s, &cookie, "/portal/history?errorCode=noSuchCode").await;
    assert_eq!(status, 400);
    assert!(page.contains("noSuchCode is not an error code"), "{page}");
    // One task: the prompt is text, never markup.
    let (status, _, page) = get(&s, &cookie, &format!("/portal/history/{}", sent[1])).await;
    assert_eq!(status, 200);
    assert!(!page.contains("<script>window") && !page.contains("<img src=x"), "{page}");
    assert!(page.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"), "{page}");
    let (_, _, page) = get(&s, &cookie, &format!("/portal/history/{failed}")).await;
    assert!(page.contains("assetAspectRatio") && page.contains("/docs/errors#assetAspectRatio"), "{page}");
    // Another account's task is not found; a scoped session sees only its own key's tasks.
    s.engine.admin().create_account("other", "1").await.unwrap();
    let theirs = s.create_key("other", &[]).await;
    let (_, other) = sign_in(&s, &theirs).await;
    assert_eq!(get(&s, &other, &format!("/portal/history/{}", sent[0])).await.0, 404);
    let scoped = s.create_key("default", &["task:imageInference"]).await;
    let (_, cookie) = sign_in(&s, &scoped).await;
    let (_, _, page) = get(&s, &cookie, "/portal/history").await;
    assert!(order(&page).is_empty(), "{page}");
}

// --- The browser --------------------------------------------------------------------------

/// Whether Chromium, node and playwright-core are there; skips (or, under CI, fails) if not.
fn have_browser(sdk: &Path) -> bool {
    if !Path::new("/usr/bin/chromium").exists() {
        skip_or_fail("Chromium is not installed (apt-get install chromium)");
        return false;
    }
    if Command::new("node").arg("--version").output().is_err() {
        skip_or_fail("node is not installed");
        return false;
    }
    if !sdk.join("node_modules/playwright-core").exists() {
        skip_or_fail("playwright-core is not installed (run `npm ci` in tests/sdk)");
        return false;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_browser_goes_through_the_portal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sdk = root.join("tests/sdk");
    if !have_browser(&sdk) {
        return;
    }
    let s = TestServer::start().await;
    let admin = admin_key(&s).await;
    // A task, so that today's spend is on the chart; its prompt would run script if a page
    // ever wrote it unescaped.
    let prompt = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    let (status, body) = s
        .post(&json!([{"taskType": "imageInference", "taskUUID": task_uuid(), "positivePrompt": prompt,
            "model": "mediagate:procedural@1", "width": 128, "height": 128}]))
        .await;
    assert_eq!(status, 200, "{body}");
    // A failure recorded after admission (a 10:1 image is outside the upscaler's ratios), for
    // the error's page and its documentation link.
    let failed = task_uuid();
    let (status, body) = s
        .post(&json!([{"taskType": "upscale", "taskUUID": failed, "inputImage": png_data_uri(4000, 400), "upscaleFactor": 4}]))
        .await;
    assert_eq!(status, 400, "{body}");
    // The screenshots of docs/portal.md are rewritten only when asked
    // (`MG_UPDATE_SCREENSHOTS=1 cargo test --test portal`); otherwise they go to a temporary
    // directory, so a test run leaves the tree as it was.
    let tmp_shots = tempfile::tempdir().unwrap();
    let shots = if std::env::var_os("MG_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs/portal")
    } else {
        tmp_shots.path().to_path_buf()
    };
    std::fs::create_dir_all(&shots).unwrap();
    let mut script = Command::new("node")
        .arg("portal_browser.mjs")
        .current_dir(&sdk)
        .env("MG_HTTP", &s.base_url)
        .env("MG_KEY", &s.api_key)
        .env("MG_ADMIN_KEY", &admin)
        .env("MG_SHOTS", &shots)
        .env("MG_TODAY", chrono::Utc::now().date_naive().to_string())
        .env("MG_PROMPT", prompt)
        .env("MG_FAILED", &failed)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node");
    let mut stdin = script.stdin.take().unwrap();
    let stdout = BufReader::new(script.stdout.take().unwrap());
    let stderr = script.stderr.take().unwrap();
    let err_log = std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>().join("\n")
    });
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The script asks for API calls with the key it made in the portal; they go out with
    // reqwest, as any client's would, and the status goes back on its stdin.
    let http = reqwest::Client::new();
    let mut ok = false;
    let mut used = Vec::new();
    let wait = tokio::time::timeout(Duration::from_secs(240), async {
        while let Some(line) = lines.recv().await {
            if let Some(key) = line.strip_prefix("CALL ") {
                let r = http
                    .post(format!("{}/v1", s.base_url))
                    .bearer_auth(key)
                    .json(&json!([{"taskType": "imageInference", "taskUUID": task_uuid(),
                        "positivePrompt": "a lighthouse", "model": "mediagate:procedural@1",
                        "width": 128, "height": 128}]))
                    .send()
                    .await
                    .unwrap();
                used.push(r.status().as_u16());
                writeln!(stdin, "{}", r.status().as_u16()).unwrap();
                stdin.flush().unwrap();
            } else if line == "OK" {
                ok = true;
            } else {
                eprintln!("browser: {line}");
            }
        }
    })
    .await;
    let status = script.wait().unwrap();
    let err = err_log.join().unwrap();
    assert!(wait.is_ok(), "the browser script hung:\n{err}");
    assert!(status.success() && ok, "the browser script failed ({status}):\n{err}");
    // The scoped key worked over the API, then was refused with 401 once disabled in the portal.
    assert_eq!(used, vec![200, 401], "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_the_key_nor_the_session_id_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::mg(dir.path(), &["accounts", "create", "acme", "--credit-usd", "1"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = common::mg(dir.path(), &["keys", "create", "--account", "acme"]);
    let key = common::stdout(&o).trim().to_string();
    assert!(key.starts_with("key_"), "{key}");
    // The harness logs at `trace`; request lines on too.
    let server = common::Server::start(dir.path(), &[("MEDIAGATE_LOG__REQUESTS", "true")], &[]);
    let base = server.base.clone();
    let r =
        client().post(format!("{base}/portal/sign-in")).form(&[("key", key.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let id = cookie.trim_start_matches("mg_portal=").to_string();
    let r = client().get(format!("{base}/portal/usage")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let wrong = format!("key_{}", "7".repeat(128));
    let r = client()
        .post(format!("{base}/portal/sign-in"))
        .form(&[("key", wrong.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log_text();
    assert!(
        log.contains("/portal/sign-in") && log.contains("/portal/usage"),
        "the requests were logged: {log}"
    );
    for secret in [&key, &id, &wrong] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log:\n{log}");
    }
}
