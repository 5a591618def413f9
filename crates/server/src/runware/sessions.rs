//! WebSocket sessions: what lets a client that lost its socket resume with its
//! `connectionSessionUUID` and receive the results produced while it was away.
//!
//! A session outlives its connection for `websocket.resume_window_secs`, holding the results
//! its connection could not take. What it holds is bounded, because a client can open many
//! sessions and walk away: per session by count (`websocket.backlog_max`) and bytes
//! (`websocket.backlog_max_bytes`), per account by the number of detached sessions
//! (`websocket.detached_sessions_per_account`, the oldest expires first), and in total by bytes
//! (`websocket.detached_max_bytes`). A result that does not fit is dropped (oldest first) and
//! counted; the client resuming is told with a `sessionExpired` error object how many were
//! dropped, and every result stays retrievable with `getResponse`. Expired sessions are purged
//! by a timer, not only when the next client attaches.

use mediagate_core::{ApiError, ErrorCode};
use mediagate_engine::config::WebSocketConfig;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A live connection: its id and outbound queue, bounded by count (the channel's capacity,
/// `websocket.outbound_queue`) and by bytes (`websocket.outbound_queue_bytes`).
#[derive(Clone)]
pub(crate) struct Conn {
    /// The connection's id.
    pub id: u64,
    tx: mpsc::Sender<String>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    max_bytes: usize,
}

impl Conn {
    /// A connection whose writer reads `tx`'s receiver and calls [`Conn::dequeued`].
    pub fn new(id: u64, tx: mpsc::Sender<String>, max_bytes: usize) -> Self {
        Conn { id, tx, queued: Default::default(), max_bytes: max_bytes.max(1) }
    }

    /// Queues `msg`, or hands it back when the queue is full by count or bytes (or closed).
    fn offer(&self, msg: String) -> Result<(), String> {
        use std::sync::atomic::Ordering::Relaxed;
        let len = msg.len();
        // A message larger than the whole byte bound still goes alone into an empty queue.
        if self.queued.load(Relaxed) > 0 && self.queued.load(Relaxed) + len > self.max_bytes {
            return Err(msg);
        }
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.queued.fetch_add(len, Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => Err(m),
        }
    }

    /// The writer took a message of `len` bytes off the queue.
    pub fn dequeued(&self, len: usize) {
        self.queued.fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What a session may hold while detached.
#[derive(Debug, Clone)]
struct Bounds {
    window: Duration,
    per_session_count: usize,
    per_session_bytes: usize,
    per_account_detached: usize,
    total_bytes: usize,
}

impl From<&WebSocketConfig> for Bounds {
    fn from(c: &WebSocketConfig) -> Self {
        Bounds {
            window: Duration::from_secs(c.resume_window_secs),
            per_session_count: c.backlog_max.max(1),
            per_session_bytes: c.backlog_max_bytes.max(1),
            per_account_detached: c.detached_sessions_per_account.max(1),
            total_bytes: c.detached_max_bytes.max(1),
        }
    }
}

/// Sessions by `connectionSessionUUID`, shared by every connection of the server.
pub struct Sessions {
    inner: Mutex<Inner>,
    bounds: Bounds,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Uuid, Session>,
    /// Bytes held in every session's backlog.
    bytes: usize,
}

struct Session {
    account_id: i64,
    conn: Option<Conn>,
    /// Results produced while no connection was attached (or its queue was full).
    backlog: VecDeque<String>,
    bytes: usize,
    /// Results dropped to stay within the bounds since the client last attached.
    dropped: u64,
    detached_at: Option<Instant>,
}

/// What attaching found.
pub(crate) struct Attached {
    /// The session's id (the one asked for when it was resumed, else a new one).
    pub id: Uuid,
    /// Results kept for the client, oldest first.
    pub backlog: Vec<String>,
    /// Why the client did not get everything it asked for, if it did not.
    pub notice: Option<ApiError>,
}

impl Sessions {
    /// Sessions bounded by the `[websocket]` configuration.
    pub fn new(cfg: &WebSocketConfig) -> Self {
        Sessions { inner: Mutex::new(Inner::default()), bounds: cfg.into() }
    }

    /// Purges expired sessions every `every` until the sessions are dropped (the server stopped).
    pub(crate) fn purge_forever(self: &Arc<Self>, every: Duration) {
        crate::edge::every_while_alive(self, every, Sessions::purge_expired);
    }

    fn purge_expired(&self) {
        let mut inner = self.inner.lock();
        let window = self.bounds.window;
        let expired: Vec<Uuid> = inner
            .map
            .iter()
            .filter(|(_, s)| s.detached_at.is_some_and(|t| t.elapsed() >= window))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            inner.remove(id);
        }
    }

    /// Attaches a connection to a new session, or to `resume` if it exists for this account and
    /// is within the window.
    pub(crate) fn attach(&self, account_id: i64, resume: Option<Uuid>, conn: Conn) -> Attached {
        self.purge_expired();
        let mut inner = self.inner.lock();
        if let Some(id) = resume
            && let Some(s) = inner.map.get_mut(&id)
            && s.account_id == account_id
        {
            s.conn = Some(conn);
            s.detached_at = None;
            let dropped = std::mem::take(&mut s.dropped);
            let backlog: Vec<String> = s.backlog.drain(..).collect();
            let freed = std::mem::take(&mut s.bytes);
            inner.bytes -= freed;
            let notice = (dropped > 0).then(|| {
                ApiError::new(
                    ErrorCode::SessionExpired,
                    format!(
                        "Session {id} resumed, but {dropped} result messages produced while it was detached were dropped to \
                         stay within the server's bounds (websocket.backlog_max, backlog_max_bytes, detached_max_bytes); \
                         fetch them with getResponse by taskUUID."
                    ),
                )
            });
            return Attached { id, backlog, notice };
        }
        let id = Uuid::new_v4();
        inner.map.insert(
            id,
            Session {
                account_id,
                conn: Some(conn),
                backlog: VecDeque::new(),
                bytes: 0,
                dropped: 0,
                detached_at: None,
            },
        );
        let notice = resume.map(|old| {
            ApiError::new(
                ErrorCode::SessionExpired,
                format!(
                    "Session {old} cannot be resumed: it expired ({} s after its connection closed, \
                     websocket.resume_window_secs) or is not this account's. This socket has the new session {id}; \
                     results of earlier tasks are available with getResponse by taskUUID.",
                    self.bounds.window.as_secs()
                ),
            )
        });
        Attached { id, backlog: Vec::new(), notice }
    }

    /// Queues a message on the session's live connection, else keeps it for resume. Returns
    /// false when the live connection's queue is full (the caller disconnects that consumer).
    pub(crate) fn send(&self, id: Uuid, msg: String) -> bool {
        let mut inner = self.inner.lock();
        let Some(s) = inner.map.get_mut(&id) else { return true };
        let mut ok = true;
        let msg = match &s.conn {
            Some(conn) => match conn.offer(msg) {
                Ok(()) => return true,
                Err(m) => {
                    ok = false;
                    m
                }
            },
            None => msg,
        };
        inner.keep(id, vec![msg], false, &self.bounds);
        ok
    }

    /// Puts messages a closed connection did not deliver back at the head of the backlog (they
    /// precede anything queued since), or, when the session has meanwhile moved to a new
    /// connection, sends them there: a backlog is only read on resume, so parking them would
    /// strand them. Delivery is at least once: clients group by taskUUID.
    pub(crate) fn requeue_front(&self, id: Uuid, messages: Vec<String>) {
        if messages.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        let Some(s) = inner.map.get_mut(&id) else { return };
        let mut messages = messages;
        if let Some(conn) = &s.conn {
            messages = messages.into_iter().filter_map(|m| conn.offer(m).err()).collect();
        }
        inner.keep(id, messages, true, &self.bounds);
    }

    /// Marks the session detached if `conn_id` is still its connection, and expires the
    /// account's oldest detached sessions past `websocket.detached_sessions_per_account`.
    pub(crate) fn detach(&self, id: Uuid, conn_id: u64) {
        let mut inner = self.inner.lock();
        let Some(s) = inner.map.get_mut(&id) else { return };
        if s.conn.as_ref().is_none_or(|c| c.id != conn_id) {
            return;
        }
        s.conn = None;
        s.detached_at = Some(Instant::now());
        let account = s.account_id;
        let mut detached: Vec<(Instant, Uuid)> = inner
            .map
            .iter()
            .filter(|(_, s)| s.account_id == account)
            .filter_map(|(id, s)| s.detached_at.map(|t| (t, *id)))
            .collect();
        if detached.len() > self.bounds.per_account_detached {
            detached.sort();
            let excess = detached.len() - self.bounds.per_account_detached;
            for (_, old) in detached.into_iter().take(excess) {
                inner.remove(old);
            }
        }
    }

    #[cfg(test)]
    fn held(&self, id: Uuid) -> Option<(usize, usize, u64)> {
        self.inner.lock().map.get(&id).map(|s| (s.backlog.len(), s.bytes, s.dropped))
    }
}

impl Inner {
    fn remove(&mut self, id: Uuid) {
        if let Some(s) = self.map.remove(&id) {
            self.bytes -= s.bytes;
        }
    }

    /// Keeps `messages` in session `id`'s backlog (at its head when `front`), dropping the
    /// oldest held messages, and at last the new ones, until every bound holds.
    fn keep(&mut self, id: Uuid, messages: Vec<String>, front: bool, b: &Bounds) {
        let total_elsewhere = self.bytes - self.map.get(&id).map_or(0, |s| s.bytes);
        let Some(s) = self.map.get_mut(&id) else { return };
        if front {
            for m in messages.into_iter().rev() {
                s.bytes += m.len();
                s.backlog.push_front(m);
            }
        } else {
            for m in messages {
                s.bytes += m.len();
                s.backlog.push_back(m);
            }
        }
        let before = s.backlog.len();
        while !s.backlog.is_empty()
            && (s.backlog.len() > b.per_session_count
                || s.bytes > b.per_session_bytes
                || total_elsewhere + s.bytes > b.total_bytes)
        {
            if let Some(old) = s.backlog.pop_front() {
                s.bytes -= old.len();
            }
        }
        let dropped = before - s.backlog.len();
        if dropped > 0 {
            s.dropped += dropped as u64;
            // Results stay retrievable with getResponse; the backlog is a convenience with bounds.
            tracing::warn!(session = %id, dropped, "websocket session backlog over its bounds; dropped the oldest results");
        }
        self.bytes = total_elsewhere + s.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WebSocketConfig {
        WebSocketConfig {
            backlog_max: 100,
            backlog_max_bytes: 1000,
            detached_max_bytes: 2500,
            detached_sessions_per_account: 2,
            ..WebSocketConfig::default()
        }
    }

    #[test]
    fn undelivered_messages_of_an_old_connection_go_to_the_session_s_new_one() {
        let sessions = Sessions::new(&cfg());
        let (tx1, _rx1) = mpsc::channel(8);
        let id = sessions.attach(1, None, Conn::new(1, tx1, 1 << 20)).id;
        // The client resumes on a second connection before the first one has wound down.
        let (tx2, mut rx2) = mpsc::channel(8);
        let again = sessions.attach(1, Some(id), Conn::new(2, tx2, 1 << 20));
        assert!(again.id == id && again.notice.is_none());
        sessions.detach(id, 1);
        sessions.requeue_front(id, vec!["a".into(), "b".into()]);
        assert_eq!((rx2.try_recv().unwrap(), rx2.try_recv().unwrap()), ("a".to_string(), "b".to_string()));
        assert_eq!(sessions.held(id), Some((0, 0, 0)));
        // With no live connection they wait in the backlog for the next resume.
        sessions.detach(id, 2);
        sessions.requeue_front(id, vec!["c".into()]);
        assert_eq!(sessions.held(id), Some((1, 1, 0)));
    }

    #[test]
    fn a_detached_session_holds_at_most_its_bytes_and_says_what_it_dropped() {
        let sessions = Sessions::new(&cfg());
        let (tx, _rx) = mpsc::channel(1);
        let id = sessions.attach(1, None, Conn::new(1, tx, 1 << 20)).id;
        sessions.detach(id, 1);
        for _ in 0..25 {
            sessions.send(id, "x".repeat(100));
        }
        // 1000 bytes per session: the 10 newest are kept.
        assert_eq!(sessions.held(id), Some((10, 1000, 15)));
        let (tx, _rx) = mpsc::channel(1);
        let back = sessions.attach(1, Some(id), Conn::new(2, tx, 1 << 20));
        assert_eq!(back.backlog.len(), 10);
        let notice = back.notice.expect("the client is told");
        assert_eq!(notice.code, ErrorCode::SessionExpired);
        assert!(notice.message.contains("15 result messages"), "{}", notice.message);
    }

    #[test]
    fn detached_sessions_are_bounded_in_total_and_per_account() {
        let sessions = Sessions::new(&cfg());
        let mut ids = Vec::new();
        for account in 1..=3 {
            let (tx, _rx) = mpsc::channel(1);
            let id = sessions.attach(account, None, Conn::new(account as u64, tx, 1 << 20)).id;
            sessions.detach(id, account as u64);
            for _ in 0..10 {
                sessions.send(id, "y".repeat(100));
            }
            ids.push(id);
        }
        // 2500 bytes in total: the third session keeps only what is left.
        assert_eq!(sessions.inner.lock().bytes, 2500);
        assert_eq!(sessions.held(ids[2]).map(|h| h.1), Some(500));
        // A third detached session of one account expires its oldest.
        let mine: Vec<Uuid> = (0..3)
            .map(|n| {
                let (tx, _rx) = mpsc::channel(1);
                let id = sessions.attach(7, None, Conn::new(100 + n, tx, 1 << 20)).id;
                sessions.detach(id, 100 + n);
                id
            })
            .collect();
        assert!(sessions.held(mine[0]).is_none());
        assert!(sessions.held(mine[1]).is_some() && sessions.held(mine[2]).is_some());
        let (tx, _rx) = mpsc::channel(1);
        let gone = sessions.attach(7, Some(mine[0]), Conn::new(200, tx, 1 << 20));
        assert!(gone.id != mine[0]);
        assert_eq!(gone.notice.map(|n| n.code), Some(ErrorCode::SessionExpired));
    }

    #[test]
    fn a_connection_s_queue_is_bounded_by_bytes_too() {
        let (tx, mut rx) = mpsc::channel(100);
        let conn = Conn::new(1, tx, 100);
        assert!(conn.offer("a".repeat(60)).is_ok());
        assert!(conn.offer("b".repeat(60)).is_err(), "160 bytes queued would pass 100");
        let m = rx.try_recv().unwrap();
        conn.dequeued(m.len());
        assert!(conn.offer("b".repeat(60)).is_ok());
        // A message larger than the bound goes alone into an empty queue, not forever refused.
        let (tx, _rx) = mpsc::channel(100);
        assert!(Conn::new(2, tx, 100).offer("c".repeat(500)).is_ok());
    }

    #[tokio::test]
    async fn expired_sessions_are_purged_by_the_timer() {
        let sessions = Arc::new(Sessions::new(&WebSocketConfig { resume_window_secs: 1, ..cfg() }));
        sessions.purge_forever(Duration::from_millis(200));
        let (tx, _rx) = mpsc::channel(1);
        let id = sessions.attach(1, None, Conn::new(1, tx, 1 << 20)).id;
        sessions.detach(id, 1);
        sessions.send(id, "z".repeat(10));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(sessions.held(id).is_none(), "purged without another attach");
        assert_eq!(sessions.inner.lock().bytes, 0);
    }
}
