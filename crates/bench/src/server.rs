//! The real `mediagate serve` process every end-to-end benchmark measures.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running server on a fresh data directory; killed when dropped.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// The API key its first start printed.
    pub key: String,
    /// Holds the configuration file (if any) and the data directory `data/`.
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `bin serve` on a free loopback port with a data directory of its own and a large
    /// starting credit, then waits for its key and address on stderr. `configure` may add
    /// arguments and environment (it gets the temporary directory, e.g. to write a config file).
    pub fn start(bin: &Path, configure: impl FnOnce(&Path, &mut Command) -> Result<()>) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MEDIAGATE_BOOTSTRAP__INITIAL_CREDIT_USD", "1000000")
            .env_remove("MEDIAGATE_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(dir.path(), &mut cmd)?;
        let mut child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let (mut key, mut addr) = (None, None);
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line?;
            let t = line.trim();
            if t.starts_with("key_") && t.len() == 132 {
                key = Some(t.to_string());
            } else {
                seen.push(line.clone());
            }
            if let Some(a) = t.strip_prefix("mediagate listening on http://") {
                addr = Some(a.to_string());
                break;
            }
        }
        // Keep draining the server's logs so it never blocks on a full pipe.
        let echo = std::env::var_os("BENCH_ECHO_SERVER_LOG").is_some();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
            }
        });
        match (key, addr) {
            (Some(key), Some(addr)) => Ok(Server { child, addr, key, dir }),
            _ => bail!("the server did not start:\n{}", seen.join("\n")),
        }
    }

    /// The server's process id (for CPU accounting from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its SQLite database (to count task records after a run).
    pub fn database(&self) -> PathBuf {
        self.dir.path().join("data").join("mediagate.db")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
