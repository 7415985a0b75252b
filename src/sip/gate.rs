//! The one door between the SIP core and compliance. The core asks the gate about every new
//! call (an initial INVITE, from a dialer or from the upstream) and tells it what happens to
//! the calls it let through, from the first ringing to the end. The core knows nothing of
//! numbers, lists or records; the gate knows nothing of transactions, routes or sockets.

use super::parse::{Message, ValidRequest};
use super::peer::{Peer, Side};
use super::uri::Uri;
use std::sync::Arc;
use std::time::Instant;

/// A call as the core follows it: a hash of its Call-ID (forks of one call share it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallKey(pub u64);

impl CallKey {
    pub fn of(call_id: &[u8]) -> CallKey {
        CallKey(crate::hashing::hash_bytes(call_id))
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
}

/// What the gate answers for a new call.
pub enum Admission {
    /// Forward it. `hold_until`: send only once this record is durable (before-forward).
    Forward { hold_until: Option<u64> },
    /// Answer the dialer with this final response; nothing goes upstream.
    Reject(Rejection),
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
    /// The dialer cancelled the INVITE before an answer (the final response still follows).
    Cancelled,
    /// A final non-2xx response to the initial INVITE: the call is over.
    Failed(u16),
    /// A REFER in the answered call (its `Refer-To` is in the message).
    Transferred,
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

/// News of a call, and the message it came in (none for a timeout or a stop), for the gate to
/// read what it records (a Reason header, a dialer's disposition header, a Refer-To).
pub struct CallNews<'a> {
    pub key: CallKey,
    pub event: CallEvent,
    pub msg: Option<&'a Message>,
}

pub trait CallGate: Send + Sync {
    /// Decide a new call. Called once per initial INVITE (retransmissions are answered by the
    /// core's transaction state and never reach the gate again).
    fn admit(&self, call: &NewCall<'_>) -> Admission;

    /// What happened next to a call it let through (for call records). The default ignores it.
    fn on_event(&self, _news: &CallNews<'_>) {}
}
