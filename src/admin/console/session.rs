//! Console sessions: a random token in an `HttpOnly`, `SameSite=Strict` cookie names one; it
//! ends when signed out or after `admin.session_idle_minutes` without a request. Held in
//! memory (a restart signs everyone out), at most `MAX_SESSIONS`: past that, the one idle
//! longest ends.

use crate::config::AdminRole;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sessions held at once; a new one past this ends the session idle longest.
pub(crate) const MAX_SESSIONS: usize = 4096;

pub(crate) const COOKIE: &str = "callgate_session";

/// The sign-in form's own token (no session yet): the form and this cookie must carry the
/// same, which a page of another site cannot arrange (login CSRF).
pub(crate) const SIGN_IN_COOKIE: &str = "callgate_signin";

/// Who is signed in, and the token every form of theirs must carry (CSRF).
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) user: Arc<str>,
    pub(crate) role: AdminRole,
    /// How they got in: "password", "client certificate CN", "loopback, no users configured".
    pub(crate) how: Arc<str>,
    pub(crate) csrf: Arc<str>,
}

struct Held {
    session: Session,
    last_seen: Instant,
}

pub(crate) struct Sessions {
    held: Mutex<HashMap<String, Held>>,
    idle: Duration,
}

/// 32 random bytes as hex: a session token or a CSRF token.
pub(crate) fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the system's random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Sessions {
    pub(crate) fn new(idle: Duration) -> Sessions {
        Sessions {
            held: Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// A new session for `user`: its token (the cookie's value) and the session.
    pub(crate) fn start(&self, user: &str, role: AdminRole, how: &str) -> (String, Session) {
        let session = Session {
            user: user.into(),
            role,
            how: how.into(),
            csrf: token().into(),
        };
        let id = token();
        let now = Instant::now();
        let mut held = self.held.lock().unwrap();
        held.retain(|_, h| now.duration_since(h.last_seen) < self.idle);
        if held.len() >= MAX_SESSIONS {
            let oldest = held
                .iter()
                .min_by_key(|(_, h)| h.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                held.remove(&k);
            }
        }
        let kept = Held {
            session: session.clone(),
            last_seen: now,
        };
        held.insert(id.clone(), kept);
        (id, session)
    }

    /// The live session of `user` that began `how`, or a new one: a client certificate signs
    /// in at every request without a cookie, and must not start a session each time (past
    /// the bound, they would end other people's).
    pub(crate) fn reuse_or_start(
        &self,
        user: &str,
        role: AdminRole,
        how: &str,
    ) -> (String, Session) {
        let now = Instant::now();
        {
            let mut held = self.held.lock().unwrap();
            let live = held.iter_mut().find(|(_, h)| {
                &*h.session.user == user
                    && &*h.session.how == how
                    && now.duration_since(h.last_seen) < self.idle
            });
            if let Some((id, h)) = live {
                h.last_seen = now;
                return (id.clone(), h.session.clone());
            }
        }
        self.start(user, role, how)
    }

    /// The session `id` names, if it has not ended; a request keeps it alive.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap();
        let h = held.get_mut(id)?;
        if now.duration_since(h.last_seen) >= self.idle {
            held.remove(id);
            return None;
        }
        h.last_seen = now;
        Some(h.session.clone())
    }

    pub(crate) fn end(&self, id: &str) {
        self.held.lock().unwrap().remove(id);
    }
}

/// The session cookie's value in a request's `Cookie` headers.
pub(crate) fn cookie_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE)
}

/// The value of the cookie `name` in a request's `Cookie` headers.
pub(crate) fn named_cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `Set-Cookie` value that holds `id` (`Secure` when the console is served over HTTPS).
pub(crate) fn set_cookie(id: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{secure}")
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie(https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The `Set-Cookie` value of the sign-in form's token.
pub(crate) fn sign_in_cookie(token: &str, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{SIGN_IN_COOKIE}={token}; Path=/console/sign-in; HttpOnly; SameSite=Strict{secure}")
}

/// Whether two tokens are equal, in time that does not tell where they differ.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_after_its_idle_time() {
        let s = Sessions::new(Duration::from_millis(0));
        let (id, _) = s.start("alice", AdminRole::Viewer, "password");
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn a_signed_out_session_is_gone() {
        let s = Sessions::new(Duration::from_secs(60));
        let (id, session) = s.start("alice", AdminRole::Operator, "password");
        assert_eq!(&*s.get(&id).unwrap().csrf, &*session.csrf);
        s.end(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn past_the_bound_the_session_idle_longest_ends() {
        let s = Sessions::new(Duration::from_secs(60));
        let (first, _) = s.start("u0", AdminRole::Viewer, "password");
        for i in 1..MAX_SESSIONS {
            s.start(&format!("u{i}"), AdminRole::Viewer, "password");
        }
        assert!(
            s.get(&first).is_some(),
            "the first is now the most recently seen"
        );
        let (last, _) = s.start("late", AdminRole::Viewer, "password");
        assert!(s.get(&last).is_some());
        assert!(s.get(&first).is_some());
        assert_eq!(s.held.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn a_certificate_keeps_one_session() {
        let s = Sessions::new(Duration::from_secs(60));
        let (a, _) = s.reuse_or_start("bob", AdminRole::Viewer, "client certificate bob");
        let (b, _) = s.reuse_or_start("bob", AdminRole::Viewer, "client certificate bob");
        assert_eq!(a, b);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; callgate_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie_of(&h), Some("abc"));
    }
}
