//! Daily task caps per account and model, over a rolling 24-hour window.
//!
//! A capped (account, model) pair keeps the admission times of its tasks of the last 24 hours
//! in memory (at most about the cap: the window stops growing at the cap), loaded from the store
//! the first time the pair is checked, so a restart does not reset the count. A task counts from
//! the moment it is admitted; a task that ends in error stops counting (it produced nothing).
//! Uncapped pairs are not tracked; their usage is counted from the store when shown.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The window, in milliseconds.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;

/// One pair's admissions: (time ms, taskUUID), oldest first.
#[derive(Default)]
pub struct Window {
    /// Set once the store's admissions are loaded.
    pub loaded: tokio::sync::OnceCell<()>,
    entries: Mutex<VecDeque<(i64, Uuid)>>,
}

impl Window {
    /// Adds admissions read from the store (before any local one).
    pub fn preload(&self, mut rows: Vec<(i64, Uuid)>) {
        rows.sort_unstable();
        let mut e = self.entries.lock();
        let local = std::mem::take(&mut *e);
        e.extend(rows);
        e.extend(local);
    }

    fn prune(e: &mut VecDeque<(i64, Uuid)>, now_ms: i64) {
        while e.front().is_some_and(|(t, _)| *t <= now_ms - WINDOW_MS) {
            e.pop_front();
        }
    }

    /// Counts a task if the cap allows it; else the wait until the oldest leaves the window.
    pub fn reserve(&self, now_ms: i64, cap: u32, task: Uuid) -> Result<(), (u32, Duration)> {
        let mut e = self.entries.lock();
        Self::prune(&mut e, now_ms);
        if e.len() >= cap as usize {
            let oldest = e.front().map(|(t, _)| *t).unwrap_or(now_ms);
            let wait = (oldest + WINDOW_MS - now_ms).max(1);
            return Err((e.len() as u32, Duration::from_millis(wait as u64)));
        }
        e.push_back((now_ms, task));
        Ok(())
    }

    /// Stops counting a task (not admitted after all, or failed).
    pub fn forget(&self, task: Uuid) {
        let mut e = self.entries.lock();
        if let Some(i) = e.iter().rposition(|(_, u)| *u == task) {
            e.remove(i);
        }
    }

    /// Tasks counted now.
    pub fn used(&self, now_ms: i64) -> u32 {
        let mut e = self.entries.lock();
        Self::prune(&mut e, now_ms);
        e.len() as u32
    }
}

/// Windows by (account, model).
#[derive(Default)]
pub struct DailyWindows {
    windows: Mutex<HashMap<(i64, String), Arc<Window>>>,
}

impl DailyWindows {
    /// The window of a pair (created empty, not yet loaded).
    pub fn get(&self, account_id: i64, model: &str) -> Arc<Window> {
        let mut w = self.windows.lock();
        if let Some(x) = w.get(&(account_id, model.to_string())) {
            return x.clone();
        }
        let x = Arc::new(Window::default());
        w.insert((account_id, model.to_string()), x.clone());
        x
    }

    /// The window of a pair if it is tracked.
    pub fn existing(&self, account_id: i64, model: &str) -> Option<Arc<Window>> {
        self.windows.lock().get(&(account_id, model.to_string())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_window_counts_and_waits() {
        let w = Window::default();
        let t0 = 1_000_000_000;
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        w.reserve(t0, 2, a).unwrap();
        w.reserve(t0 + 1000, 2, b).unwrap();
        let (used, wait) = w.reserve(t0 + 5000, 2, c).unwrap_err();
        assert_eq!(used, 2);
        assert_eq!(wait, Duration::from_millis((WINDOW_MS - 5000) as u64));
        // When the oldest leaves the window, one more fits.
        w.reserve(t0 + WINDOW_MS, 2, c).unwrap();
        assert_eq!(w.used(t0 + WINDOW_MS), 2);
        // A failed task stops counting.
        w.forget(b);
        assert_eq!(w.used(t0 + WINDOW_MS), 1);
    }
}
