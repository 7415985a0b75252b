//! The calls the gate let through, followed from the forwarded INVITE to their end, so that
//! the gate hears each step once: the first ringing, the answer of the fork that answered
//! first, a CANCEL, the final failure, a REFER, the BYE of the answered dialog from either
//! side, or the time limit. Before an answer the limit is RFC 3261's Timer C (three minutes
//! from the INVITE or the last provisional); after it, the Session-Expires the answer
//! negotiated (RFC 4028: a refresh moves it) or else the longest call configured.

use crate::sip::gate::{CallEvent, CallKey};
use crate::sip::parse::{HeaderName, Message, Method};
use crate::sip::peer::Side;
use dashmap::DashMap;
use std::time::{Duration, Instant};

/// RFC 3261 section 16.6 step 11: Timer C "MUST be set for each client transaction when an
/// INVITE request is proxied... MUST be larger than 3 minutes".
const TIMER_C: Duration = Duration::from_secs(180);

/// One open call: 56 bytes besides the map's own (measured in `tests/proxy_core.rs`).
struct Open {
    /// When the call is given up without further news.
    deadline: Instant,
    /// The answering fork's To tag, hashed: only that dialog's BYE and REFER count.
    answered: Option<u64>,
    /// The Session-Expires of the answer: each refresh (re-INVITE, UPDATE) moves the deadline.
    session: Option<Duration>,
    ringing: bool,
    cancelled: bool,
}

pub(super) struct Calls {
    open: DashMap<CallKey, Open>,
    /// The longest an answered call without session timers is followed.
    longest: Duration,
}

fn tag_hash(msg: &Message, name: HeaderName) -> Option<u64> {
    msg.tag(name).map(crate::hashing::hash_bytes)
}

/// `Session-Expires: 1800;refresher=uac` (compact form `x`), in seconds, never longer than
/// `longest`: the value comes from the network (either side), and a call's deadline is
/// computed from it, so an absurd value must neither overflow nor keep a call open forever.
fn session_expires(msg: &Message, longest: Duration) -> Option<Duration> {
    let v = msg
        .other_header(b"session-expires")
        .or_else(|| msg.other_header(b"x"))?;
    let digits = crate::sip::parse::trim_slice(v.split(|c| *c == b';').next()?);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Past 9 digits (31 years) the value only matters as "longer than `longest`".
    let secs: u64 = match digits.len() {
        0..=9 => std::str::from_utf8(digits).ok()?.parse().ok()?,
        _ => u64::MAX,
    };
    (secs > 0).then(|| Duration::from_secs(secs).min(longest))
}

/// `now + d`, saturating: no value read from a message or the configuration can make the
/// deadline arithmetic panic.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

impl Calls {
    pub(super) fn new(longest: Duration) -> Calls {
        Calls {
            open: DashMap::new(),
            longest,
        }
    }

    /// Calls being followed.
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    /// A new call's INVITE was forwarded.
    pub(super) fn opened(&self, key: CallKey) {
        self.open.insert(
            key,
            Open {
                deadline: after(Instant::now(), TIMER_C),
                answered: None,
                session: None,
                ringing: false,
                cancelled: false,
            },
        );
    }

    /// A response to an INVITE of the call (the initial one, or a re-INVITE once answered).
    pub(super) fn on_invite_response(
        &self,
        msg: &Message,
        code: u16,
    ) -> Option<(CallKey, CallEvent)> {
        let key = CallKey::of(msg.call_id());
        let event = self.invite_response(key, msg, code)?;
        Some((key, event))
    }

    fn invite_response(&self, key: CallKey, msg: &Message, code: u16) -> Option<CallEvent> {
        let mut call = self.open.get_mut(&key)?;
        if call.answered.is_some() {
            return None; // a re-INVITE's answer, another fork's 2xx, a retransmitted 200
        }
        match code {
            101..=199 => {
                call.deadline = after(Instant::now(), TIMER_C);
                let first = !std::mem::replace(&mut call.ringing, true);
                first.then_some(CallEvent::Ringing(code))
            }
            200..=299 => {
                call.answered = Some(tag_hash(msg, HeaderName::To).unwrap_or(0));
                call.session = session_expires(msg, self.longest);
                call.deadline = after(Instant::now(), call.session.unwrap_or(self.longest));
                Some(CallEvent::Answered(code))
            }
            300.. => {
                drop(call);
                self.open.remove(&key);
                Some(CallEvent::Failed(code))
            }
            _ => None,
        }
    }

    /// The dialer cancelled the INVITE: news only before an answer, and once.
    pub(super) fn on_cancel(&self, msg: &Message) -> Option<(CallKey, CallEvent)> {
        let key = CallKey::of(msg.call_id());
        let mut call = self.open.get_mut(&key)?;
        let first = call.answered.is_none() && !std::mem::replace(&mut call.cancelled, true);
        first.then_some((key, CallEvent::Cancelled))
    }

    /// A request within the call: the answered dialog's BYE ends it, its REFER is a transfer,
    /// a re-INVITE or UPDATE refreshes the session.
    pub(super) fn on_in_dialog(
        &self,
        method: Method,
        msg: &Message,
        side: Side,
    ) -> Option<(CallKey, CallEvent)> {
        if !matches!(
            method,
            Method::Bye | Method::Refer | Method::Invite | Method::Update
        ) {
            return None; // other methods cost no Call-ID hash
        }
        let key = CallKey::of(msg.call_id());
        let event = self.in_dialog(key, method, msg, side)?;
        Some((key, event))
    }

    fn in_dialog(
        &self,
        key: CallKey,
        method: Method,
        msg: &Message,
        side: Side,
    ) -> Option<CallEvent> {
        let mut call = self.open.get_mut(&key)?;
        let dialog = call.answered?;
        let ours = [HeaderName::From, HeaderName::To]
            .into_iter()
            .any(|h| tag_hash(msg, h) == Some(dialog));
        if !ours {
            return None; // a dialog of a fork that lost
        }
        match method {
            Method::Bye => {
                drop(call);
                self.open.remove(&key);
                Some(CallEvent::Ended(crate::sip::gate::EndedBy::Bye(side)))
            }
            Method::Refer => Some(CallEvent::Transferred),
            _ => {
                if let Some(s) = session_expires(msg, self.longest).or(call.session) {
                    call.session = Some(s);
                    call.deadline = after(Instant::now(), s);
                }
                None
            }
        }
    }

    /// Take out the calls past their deadline.
    pub(super) fn expired(&self, now: Instant) -> Vec<CallKey> {
        let mut gone = Vec::new();
        self.open.retain(|k, c| {
            let keep = c.deadline > now;
            if !keep {
                gone.push(*k);
            }
            keep
        });
        gone
    }

    /// Take out every open call (callgate is stopping).
    pub(super) fn take_all(&self) -> Vec<CallKey> {
        let all: Vec<CallKey> = self.open.iter().map(|e| *e.key()).collect();
        self.open.clear();
        all
    }
}
