//! The calls the gate let through, followed from the forwarded INVITE to their end, so that
//! the gate hears each step once: the first ringing, the answer of the fork that answered
//! first, a CANCEL (or the caller's BYE before the answer), the final failure, a REFER and its
//! acceptance, the BYE of the answered dialog from either side, or the time limit. Before an
//! answer the limit is RFC 3261's Timer C (three minutes from the INVITE or the last
//! provisional); after it, the Session-Expires the answer negotiated (RFC 4028: an accepted
//! refresh moves it) or else the longest call configured, and never past that longest call.
//!
//! A call is keyed by its Call-ID, the caller's tag (From of the initial INVITE) and the side
//! it came from, so a Call-ID reused by another caller, or a call the carrier routes back in,
//! is another call. An INVITE answered 401/407 or 3xx that the caller sends again (same key,
//! same Request-URI, higher CSeq) goes on as the same call: one decision, one record.

use super::deadlines::Deadlines;
use crate::hashing::hash_bytes;
use crate::sip::gate::{CallEvent, CallKey, EndedBy};
use crate::sip::parse::{HeaderName, Message, Method};
use crate::sip::peer::{Peer, Side};
use bytes::Bytes;
use dashmap::mapref::one::RefMut;
use dashmap::DashMap;
use std::time::{Duration, Instant};

/// How long a challenged or redirected INVITE waits for the caller's new attempt (64*T1)
/// before the challenge is the call's outcome.
const RETRY_WINDOW: Duration = Duration::from_secs(32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Forwarded, no provisional response yet.
    Trying,
    Ringing,
    /// Answered 401/407 or 3xx by that side: the caller may try again.
    Challenged {
        status: u16,
        by: Side,
    },
    Answered,
}

/// One open call (80 bytes besides the map's own).
struct Open {
    /// When the call is given up without further news.
    deadline: Instant,
    /// The latest any refresh may move the deadline to (the answer plus the longest call).
    limit: Instant,
    phase: Phase,
    /// The answering fork's To tag, hashed: only that dialog's BYE, REFER and refreshes count.
    dialog: u64,
    /// The session interval in force (RFC 4028), from the last accepted answer or refresh.
    session: Option<Duration>,
    /// The CSeq of the INVITE in progress: responses to an earlier attempt are old news.
    cseq: u32,
    /// The Request-URI, hashed: a new attempt goes on as this call only toward this target.
    target: u64,
    cancelled: bool,
    /// The caller's INVITE in progress, as received, until a final response: Timer C's
    /// CANCEL and 408 are built from it (RFC 3261 section 16.8).
    invite: Option<Box<Unanswered>>,
}

/// A forwarded INVITE still without a final response.
pub(super) struct Unanswered {
    pub(super) invite: Bytes,
    pub(super) from: Peer,
    pub(super) side: Side,
    /// Its transaction key: where its CANCEL goes.
    pub(super) tx: u64,
}

/// What the sweep found due: the call's news, and for an INVITE Timer C gave up on, what to
/// cancel and answer.
pub(super) struct Due {
    pub(super) key: CallKey,
    pub(super) event: CallEvent,
    pub(super) timer_c: Option<Box<Unanswered>>,
}

/// What a new INVITE (no To tag) is to the calls already open.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Attempt {
    /// A new call, for the gate to decide.
    New,
    /// The caller's new attempt after a challenge or redirect: the same call goes on.
    Continues,
    /// A new call that replaces a challenged one toward another target: the old call ended
    /// with this event.
    Replaces(CallEvent),
    /// The same call's INVITE again while it is in progress (not a retransmission: another
    /// branch). RFC 3261 section 8.2.2.2: a merged request, answered 482.
    Merged,
}

/// An open call found for a message: its key, its entry, whether the sender is its caller.
type Found<'a> = (CallKey, RefMut<'a, CallKey, Open>, bool);

pub(super) struct Calls {
    open: DashMap<CallKey, Open>,
    /// Every deadline set, earliest first (an entry is stale once its call's deadline moved).
    deadlines: Deadlines<CallKey>,
    /// The longest an answered call is followed.
    longest: Duration,
    /// RFC 3261 section 16.6 step 11: Timer C "MUST be set for each client transaction when
    /// an INVITE request is proxied... MUST be larger than 3 minutes" (`sip.timer_c_secs`).
    timer_c: Duration,
}

fn other(side: Side) -> Side {
    match side {
        Side::Dialer => Side::Upstream,
        Side::Upstream => Side::Dialer,
    }
}

fn tag_hash(msg: &Message, name: HeaderName) -> Option<u64> {
    msg.tag(name).map(hash_bytes)
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

impl Open {
    fn in_dialog(&self, msg: &Message) -> bool {
        [HeaderName::From, HeaderName::To]
            .into_iter()
            .any(|h| tag_hash(msg, h) == Some(self.dialog))
    }

    /// An accepted refresh (a 2xx to a re-INVITE or UPDATE) sets the session interval anew.
    fn refreshed(&mut self, msg: &Message, longest: Duration) {
        self.session = session_expires(msg, longest);
        let d = self.session.unwrap_or(longest);
        self.deadline = after(Instant::now(), d).min(self.limit);
    }
}

impl Calls {
    /// `f` may move the call's deadline. Moved earlier, the heap hears of it now; moved
    /// later, the entry already there is pushed on when it comes due (`expired`), so a call
    /// keeps about one entry however often a provisional or a refresh moves its deadline.
    fn timed<T>(&self, key: CallKey, call: &mut Open, f: impl FnOnce(&mut Open) -> T) -> T {
        let before = call.deadline;
        let out = f(call);
        if call.deadline < before {
            self.deadlines.push(call.deadline, key);
        }
        out
    }
}

impl Calls {
    pub(super) fn new(longest: Duration, timer_c: Duration) -> Calls {
        Calls {
            open: DashMap::new(),
            deadlines: Deadlines::default(),
            longest,
            timer_c,
        }
    }

    /// Calls being followed.
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    /// The key of a new call: its INVITE's Call-ID and From tag, and the side it came from.
    pub(super) fn key_of_new(msg: &Message, side: Side) -> CallKey {
        CallKey::of(
            msg.call_id(),
            msg.tag(HeaderName::From).unwrap_or(b""),
            side,
        )
    }

    /// What a new INVITE with this key, Request-URI (hashed) and CSeq is.
    pub(super) fn attempt(
        &self,
        key: CallKey,
        target: u64,
        cseq: u32,
        invite: impl FnOnce() -> Unanswered,
    ) -> Attempt {
        let Some(mut call) = self.open.get_mut(&key) else {
            return Attempt::New;
        };
        let Phase::Challenged { status, by } = call.phase else {
            return Attempt::Merged;
        };
        if call.target == target && cseq > call.cseq {
            call.phase = Phase::Trying;
            call.cseq = cseq;
            call.invite = Some(Box::new(invite()));
            self.timed(key, &mut call, |c| {
                c.deadline = after(Instant::now(), self.timer_c)
            });
            return Attempt::Continues;
        }
        drop(call);
        // Told once: another worker may have ended the call since (its sweep, a CANCEL).
        match self.open.remove(&key) {
            Some(_) => Attempt::Replaces(CallEvent::Failed { status, by }),
            None => Attempt::New,
        }
    }

    /// A new call's INVITE was forwarded.
    pub(super) fn opened(&self, key: CallKey, target: u64, cseq: u32, invite: Unanswered) {
        let now = Instant::now();
        self.deadlines.push(after(now, self.timer_c), key);
        self.open.insert(
            key,
            Open {
                deadline: after(now, self.timer_c),
                limit: after(now, self.timer_c + self.longest),
                phase: Phase::Trying,
                dialog: 0,
                session: None,
                cseq,
                target,
                cancelled: false,
                invite: Some(Box::new(invite)),
            },
        );
    }

    /// Forwarded and without a final response yet (its INVITE transaction must stay).
    pub(super) fn unanswered(&self, key: CallKey) -> bool {
        self.open
            .get(&key)
            .is_some_and(|c| matches!(c.phase, Phase::Trying | Phase::Ringing))
    }

    /// The open call a message belongs to, `sender` being the side that sent the request (for
    /// a response: the side it goes back to), and whether the sender is the caller. The
    /// caller's own requests carry the caller's tag in From; the other side's carry it in To.
    fn find(&self, msg: &Message, sender: Side) -> Option<Found<'_>> {
        let id = hash_bytes(msg.call_id());
        let from = CallKey::mixed(id, msg.tag(HeaderName::From).unwrap_or(b""), sender);
        if let Some(call) = self.open.get_mut(&from) {
            return Some((from, call, true));
        }
        let to = CallKey::mixed(id, msg.tag(HeaderName::To)?, other(sender));
        self.open.get_mut(&to).map(|call| (to, call, false))
    }

    /// A response that came from `responder`: to the call's INVITE (progress, answer, failure,
    /// challenge) or, once answered, to a refresh or a REFER.
    pub(super) fn on_response(
        &self,
        msg: &Message,
        method: Method,
        code: u16,
        responder: Side,
    ) -> Option<(CallKey, CallEvent)> {
        if !matches!(method, Method::Invite | Method::Update | Method::Refer) {
            return None;
        }
        let sender = other(responder);
        let (key, mut call, _) = self.find(msg, sender)?;
        if call.phase == Phase::Answered {
            if !(200..300).contains(&code) || !call.in_dialog(msg) {
                return None; // a refused refresh or REFER changes nothing
            }
            return match method {
                Method::Refer => Some((key, CallEvent::Transferred(sender))),
                _ => {
                    self.timed(key, &mut call, |c| c.refreshed(msg, self.longest));
                    None
                }
            };
        }
        if method != Method::Invite || msg.cseq().is_none_or(|(n, _)| n < call.cseq) {
            return None; // a response to an earlier attempt (a retransmitted 407)
        }
        let event = self.timed(key, &mut call, |c| {
            self.invite_response(c, msg, code, responder)
        })?;
        if matches!(event, CallEvent::Failed { .. }) {
            drop(call);
            // Told once: another worker (the sweep, a crossing message) may have ended it.
            self.open.remove(&key)?;
        }
        Some((key, event))
    }

    fn invite_response(
        &self,
        call: &mut Open,
        msg: &Message,
        code: u16,
        responder: Side,
    ) -> Option<CallEvent> {
        let now = Instant::now();
        if code >= 200 {
            call.invite = None;
        }
        match code {
            101..=199 => {
                if matches!(call.phase, Phase::Challenged { .. }) {
                    return None;
                }
                call.deadline = after(now, self.timer_c);
                let first = std::mem::replace(&mut call.phase, Phase::Ringing) == Phase::Trying;
                first.then_some(CallEvent::Ringing(code))
            }
            200..=299 => {
                call.phase = Phase::Answered;
                call.dialog = tag_hash(msg, HeaderName::To).unwrap_or(0);
                call.limit = after(now, self.longest);
                call.refreshed(msg, self.longest);
                Some(CallEvent::Answered(code))
            }
            300..=399 | 401 | 407 if !call.cancelled => {
                call.phase = Phase::Challenged {
                    status: code,
                    by: responder,
                };
                call.deadline = after(now, RETRY_WINDOW);
                None
            }
            300.. => Some(CallEvent::Failed {
                status: code,
                by: responder,
            }),
            _ => None,
        }
    }

    /// The caller cancelled the INVITE: news only before an answer, and once.
    pub(super) fn on_cancel(&self, msg: &Message, side: Side) -> Option<(CallKey, CallEvent)> {
        let key = Calls::key_of_new(msg, side);
        let mut call = self.open.get_mut(&key)?;
        self.cancel(&mut call, side).map(|e| (key, e))
    }

    fn cancel(&self, call: &mut Open, side: Side) -> Option<CallEvent> {
        let first = call.phase != Phase::Answered && !std::mem::replace(&mut call.cancelled, true);
        first.then_some(CallEvent::Cancelled(side))
    }

    /// A request within the call from `side`: the answered dialog's BYE ends it, its REFER
    /// asks for a transfer; the caller's BYE before the answer cancels the call (RFC 3261
    /// section 15: a BYE on an early dialog).
    pub(super) fn on_in_dialog(
        &self,
        method: Method,
        msg: &Message,
        side: Side,
    ) -> Option<(CallKey, CallEvent)> {
        if !matches!(method, Method::Bye | Method::Refer) {
            return None; // other methods cost no Call-ID hash
        }
        let (key, mut call, callers) = self.find(msg, side)?;
        if call.phase != Phase::Answered {
            return match method {
                Method::Bye if callers => self.cancel(&mut call, side).map(|e| (key, e)),
                _ => None,
            };
        }
        if !call.in_dialog(msg) {
            return None; // a dialog of a fork that lost
        }
        match method {
            Method::Bye => {
                drop(call);
                // Told once: the other side's BYE may cross this one on another worker.
                self.open.remove(&key)?;
                Some((key, CallEvent::Ended(EndedBy::Bye(side))))
            }
            _ => Some((key, CallEvent::Refer(side))),
        }
    }

    /// Take out the calls past their deadline, with how each ended: a challenge nobody
    /// answered is the call's failure; otherwise the time limit ended it. Only the deadlines
    /// due are looked at, not every open call.
    pub(super) fn expired(&self, now: Instant) -> Vec<Due> {
        let mut gone = Vec::new();
        for (_, key) in self.deadlines.due(now) {
            let deadline = self.open.get(&key).map(|c| c.deadline);
            if let Some(later) = deadline.filter(|d| *d > now) {
                self.deadlines.push(later, key); // moved later since this entry was pushed
                continue;
            }
            if let Some((_, c)) = deadline.and_then(|_| self.open.remove(&key)) {
                let event = match c.phase {
                    Phase::Challenged { status, by } => CallEvent::Failed { status, by },
                    _ => CallEvent::Ended(EndedBy::Timeout),
                };
                let timer_c = match c.phase {
                    Phase::Trying | Phase::Ringing => c.invite,
                    _ => None,
                };
                gone.push(Due {
                    key,
                    event,
                    timer_c,
                });
            }
        }
        gone
    }

    /// Take out every open call (callgate is stopping).
    pub(super) fn take_all(&self) -> Vec<CallKey> {
        let all: Vec<CallKey> = self.open.iter().map(|e| *e.key()).collect();
        self.open.clear();
        self.deadlines.clear();
        all
    }
}
