//! New calls the gate decides later (`Admission::Later`: a count in a database shared with
//! other instances). The caller gets 100 Trying at once and the INVITE is held here; every
//! other call flows meanwhile. A retransmitted INVITE gets the 100 again; a CANCEL is answered
//! 200 and remembered, and a call the gate then lets through ends with 487 instead (a call it
//! rejects gets its rejection), so nothing of the call goes upstream after its caller gave up.
//! The gate's answer resumes the call where `on_new_invite` left it: nothing of the call has
//! left for the upstream before, so its messages keep their order. A call the gate leaves
//! without an answer for the transaction timeout gets 500 (the gate promises to answer well
//! within it).

use super::calls::Unanswered;
use super::routing::Route;
use super::transaction::TxPhase;
use super::{Proxy, Req};
use crate::sip::gate::{Admission, CallEvent, CallKey, Rejection};
use crate::sip::parse::{Message, Method};
use crate::sip::peer::{Outgoing, Peer, Side};
use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A new call the gate decides later: its INVITE held, or (when the answer came before the
/// core had finished holding it) the answer.
pub(super) enum Deciding {
    Held(Held),
    /// The answer, and when it came.
    Early(Admission, Instant),
}

pub(super) struct Held {
    invite: Bytes,
    src: Peer,
    side: Side,
    /// Its transaction key.
    tx: u64,
    received: Instant,
    /// When it was held.
    since: Instant,
    /// The caller cancelled it meanwhile.
    cancelled: bool,
    /// The gate's answer is being acted on (under this entry's lock): a CANCEL from now on
    /// finds the transaction's new phase.
    done: bool,
}

impl Proxy {
    /// The gate answered `Later`: say 100 Trying and hold the INVITE. The phase is set first
    /// and the entry taken under its lock, so an answer that beat us here is acted on now.
    pub(super) fn hold_for_decision(&self, r: &Req<'_>, key: CallKey, out: &mut Vec<Outgoing>) {
        self.trying(r.msg(), r.src, out);
        self.txns.remember(r.key, TxPhase::Deciding { call: key });
        let held = Held {
            invite: r.msg().buf.clone(),
            src: r.src,
            side: r.side,
            tx: r.key,
            received: r.received,
            since: Instant::now(),
            cancelled: false,
            done: false,
        };
        match self.deciding.entry(key) {
            Entry::Vacant(v) => {
                v.insert(Deciding::Held(held));
                self.held.fetch_add(1, Ordering::Relaxed);
            }
            Entry::Occupied(o) if matches!(o.get(), Deciding::Early(..)) => {
                if let Deciding::Early(admission, _) = o.remove() {
                    self.resume(&held, key, admission, out);
                }
            }
            // Another INVITE of the call is held already (`on_new_invite` refuses those).
            Entry::Occupied(_) => self.refuse_merged(r, out),
        }
    }

    pub(super) fn trying(&self, invite: &Message, to: Peer, out: &mut Vec<Outgoing>) {
        let trying = crate::sip::edit::build_response(invite, 100, "Trying", None, &[]);
        self.send_local(to, Method::Invite, 100, trying, out);
    }

    /// The caller cancelled a call still being decided: 200 to the CANCEL; the INVITE's final
    /// response follows when the decision comes (RFC 3261 section 9.2).
    pub(super) fn cancel_while_deciding(&self, r: &Req<'_>, key: CallKey, out: &mut Vec<Outgoing>) {
        match self.deciding.get_mut(&key).as_deref_mut() {
            Some(Deciding::Held(held)) if !held.done => {
                held.cancelled = true;
                self.respond(r.msg(), 200, r.src, &[], out)
            }
            // Decided while the CANCEL came in: it goes where the INVITE now is.
            _ => self.cancel_in(self.txns.phase(r.key), r, out),
        }
    }

    /// Whether a call with this key is being decided (another INVITE of it is a merge).
    pub(super) fn is_deciding(&self, key: CallKey) -> bool {
        matches!(self.deciding.get(&key).as_deref(), Some(Deciding::Held(h)) if !h.done)
    }

    /// The gate's answer for a call it decided later; what to send is appended to `out`. The
    /// call's entry stays locked while the answer is acted on, so a CANCEL racing it on another
    /// connection is either remembered before or finds the INVITE's new phase after.
    pub fn decided(&self, key: CallKey, admission: Admission, out: &mut Vec<Outgoing>) {
        let mut entry = match self.deciding.entry(key) {
            // Not held yet: `hold_for_decision` finds the answer.
            Entry::Vacant(v) => {
                v.insert(Deciding::Early(admission, Instant::now()));
                return;
            }
            Entry::Occupied(o) => o,
        };
        let expired = match entry.get_mut() {
            Deciding::Held(held) if !held.done => {
                held.done = true;
                false
            }
            Deciding::Held(_) => true,
            Deciding::Early(..) => false,
        };
        if expired || matches!(entry.get(), Deciding::Early(..)) {
            // Answered after the sweep gave up on it, or answered twice.
            if expired {
                entry.remove();
            }
            return self.decided_too_late(key, admission);
        }
        if let Deciding::Held(held) = entry.get() {
            self.resume(held, key, admission, out);
        }
        entry.remove();
        self.held.fetch_sub(1, Ordering::Relaxed);
    }

    /// New calls held for the gate (what `calls.max_open` counts besides the open calls).
    pub(super) fn held_calls(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The sweep: a call held past the transaction timeout gets 500 (see the module note).
    pub(super) fn expire_held(&self, timeout: std::time::Duration, out: &mut Vec<Outgoing>) {
        let overdue: Vec<CallKey> = self
            .deciding
            .iter()
            .filter_map(|e| match e.value() {
                Deciding::Held(h) if !h.done && h.since.elapsed() > timeout => Some(*e.key()),
                _ => None,
            })
            .collect();
        for key in overdue {
            let Some(mut entry) = self.deciding.get_mut(&key) else {
                continue;
            };
            let Deciding::Held(held) = entry.value_mut() else {
                continue;
            };
            if held.done {
                continue;
            }
            // Kept, marked, so a late answer is told apart from an early one.
            held.done = true;
            tracing::error!(?key, "the gate did not decide a held call in time: 500");
            self.resume(held, key, Admission::Reject(server_error()), out);
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
        // A call whose answer never came at all, or an answer whose call never came to be
        // held, is forgotten after a while.
        self.deciding.retain(|_, d| match d {
            Deciding::Held(h) => !(h.done && h.since.elapsed() > timeout * 4),
            Deciding::Early(_, at) => at.elapsed() <= timeout,
        });
    }

    fn resume(&self, held: &Held, key: CallKey, admission: Admission, out: &mut Vec<Outgoing>) {
        // Parsed and validated once already, when it came in: it cannot fail now.
        let Ok(msg) = Message::parse(held.invite.clone()) else {
            return self.decided_too_late(key, admission);
        };
        let Ok(v) = msg.validate_request() else {
            return self.decided_too_late(key, admission);
        };
        let r = Req {
            v: &v,
            src: held.src,
            side: held.side,
            key: held.tx,
            received: held.received,
        };
        match admission {
            Admission::Forward { .. } if held.cancelled => {
                self.cancelled_before_forward(&r, key, out)
            }
            Admission::Forward { hold_until } => self.forward_decided(&r, key, hold_until, out),
            Admission::Reject(rejection) => self.reject_new_invite(&r, &rejection, out),
            Admission::Later => {
                tracing::error!("the gate answered a call it had put off with Later again");
                self.reject_new_invite(&r, &server_error(), out)
            }
        }
    }

    fn forward_decided(
        &self,
        r: &Req<'_>,
        key: CallKey,
        hold: Option<u64>,
        out: &mut Vec<Outgoing>,
    ) {
        // Checked and routed when it came in: only a changed configuration fails here.
        let forwarded = Admission::Forward { hold_until: None };
        let Some(ruri) = self.usable_request_uri(r.v, r.src, out) else {
            return self.decided_too_late(key, forwarded);
        };
        let Route::Forward(fwd) = self.route(r, &ruri, self.our_routes(r.msg())) else {
            self.reject_new_invite(r, &server_error(), out);
            return self.decided_too_late(key, forwarded);
        };
        let target = crate::hashing::hash_bytes(r.msg().bytes(r.v.uri));
        let unanswered = Unanswered {
            invite: r.msg().buf.clone(),
            from: r.src,
            side: r.side,
            tx: r.key,
        };
        self.calls.opened(key, target, r.v.cseq, unanswered);
        self.metrics.calls_open.inc();
        self.forward_new_invite(r, fwd, key, hold, false, out)
    }

    /// Allowed, but its caller gave up meanwhile: 487, and the gate hears that the call it let
    /// through was cancelled before it went anywhere.
    fn cancelled_before_forward(&self, r: &Req<'_>, key: CallKey, out: &mut Vec<Outgoing>) {
        let terminated = Rejection {
            status: 487,
            phrase: "Request Terminated".into(),
            headers: Vec::new(),
        };
        self.reject_new_invite(r, &terminated, out);
        self.metrics.calls_open.inc();
        let received = r.received;
        self.tell(key, CallEvent::Cancelled(r.side), Some((r.msg(), received)));
        let failed = CallEvent::Failed {
            status: 487,
            by: r.side,
        };
        self.tell(key, failed, Some((r.msg(), received)));
    }

    /// An answer for a call no longer held (it cannot happen while the gate keeps its word to
    /// answer once within the transaction timeout), or that cannot go on: a call it let
    /// through is told as failed, so its record is closed.
    fn decided_too_late(&self, key: CallKey, admission: Admission) {
        tracing::error!(?key, "a call the gate let through could not go on");
        if let Admission::Forward { .. } = admission {
            self.metrics.calls_open.inc();
            let failed = CallEvent::Failed {
                status: 500,
                by: Side::Dialer,
            };
            self.tell(key, failed, None);
        }
    }
}

fn server_error() -> Rejection {
    Rejection {
        status: 500,
        phrase: "Server Internal Error".into(),
        headers: Vec::new(),
    }
}
