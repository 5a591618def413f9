//! Where a task's time went, as the `Server-Timing` header of its responses shows it
//! (<https://www.w3.org/TR/server-timing/>): `queue` (waiting for a concurrency slot),
//! `provider` (running: inputs, the provider's work, output files), `store` (the store's writes
//! on the task's path) and `total`.
//!
//! A response that carries the end of a task this process just ran (a sync task) has every
//! figure measured. A poll of a finished task reads them from its record, which keeps `queue`,
//! `provider` and the admission write; there `store` is the admission write only (the end's own
//! write is inside `total`, which runs from admission to the recorded end, in milliseconds).

use mediagate_store::{TaskRecord, TaskTimings};
use std::time::Duration;

/// Where a task's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    /// Waiting for a concurrency slot.
    pub queue: Duration,
    /// Running: inputs, the provider's work, output files.
    pub provider: Duration,
    /// The store's writes on the task's path.
    pub store: Duration,
    /// From admission to the recorded end.
    pub total: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Timing {
    /// The figures a finished task's record keeps; `None` for a task without them (unfinished,
    /// ended before they were recorded, or never run).
    pub fn of_record(rec: &TaskRecord) -> Option<Timing> {
        let t = rec.timings?;
        let total_ms = rec.finished_at?.saturating_sub(rec.created_at).max(0) as f64;
        let d = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
        Some(Timing {
            queue: d(t.queue_ms),
            provider: d(t.provider_ms),
            store: d(t.admit_ms),
            total: d(total_ms),
        })
    }

    /// What the record keeps of these figures, given the admission write's part of `store`.
    pub fn to_record(self, admit: Duration) -> TaskTimings {
        TaskTimings { queue_ms: ms(self.queue), provider_ms: ms(self.provider), admit_ms: ms(admit) }
    }

    /// The `Server-Timing` header value, durations in milliseconds.
    pub fn header_value(&self) -> String {
        format!(
            "queue;dur={:.2}, provider;dur={:.2}, store;dur={:.2}, total;dur={:.2}",
            ms(self.queue),
            ms(self.provider),
            ms(self.store),
            ms(self.total)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_each_phase_in_milliseconds() {
        let t = Timing {
            queue: Duration::from_micros(1500),
            provider: Duration::from_millis(20),
            store: Duration::from_micros(250),
            total: Duration::from_millis(23),
        };
        assert_eq!(t.header_value(), "queue;dur=1.50, provider;dur=20.00, store;dur=0.25, total;dur=23.00");
    }
}
