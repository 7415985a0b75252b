//! INVITE server transactions (RFC 3261 section 17.2.1) as far as a proxy needs them: a
//! retransmitted INVITE is answered from cache or relayed once, the ACK to our own rejection
//! is absorbed, and a CANCEL goes where its INVITE went.

use super::deadlines::Deadlines;
use super::routing::{Forward, Route};
use super::{hash_of, Proxy, Req};
use crate::sip::gate::CallKey;
use crate::sip::parse::{HeaderName, Method, ValidRequest};
use crate::sip::peer::{Dest, Outgoing, Peer};
use crate::sip::uri::Uri;
use bytes::Bytes;
use dashmap::DashMap;
use std::time::{Duration, Instant};

const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

#[derive(Clone)]
pub(super) enum TxPhase {
    Forwarded {
        dest: Peer,
        /// The call a new INVITE started: its transaction lives while the call is
        /// unanswered (a CANCEL after minutes of ringing still finds where to go).
        call: Option<CallKey>,
    },
    Rejected {
        response: Bytes,
        status: u16,
        to: Peer,
    },
    /// A new INVITE the gate decides later (`deciding`): answered 100 Trying, held.
    Deciding { call: CallKey },
}

struct Tx {
    created: Instant,
    phase: TxPhase,
}

#[derive(Default)]
pub(super) struct Transactions {
    txns: DashMap<u64, Tx>,
    /// New INVITEs forwarded and not yet answered finally, by our branch: what a SIGTERM
    /// drain waits for.
    pending: DashMap<u64, Instant>,
    /// When each transaction was last (re)started: the sweep looks only at those due (and at
    /// the pending entry of a new INVITE's transaction with it).
    started: Deadlines<u64>,
}

impl Transactions {
    /// A copy of the transaction's state: no map lock is held while the caller forwards.
    pub(super) fn phase(&self, key: u64) -> Option<TxPhase> {
        self.txns.get(&key).map(|tx| tx.phase.clone())
    }

    pub(super) fn remember(&self, key: u64, phase: TxPhase) {
        let created = Instant::now();
        self.started.push(created, key);
        self.txns.insert(key, Tx { created, phase });
    }

    /// A new INVITE went out with our `branch`; its transaction was remembered just before.
    pub(super) fn invite_forwarded(&self, branch: u64) {
        self.pending.insert(branch, Instant::now());
    }

    /// A final response to a forwarded new INVITE.
    pub(super) fn invite_answered(&self, branch: u64) {
        self.pending.remove(&branch);
    }

    pub(super) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Forget what is older than `timeout`, except the INVITEs of calls `unanswered` still
    /// says are waiting (they last until their final response or Timer C, RFC 3261 section
    /// 16.10); a drain stops waiting for an INVITE (our branch: `branch_of` its key) as old.
    /// Returns the transactions still open.
    pub(super) fn sweep(
        &self,
        timeout: Duration,
        unanswered: impl Fn(CallKey) -> bool,
        branch_of: impl Fn(u64) -> u64,
    ) -> usize {
        let now = Instant::now();
        let Some(horizon) = now.checked_sub(timeout) else {
            return self.txns.len();
        };
        for (started, key) in self.started.due(horizon) {
            self.pending
                .remove_if(&branch_of(key), |_, t| *t <= horizon);
            let waiting = |tx: &Tx| match tx.phase {
                TxPhase::Forwarded { call: Some(c), .. } | TxPhase::Deciding { call: c } => {
                    unanswered(c)
                }
                _ => false,
            };
            match self.txns.get_mut(&key) {
                // Restarted since: its newer entry comes due later.
                Some(tx) if tx.created != started => {}
                Some(mut tx) if waiting(&tx) => {
                    tx.created = now;
                    self.started.push(now, key);
                }
                Some(tx) => {
                    drop(tx);
                    self.txns.remove(&key);
                }
                None => {}
            }
        }
        self.txns.len()
    }
}

/// Transaction key: the branch and sent-by for RFC 3261 branches; for RFC 2543 peers the
/// fields section 17.2.3 falls back to. CSeq method is left out so that ACK and CANCEL map
/// to their INVITE.
pub(super) fn tx_key(v: &ValidRequest<'_>) -> u64 {
    let (msg, via) = (v.msg, &v.via);
    let branch = via.branch.map(|b| msg.bytes(b)).unwrap_or(b"");
    let port = via.port.unwrap_or(5060).to_be_bytes();
    if branch.starts_with(MAGIC_COOKIE) {
        hash_of(&[branch, msg.bytes(via.host), &port])
    } else {
        let cseq = v.cseq.to_be_bytes();
        let from_tag = msg.tag(HeaderName::From).unwrap_or(b"");
        hash_of(&[msg.call_id(), &cseq, from_tag, msg.bytes(via.value)])
    }
}

impl Proxy {
    pub(super) fn on_invite_retransmission(
        &self,
        r: &Req<'_>,
        phase: TxPhase,
        out: &mut Vec<Outgoing>,
    ) {
        match phase {
            TxPhase::Rejected {
                response,
                status,
                to,
            } => {
                // Section 17.2.1: a retransmitted request gets the final response again.
                self.count_retransmission("INVITE", "answered");
                self.send_local(to, Method::Invite, status, response, out);
            }
            TxPhase::Forwarded { dest, .. } => {
                // Stateless relay of the retransmission (same branch): exactly one copy out.
                self.count_retransmission("INVITE", "relayed");
                self.relay_in_tx(r, dest, r.v.is_initial(), out);
            }
            TxPhase::Deciding { .. } => {
                // Section 17.2.1, Proceeding: the provisional response again.
                self.count_retransmission("INVITE", "answered");
                self.trying(r.msg(), r.src, out);
            }
        }
    }

    pub(super) fn on_ack(&self, r: &Req<'_>, ruri: &Uri<'_>, out: &mut Vec<Outgoing>) {
        match self.txns.phase(r.key) {
            // The ACK to our own non-2xx final response ends here (section 17.2.1).
            Some(TxPhase::Rejected { .. }) => self.count_retransmission("ACK", "absorbed"),
            // No final response was sent yet: nothing to acknowledge.
            Some(TxPhase::Deciding { .. }) => self.metrics.dropped("ack_unroutable"),
            // ACK for a non-2xx response from downstream: same hop, same branch.
            Some(TxPhase::Forwarded { dest, .. }) => self.relay_in_tx(r, dest, false, out),
            // ACK for a 2xx: its own transaction, routed like any in-dialog request.
            None => match self.route(r, ruri, self.our_routes(r.msg())) {
                Route::Forward(f) => {
                    if r.v.max_forwards != Some(0) {
                        self.forward(r, &f, false, out);
                    }
                }
                _ => self.metrics.dropped("ack_unroutable"),
            },
        }
    }

    pub(super) fn on_cancel(&self, r: &Req<'_>, out: &mut Vec<Outgoing>) {
        match self.txns.phase(r.key) {
            Some(TxPhase::Deciding { call }) => self.cancel_while_deciding(r, call, out),
            phase => self.cancel_in(phase, r, out),
        }
    }

    /// A CANCEL for an INVITE that was forwarded, answered, or never seen.
    pub(super) fn cancel_in(&self, phase: Option<TxPhase>, r: &Req<'_>, out: &mut Vec<Outgoing>) {
        match phase {
            // CANCEL goes where its INVITE went, with the INVITE's branch (section 9.1).
            Some(TxPhase::Forwarded { dest, .. }) => {
                let news = self.calls.on_cancel(r.msg(), r.side);
                self.tell_of(news, r.msg(), r.received);
                self.relay_in_tx(r, dest, false, out)
            }
            // Already answered with a final response: the CANCEL has nothing left to cancel.
            Some(TxPhase::Rejected { .. }) => self.respond(r.msg(), 200, r.src, &[], out),
            Some(TxPhase::Deciding { .. }) | None => self.respond(r.msg(), 481, r.src, &[], out),
        }
    }

    /// RFC 3261 section 16.8: Timer C fired before a final response. The proxy cancels the
    /// INVITE toward where it went (as the caller's own CANCEL would go) and answers the
    /// caller 408 itself.
    pub(super) fn timer_c_fired(&self, t: &super::calls::Unanswered, out: &mut Vec<Outgoing>) {
        let Ok(invite) = crate::sip::parse::Message::parse(t.invite.clone()) else {
            return;
        };
        if let Some(TxPhase::Forwarded { dest, .. }) = self.txns.phase(t.tx) {
            let cancel = cancel_of(&invite).and_then(|c| crate::sip::parse::Message::parse(c).ok());
            if let Some(Ok(v)) = cancel.as_ref().map(|c| c.validate_request()) {
                let r = Req {
                    v: &v,
                    src: t.from,
                    side: t.side,
                    key: t.tx,
                    received: std::time::Instant::now(),
                };
                self.relay_in_tx(&r, dest, false, out);
            }
        }
        self.respond(&invite, 408, t.from, &[], out);
    }

    /// Forward within an existing transaction (retransmitted INVITE, hop-by-hop ACK, CANCEL):
    /// to where the INVITE went, with the branch derived from the same key.
    fn relay_in_tx(&self, r: &Req<'_>, dest: Peer, record_route: bool, out: &mut Vec<Outgoing>) {
        let f = Forward {
            upstream: dest.addr() == self.s.upstream,
            dest: Dest::Peer(dest),
            edits: self.our_routes(r.msg()),
        };
        self.forward(r, &f, record_route, out);
    }

    fn count_retransmission(&self, method: &str, action: &str) {
        self.metrics
            .retransmissions
            .with_label_values(&[method, action])
            .inc();
    }
}

/// The CANCEL of an INVITE as its sender builds it (RFC 3261 section 9.1): the same
/// Request-URI, Via, From, To, Call-ID, Route and CSeq number, method CANCEL, no body.
fn cancel_of(invite: &crate::sip::parse::Message) -> Option<Bytes> {
    let (n, _) = invite.cseq()?;
    let b = &invite.buf;
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(b"CANCEL ");
    out.extend_from_slice(invite.bytes(invite.request_uri()?));
    out.extend_from_slice(b" SIP/2.0\r\n");
    for h in &invite.headers {
        use HeaderName::*;
        if matches!(h.name, Via | From | To | CallId | Route) {
            out.extend_from_slice(&b[h.line.range()]);
        }
    }
    out.extend_from_slice(
        format!("CSeq: {n} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    );
    Some(Bytes::from(out))
}
