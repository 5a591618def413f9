//! Shared helpers for tests that run the `mediagate` binary as a separate process.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mediagate");

pub fn mg(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("MEDIAGATE_CONFIG")
        .output()
        .expect("run mediagate")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A server process whose stderr is collected line by line.
pub struct Server {
    pub child: Child,
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(dir: &Path, envs: &[(&str, &str)], extra: &[&str]) -> Server {
        Self::start_on(dir, "127.0.0.1:0", envs, extra)
    }

    pub fn start_on(dir: &Path, listen: &str, envs: &[(&str, &str)], extra: &[&str]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(dir).args(extra).args(["serve", "--listen", listen]);
        cmd.env_remove("MEDIAGATE_CONFIG").env("MEDIAGATE_LOG", "trace,hyper=info,h2=info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn server");
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = BufReader::new(child.stderr.take().unwrap());
        let l = log.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = log
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix("mediagate listening on ").map(str::to_string));
            if let Some(addr) = found {
                return Server { child, base: addr, log };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("server exited with {status}: {}", log.lock().unwrap().join("\n"));
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn banner_key(&self) -> Option<String> {
        self.log.lock().unwrap().iter().find_map(|l| {
            let t = l.trim();
            (t.starts_with("key_") && t.len() == 132).then(|| t.to_string())
        })
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn post(base: &str, key: &str, body: &Value) -> (u16, Value) {
    let client = reqwest::blocking_client();
    client(base, key, body)
}

/// A Runway-dialect request (`X-Runway-Version` and the key set) from a synchronous test.
pub fn runway(base: &str, key: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut r = ::reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(key)
            .header("X-Runway-Version", "2024-11-06")
            .timeout(std::time::Duration::from_secs(120));
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.expect("request");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    })
}

mod reqwest {
    pub use ::reqwest::*;
    /// A blocking-style POST through a throwaway runtime (tests here are synchronous).
    pub fn blocking_client() -> impl Fn(&str, &str, &serde_json::Value) -> (u16, serde_json::Value) {
        |base, key, body| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let r = Client::new()
                    .post(format!("{base}/v1"))
                    .bearer_auth(key)
                    .json(body)
                    .timeout(std::time::Duration::from_secs(120))
                    .send()
                    .await
                    .expect("request");
                let st = r.status().as_u16();
                (st, r.json().await.unwrap_or(serde_json::Value::Null))
            })
        }
    }
}

/// A test that needs something from outside the project (an SDK, a tool) skips with `why`
/// where it is missing, and fails under CI (`CI=true`), which installs everything.
pub fn skip_or_fail(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test cannot run under CI: {why}");
    }
    eprintln!("skipped: {why}");
}
