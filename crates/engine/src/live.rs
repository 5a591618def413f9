//! What a task shows while it runs in this process: its phase, its progress, and the switch
//! that cancels it. The store knows only `processing`; dialects that show more (Runway's
//! `PENDING` / `THROTTLED` / `RUNNING` with `progress`) read it here.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use tokio_util::sync::CancellationToken;

/// The phase of a task that is admitted but not finished.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskPhase {
    /// Admitted, not started yet.
    Pending,
    /// Waiting for a concurrency slot (the account is at its limit for the model).
    Throttled,
    /// Running, with progress from 0.0 to 1.0 (as far as the provider reports it).
    Running {
        /// Fraction done.
        progress: f32,
    },
}

const PENDING: u8 = 0;
const RUNNING: u8 = 1;

/// Shared between a running task and the readers of its state.
#[derive(Debug, Default)]
pub struct LiveTask {
    phase: AtomicU8,
    progress: AtomicU32,
    cancel: CancellationToken,
    attempts: AttemptLog,
}

/// Each provider call made for one task, in order, kept with its end for history.
#[derive(Debug, Default)]
pub struct AttemptLog(parking_lot::Mutex<Vec<mediagate_store::ProviderAttempt>>);

impl AttemptLog {
    /// Adds one attempt.
    pub fn push(&self, attempt: mediagate_store::ProviderAttempt) {
        self.0.lock().push(attempt);
    }

    /// Every attempt so far, leaving the log empty.
    pub fn take(&self) -> Vec<mediagate_store::ProviderAttempt> {
        std::mem::take(&mut *self.0.lock())
    }
}

impl LiveTask {
    /// The current phase.
    pub fn phase(&self) -> TaskPhase {
        match self.phase.load(Ordering::Acquire) {
            PENDING => TaskPhase::Pending,
            _ => TaskPhase::Running { progress: f32::from_bits(self.progress.load(Ordering::Relaxed)) },
        }
    }

    /// Marks the task as running.
    pub fn set_running(&self) {
        self.phase.store(RUNNING, Ordering::Release);
    }

    /// Records progress; it never goes backwards (a retry restarting the provider's count
    /// would otherwise make the bar jump back).
    pub fn set_progress(&self, fraction: f32) {
        let f = fraction.clamp(0.0, 1.0);
        let _ = self.progress.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            (f > f32::from_bits(old)).then_some(f.to_bits())
        });
    }

    /// The provider calls made for the task so far.
    pub fn attempts(&self) -> &AttemptLog {
        &self.attempts
    }

    /// The token the task's run watches; cancelling it stops the run and any provider job.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_monotonic_progress() {
        let t = LiveTask::default();
        assert_eq!(t.phase(), TaskPhase::Pending);
        t.set_running();
        t.set_progress(0.5);
        t.set_progress(0.25);
        assert_eq!(t.phase(), TaskPhase::Running { progress: 0.5 });
        t.set_progress(7.0);
        assert_eq!(t.phase(), TaskPhase::Running { progress: 1.0 });
    }
}
