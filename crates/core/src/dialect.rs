//! The wire dialects a task can come in by.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The wire dialect of a task: how it was asked for and how its results and errors are shown
/// (in replies, `getResponse`, webhooks). Stored with the task, so a restart renders a resumed
/// task's webhooks in the dialect it came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Runware: task arrays over REST and WebSocket.
    Runware,
    /// Runway: per-endpoint REST with polled tasks.
    Runway,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: &'static [Dialect] = &[Dialect::Runware, Dialect::Runway];

    /// `runware` or `runway` (as in key scopes: `dialect:runway`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::Runware => "runware",
            Dialect::Runway => "runway",
        }
    }

    /// Parses [`Dialect::as_str`]'s names.
    pub fn parse(name: &str) -> Option<Dialect> {
        Dialect::ALL.iter().copied().find(|d| d.as_str() == name)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
