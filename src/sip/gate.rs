//! The one door between the SIP core and compliance. The core asks the gate about every new
//! call (an initial INVITE, from a dialer or from the upstream) and tells it what happens to
//! the calls it let through. The core knows nothing of numbers, lists or records; the gate
//! knows nothing of transactions, routes or sockets.

use super::parse::ValidRequest;
use super::peer::{Peer, Side};
use super::uri::Uri;
use std::sync::Arc;
use std::time::Instant;

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

/// Something that happened to a call the gate let through, keyed by its Call-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// A provisional response (1xx other than 100) to the initial INVITE.
    Provisional(u16),
    /// A 2xx to the initial INVITE.
    Answered(u16),
    /// A final non-2xx response to the initial INVITE.
    Failed(u16),
    /// The dialer cancelled the INVITE.
    Cancelled,
    /// A BYE from either side.
    Ended(Side),
}

pub trait CallGate: Send + Sync {
    /// Decide a new call. Called once per initial INVITE (retransmissions are answered by the
    /// core's transaction state and never reach the gate again).
    fn admit(&self, call: &NewCall<'_>) -> Admission;

    /// What happened next to a call (for call records). The default ignores it.
    fn on_event(&self, _call_id: &[u8], _event: CallEvent) {}
}
