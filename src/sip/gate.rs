//! The one door between the SIP core and compliance. The core asks the gate about every new
//! call (an initial INVITE, from a dialer or from the upstream) and tells it what happens to
//! the calls it let through, from the first ringing to the end. The core knows nothing of
//! numbers, lists or records; the gate knows nothing of transactions, routes or sockets.

use super::parse::{Message, ValidRequest};
use super::peer::{Peer, Side};
use super::uri::Uri;
use std::sync::Arc;
use std::time::Instant;

/// A call as the core follows it: a hash of its Call-ID, the caller's tag and the side it came
/// from (forks of one call share it; a Call-ID reused by another caller or coming back in
/// from the carrier does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

impl CallKey {
    /// The key of a call whose initial INVITE carried this Call-ID and From tag and came
    /// from `origin`.
    pub fn of(call_id: &[u8], caller_tag: &[u8], origin: Side) -> CallKey {
        CallKey::mixed(crate::hashing::hash_bytes(call_id), caller_tag, origin)
    }

    /// `of` with the Call-ID already hashed (a look-up tries two tags with one hash).
    pub(crate) fn mixed(call_id_hash: u64, caller_tag: &[u8], origin: Side) -> CallKey {
        use crate::hashing::{hash_bytes, mix};
        CallKey(mix(
            call_id_hash ^ mix(hash_bytes(caller_tag) ^ origin as u64)
        ))
    }
}

/// A new call as the core sees it: the validated INVITE and where it came from.
pub struct NewCall<'a> {
    pub req: &'a ValidRequest<'a>,
    pub ruri: &'a Uri<'a>,
    pub src: Peer,
    /// `Dialer`: an outbound call to decide. `Upstream`: an inbound call toward the dialers.
    pub side: Side,
    /// The verified client-certificate names of a TLS source.
    pub cert_names: Option<Arc<[String]>>,
    /// When the message was received (decision latency is measured from here).
    pub received: Instant,
    /// What later news of this call is keyed by.
    pub key: CallKey,
    /// Where the answer goes when the gate answers `Later`.
    pub later: &'a Later,
}

/// What the gate answers for a new call.
pub enum Admission {
    /// Forward it. `hold_until`: send only once this record is durable (before-forward).
    Forward { hold_until: Option<u64> },
    /// Answer the dialer with this final response; nothing goes upstream.
    Reject(Rejection),
    /// The gate needs time (a count in a database shared with other instances). The core
    /// answers 100 Trying and holds the INVITE while every other call flows; the gate sends
    /// its answer (`Forward` or `Reject`) for this call, once, through `NewCall::later`.
    Later,
}

/// Where a gate that answered `Later` sends its answer: into the core's loop, which resumes
/// the call (`Proxy::decided`).
#[derive(Clone)]
pub struct Later(tokio::sync::mpsc::UnboundedSender<(CallKey, Admission)>);

impl Later {
    pub(crate) fn channel() -> (
        Later,
        tokio::sync::mpsc::UnboundedReceiver<(CallKey, Admission)>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Later(tx), rx)
    }

    /// The answer for call `key`. Bounded by the gate: it holds at most so many calls.
    pub fn answer(&self, key: CallKey, admission: Admission) {
        let _ = self.0.send((key, admission));
    }
}

/// A final response the core builds and sends (and resends to retransmissions).
pub struct Rejection {
    pub status: u16,
    pub phrase: String,
    /// Extra header lines: name and value.
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

/// What happened to a call the gate let through. Each is told once: retransmissions, the
/// other forks' answers and a second BYE are not news.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// The first provisional response above 100 (ringing, session progress).
    Ringing(u16),
    /// The first 2xx to the initial INVITE (of whichever fork answered first).
    Answered(u16),
    /// The caller (on this side) cancelled the INVITE before an answer, by CANCEL or by a
    /// BYE on the early dialog (the final response still follows).
    Cancelled(Side),
    /// A final non-2xx response to the initial INVITE, sent by `by`: the call is over. A
    /// 401/407 or 3xx is final only when the caller does not try again.
    Failed { status: u16, by: Side },
    /// A REFER in the answered call from this side (its `Refer-To` is in the message).
    Refer(Side),
    /// The REFER this side sent was accepted (2xx): the call was transferred.
    Transferred(Side),
    /// The answered call is over.
    Ended(EndedBy),
}

/// Who or what ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    /// A BYE from this side.
    Bye(Side),
    /// No BYE (or, unanswered, no final response) within the call's time limit.
    Timeout,
    /// callgate stopped with the call still open.
    Stopped,
}

impl CallEvent {
    /// The side that acted: cancelled, failed the call, asked for a transfer, hung up.
    pub fn sender(&self) -> Option<Side> {
        match *self {
            CallEvent::Cancelled(s) | CallEvent::Refer(s) | CallEvent::Transferred(s) => Some(s),
            CallEvent::Failed { by, .. } | CallEvent::Ended(EndedBy::Bye(by)) => Some(by),
            _ => None,
        }
    }
}

/// News of a call, and the message it came in (none for a timeout or a stop), for the gate to
/// read what it records (a Reason header, a dialer's disposition header, a Refer-To).
pub struct CallNews<'a> {
    pub key: CallKey,
    pub event: CallEvent,
    pub msg: Option<&'a Message>,
    /// When that message was received (the time of the step); none: now.
    pub received: Option<Instant>,
}

pub trait CallGate: Send + Sync {
    /// Decide a new call. Called once per initial INVITE (retransmissions are answered by the
    /// core's transaction state and never reach the gate again).
    fn admit(&self, call: &NewCall<'_>) -> Admission;

    /// What happened next to a call it let through (for call records). The default ignores it.
    fn on_event(&self, _news: &CallNews<'_>) {}
}
