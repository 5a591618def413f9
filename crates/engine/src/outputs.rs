//! Output files on disk under `<data_dir>/outputs`, written atomically (temporary file, then
//! rename) so a crash never leaves a half-written output behind a URL.

use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The output directory.
#[derive(Debug, Clone)]
pub struct OutputFiles {
    root: PathBuf,
}

impl OutputFiles {
    /// Opens (creating) the directory and clears temporary files a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(OutputFiles { root })
    }

    /// Where an output lives: sharded by the UUID's first two hex digits to keep directories small.
    pub fn path(&self, uuid: Uuid, extension: &str) -> PathBuf {
        let s = uuid.simple().to_string();
        self.root.join(&s[..2]).join(format!("{uuid}.{extension}"))
    }

    /// Writes an output atomically. Blocking: call from the blocking pool.
    pub fn write(&self, uuid: Uuid, extension: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dest = self.path(uuid, extension);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.root.join("tmp").join(format!("{uuid}.{extension}.part"));
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .and_then(|()| std::fs::rename(&tmp, &dest));
        if written.is_err() {
            // A part written before the disk filled up would keep it full.
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// A temporary file's path in the outputs directory (same file system, so it can be adopted
    /// by a rename; cleared at start).
    pub fn temp_path(&self, uuid: Uuid, extension: &str) -> PathBuf {
        self.root.join("tmp").join(format!("{uuid}.{extension}.part"))
    }

    /// Moves a finished temporary file into place as output `uuid`. Blocking.
    pub fn adopt(&self, from: &Path, uuid: Uuid, extension: &str) -> std::io::Result<()> {
        let dest = self.path(uuid, extension);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(from, &dest)
    }

    /// Reads an output.
    pub async fn read(&self, uuid: Uuid, extension: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(uuid, extension)).await
    }

    /// Deletes an output; a missing file is not an error.
    pub fn remove(&self, uuid: Uuid, extension: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(uuid, extension)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}
