//! The portal's sessions, in this process's memory.
//!
//! A session id is 32 random bytes from the OS (`getrandom`), sent to the browser once, in the
//! cookie; the server keeps only its SHA-256, so a memory dump or a debug print of this table
//! does not hand out sessions. Each session has an absolute expiry (`portal.session_ttl_secs`,
//! not extended by use), a CSRF token of its own (compared in constant time), and what it may
//! do ([`Role`]). The table holds at most `portal.max_sessions`; expired sessions are swept
//! every minute and before every sign-in. Sessions do not survive a restart.

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Who a session is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Signed in with an API key: the account's own pages.
    Account {
        /// The account's id.
        account_id: i64,
        /// The account's name.
        account_name: String,
        /// The key signed in with (its id; never the key).
        key_id: i64,
        /// That key's scopes; empty means unrestricted (and may manage keys).
        scopes: Vec<String>,
    },
    /// Signed in with an admin key: the operator's pages.
    Operator {
        /// The admin key's id.
        admin_key_id: i64,
    },
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// What it may do.
    pub role: Role,
    /// The synchronizer token every form of this session carries.
    pub csrf: String,
    /// When it ends.
    pub expires: Instant,
}

impl Session {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        self.csrf.len() == token.len() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Why a session could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    /// `portal.max_sessions` are held and none has expired.
    #[error("the portal holds its maximum of {0} sessions; try again when some have expired")]
    Full(usize),
    /// The OS random source failed.
    #[error("the OS random source failed")]
    Random,
}

/// The session table.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> Result<String, SessionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SessionError::Random)?;
    Ok(hex::encode(bytes))
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// A table whose sessions last `ttl`, holding at most `max`.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Sessions { ttl, max, by_digest: Mutex::new(HashMap::new()) }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for `role`; returns the id for the cookie (the only copy) and the session.
    pub fn create(&self, role: Role) -> Result<(String, Session), SessionError> {
        let id = random_hex()?;
        let session = Session { role, csrf: random_hex()?, expires: Instant::now() + self.ttl };
        let mut map = self.by_digest.lock();
        if map.len() >= self.max {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
            if map.len() >= self.max {
                return Err(SessionError::Full(self.max));
            }
        }
        map.insert(digest(&id), session.clone());
        Ok((id, session))
    }

    /// The live session with this id, if any (an expired one is removed).
    pub fn get(&self, id: &str) -> Option<Session> {
        let d = digest(id);
        let mut map = self.by_digest.lock();
        match map.get(&d) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&d);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out, or a key that is no longer valid).
    pub fn remove(&self, id: &str) {
        self.by_digest.lock().remove(&digest(id));
    }

    /// Sessions held now (expired ones not swept yet included).
    pub fn len(&self) -> usize {
        self.by_digest.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired session.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.by_digest.lock().retain(|_, s| s.expires > now);
    }

    /// Sweeps every `every` while the table lives (when called inside a Tokio runtime).
    pub fn sweep_forever(self: &Arc<Self>, every: Duration) {
        crate::edge::every_while_alive(self, every, Sessions::sweep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator() -> Role {
        Role::Operator { admin_key_id: 1 }
    }

    #[test]
    fn ids_are_random_and_only_digests_are_kept() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let (a, sa) = s.create(operator()).unwrap();
        let (b, _) = s.create(operator()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.get(&a).is_some());
        let raw: [u8; 32] = hex::decode(&a).unwrap().try_into().unwrap();
        assert!(!s.by_digest.lock().contains_key(&raw));
        assert!(s.by_digest.lock().contains_key(&digest(&a)));
        assert!(sa.csrf_matches(&sa.csrf.clone()));
        assert!(!sa.csrf_matches("nope"));
        s.remove(&a);
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some());
    }

    #[test]
    fn the_table_is_bounded_and_expired_sessions_make_room() {
        let s = Sessions::new(Duration::from_millis(30), 2);
        s.create(operator()).unwrap();
        let (b, _) = s.create(operator()).unwrap();
        assert_eq!(s.create(operator()).unwrap_err(), SessionError::Full(2));
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get(&b).is_none(), "expired");
        s.create(operator()).unwrap();
        s.sweep();
        assert_eq!(s.len(), 1);
    }
}
