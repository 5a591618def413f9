//! A real mediagate server on an ephemeral loopback port, over a temporary data directory.

use mediagate_engine::config::Config;
use mediagate_engine::{Engine, StoreRole, open_store};
use mediagate_store::Store;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A running server. Dropping it stops the server and deletes its data directory.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The bootstrap account's API key.
    pub api_key: String,
    /// The engine, for assertions on the store.
    pub engine: Arc<Engine>,
    /// A client with no default headers.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` edits the default configuration (listen address and
    /// data directory are set by the harness).
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        Self::try_start_with(adjust).await.unwrap_or_else(|e| panic!("the server did not start: {e}"))
    }

    /// Like [`TestServer::start_with`], but a store that cannot be opened (e.g. another server
    /// holds the PostgreSQL database) is an error, not a panic. The store is opened as `serve`
    /// opens it ([`StoreRole::Server`]).
    pub async fn try_start_with(adjust: impl FnOnce(&mut Config)) -> Result<TestServer, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut cfg =
            Config { data_dir: dir.path().to_path_buf(), listen: addr.to_string(), ..Config::default() };
        adjust(&mut cfg);
        let store: Arc<dyn Store> = open_store(&cfg, StoreRole::Server).await.map_err(|e| e.to_string())?;
        let engine = Arc::new(Engine::new(cfg, store).expect("engine"));
        let boot = engine.prepare().await.expect("prepare").expect("a fresh store bootstraps");
        mediagate_server::install(&engine);
        engine.resume_unfinished().await.expect("resume");
        engine.resume_webhooks().await.expect("resume webhooks");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mediagate_server::serve(listener, engine.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(TestServer {
            base_url: format!("http://{addr}"),
            api_key: boot.api_key,
            engine,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        })
    }

    /// POSTs a JSON body to `/v1` with the bootstrap key as a Bearer token.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_with_key(&self.api_key.clone(), body).await
    }

    /// Sends one task per case, `task(extra)`, and asserts that each is refused with 400 and an
    /// error of `code` naming `parameter` (a validation table: `(extra, code, parameter)`).
    pub async fn assert_refused(&self, cases: &[(Value, &str, &str)], task: impl Fn(Value) -> Value) {
        for (extra, code, parameter) in cases {
            let (status, body) = self.post(&serde_json::json!([task(extra.clone())])).await;
            let e = &body["errors"][0];
            assert_eq!(
                (e["code"].as_str(), e["parameter"].as_str()),
                (Some(*code), Some(*parameter)),
                "{extra}: {body}"
            );
            assert_eq!(status, 400, "{body}");
        }
    }

    /// POSTs a JSON body to `/v1` with `key` as a Bearer token.
    pub async fn post_with_key(&self, key: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1", self.base_url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates another key for `account` with the given scopes; returns the secret.
    pub async fn create_key(&self, account: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.engine.admin().create_key(account, "test", &scopes).await.expect("create key").secret
    }

    /// The balance of an account in micro-dollars.
    pub async fn balance(&self, account: &str) -> i64 {
        self.engine.store().account_by_name(account).await.expect("store").expect("account").balance_micros
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Adds a remote provider `name` of `kind` at `base_url` (polled every 20 ms) and one model per
/// `(air, task type)` served by it at `price_usd` a result, one attempt each: the usual set-up
/// of a test of a provider against a scripted upstream.
pub fn serve_models_from(
    c: &mut mediagate_engine::config::Config,
    name: &str,
    kind: mediagate_providers::upstream::UpstreamKind,
    base_url: &str,
    price_usd: &str,
    models: &[(&str, mediagate_core::task::TaskType)],
) {
    use mediagate_core::model::{Bounds, ModelSpec, RetryPolicy};
    c.providers.upstreams.push(mediagate_providers::upstream::UpstreamConfig {
        name: name.into(),
        kind,
        base_url: base_url.into(),
        poll_interval_ms: 20,
        ..Default::default()
    });
    for &(air, task_type) in models {
        c.models.push(ModelSpec {
            air: air.into(),
            task_type,
            provider: name.into(),
            price_usd: price_usd.into(),
            description: format!("a test model on {name}, a scripted upstream (a test double)"),
            bounds: Bounds { duration_max_secs: 30, ..Bounds::default() },
            retry: RetryPolicy { attempts: 1, ..RetryPolicy::default() },
            fallback: vec![],
            concurrency: 0,
        });
    }
}
