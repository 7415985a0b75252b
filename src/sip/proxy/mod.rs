//! RFC 3261 section 16 proxy behaviour: the dispatcher. Each step has its own module:
//! `admission` (who may send, how fast), `transaction` (INVITE server transactions, ACK,
//! CANCEL, retransmissions), `routing` (where a request or response goes), `rewrite` (the
//! edits a forwarded message gets) and `respond` (the answers callgate gives itself). A new
//! call is decided by the `CallGate` the proxy is given, and nothing else here knows of
//! compliance.
//!
//! `Proxy::handle` takes one message and its source and appends what to send, in order. It does
//! no I/O, so it is driven the same way by the UDP loop, the TCP connections and the tests.
//!
//! State is kept only where RFC 3261 needs it: INVITE server transactions (to answer
//! retransmissions of a rejected INVITE from cache, absorb the ACK to our own rejection, send a
//! CANCEL where its INVITE went, and absorb upstream 100s once we sent our own). Everything else
//! is forwarded statelessly with a branch derived from the incoming one (section 16.11), so a
//! retransmission goes out exactly once more, never amplified.

mod admission;
mod calls;
mod deadlines;
mod deciding;
mod respond;
mod response;
mod rewrite;
mod routing;
mod transaction;

pub use admission::Access;
pub use respond::status_phrase;

use super::gate::{
    Admission, CallEvent, CallGate, CallKey, CallNews, EndedBy, Later, NewCall, Rejection,
};
use super::metrics::{Direction, SipMetrics};
use super::parse::{Message, Method, StartLine, ValidRequest};
use super::peer::{Dest, Outgoing, Peer, Side, Transport};
use super::uri::Uri;
use crate::hashing::mix;
use bytes::Bytes;
use routing::{Forward, Route};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transaction::{Transactions, TxPhase};

/// Our branches: the magic cookie, our mark, then the transaction id in hex.
const OUR_BRANCH_PREFIX: &[u8] = b"z9hG4bKcg";

/// Settings resolved at start-up (addresses bound, upstream resolved).
#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub advertise_host: String,
    pub advertise_port: u16,
    /// The port written into Via and Record-Route for TLS (the TLS listener's).
    pub advertise_tls_port: Option<u16>,
    /// Lower-case host strings that name this proxy (in Route, Request-URI).
    pub local_hosts: Vec<String>,
    pub upstream: SocketAddr,
    pub upstream_host: String,
    pub upstream_transport: Transport,
    pub record_route: bool,
    pub send_100: bool,
    pub inbound_target: Option<SocketAddr>,
    pub tx_timeout: Duration,
    /// The longest an answered call without session timers is followed before it is recorded
    /// as ended by timeout.
    pub longest_call: Duration,
    /// Calls followed at once; past it new INVITEs get 503 before any decision.
    pub max_open_calls: usize,
    /// How long a forwarded INVITE may go without a final response (RFC 3261 Timer C).
    pub timer_c: Duration,
}

pub struct Proxy {
    s: ProxySettings,
    gate: Arc<dyn CallGate>,
    metrics: Arc<SipMetrics>,
    admission: admission::Admission,
    txns: Transactions,
    calls: calls::Calls,
    draining: AtomicBool,
    /// Set while new calls are refused for `max_open_calls` (said once in the log).
    at_capacity: AtomicBool,
    branch_salt: u64,
    /// When the SIP loop last turned (its sweep), in ms since `born`: `/healthz` reads it.
    heartbeat: AtomicU64,
    /// When each UDP worker last said it was alive (ms since `born`; 0: not started).
    worker_beats: Box<[AtomicU64]>,
    born: Instant,
    /// New calls the gate decides later, held until it answers (`deciding`).
    deciding: dashmap::DashMap<CallKey, deciding::Deciding>,
    /// How many of them are held (not counting early answers).
    held: std::sync::atomic::AtomicUsize,
    /// Where the gate sends those answers; the receiver until the transport takes it.
    later: Later,
    answers: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(CallKey, Admission)>>>,
}

/// The request being handled, with what the dispatcher has established about it.
struct Req<'a> {
    v: &'a ValidRequest<'a>,
    src: Peer,
    side: Side,
    /// The transaction key (see `transaction::tx_key`).
    key: u64,
    /// When it was received: a call's times are taken here, not when the gate hears.
    received: Instant,
}

impl Req<'_> {
    fn msg(&self) -> &Message {
        self.v.msg
    }
}

fn hash_of(parts: &[&[u8]]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

impl Proxy {
    pub fn new(
        s: ProxySettings,
        access: Access,
        gate: Arc<dyn CallGate>,
        metrics: Arc<SipMetrics>,
    ) -> Proxy {
        let branch_salt = hash_of(&[s.advertise_host.as_bytes(), &s.advertise_port.to_be_bytes()]);
        let (later, answers) = Later::channel();
        Proxy {
            calls: calls::Calls::new(s.longest_call, s.timer_c),
            s,
            gate,
            metrics,
            admission: admission::Admission::new(access),
            txns: Transactions::default(),
            draining: AtomicBool::new(false),
            at_capacity: AtomicBool::new(false),
            branch_salt,
            heartbeat: AtomicU64::new(0),
            worker_beats: (0..crate::sip::MAX_WORKERS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            born: Instant::now(),
            deciding: Default::default(),
            held: Default::default(),
            later,
            answers: std::sync::Mutex::new(Some(answers)),
        }
    }

    /// The gate's answers for calls it decides later (`Proxy::decided` takes each): the
    /// transport that runs the proxy takes them once.
    pub fn take_answers(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<(CallKey, Admission)>> {
        self.answers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Swap in reloaded settings; messages already being handled finish with the old ones.
    pub(crate) fn set_access(&self, access: Access) {
        self.admission.set_access(access);
    }

    /// Stop taking new INVITEs (503 + Retry-After); everything else still flows.
    /// callgate has started to stop: new calls are refused.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Calls being followed (forwarded, not yet ended).
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// New INVITEs still waiting for a final response: forwarded, or held for the gate.
    pub fn pending_invites(&self) -> usize {
        self.txns.pending_len() + self.held_calls()
    }

    /// Forget transactions older than the transaction timeout (64*T1 by default), and idle
    /// sources' rate buckets; end the calls past their time limit (what that sends, RFC 3261
    /// section 16.8's CANCEL and 408, is appended to `out`).
    pub fn sweep(&self, out: &mut Vec<Outgoing>) {
        self.beat();
        let open = self.txns.sweep(
            self.s.tx_timeout,
            |call| self.calls.unanswered(call) || self.is_deciding(call),
            |key| self.our_branch(key),
        );
        self.admission.sweep();
        self.expire_held(self.s.tx_timeout, out);
        self.metrics.transactions.set(open as i64);
        for due in self.calls.expired(Instant::now()) {
            if let Some(invite) = due.timer_c {
                self.timer_c_fired(&invite, out);
            }
            self.tell(due.key, due.event, None);
        }
    }

    fn beat(&self) {
        self.heartbeat.store(self.age_ms(), Ordering::Relaxed);
    }

    fn age_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// A UDP worker's loop turned (it does at least once a second when well).
    pub(crate) fn worker_turned(&self, worker: usize) {
        if let Some(b) = self.worker_beats.get(worker) {
            b.store(self.age_ms(), Ordering::Relaxed);
        }
    }

    /// How long since the SIP loop last turned (it turns at least once a second when well),
    /// or the most stalled UDP worker: a loop that stopped (a panic, a blocked thread) shows
    /// here, whatever else still runs.
    pub fn since_last_turn(&self) -> Duration {
        let oldest = self
            .worker_beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .filter(|ms| *ms > 0)
            .fold(self.heartbeat.load(Ordering::Relaxed), u64::min);
        self.born
            .elapsed()
            .saturating_sub(Duration::from_millis(oldest))
    }

    /// callgate is stopping: every call still open ends here, as stopped.
    pub fn end_open_calls(&self) {
        for key in self.calls.take_all() {
            self.tell(key, CallEvent::Ended(EndedBy::Stopped), None);
        }
    }

    /// The gate hears of a call's step; a call that ended leaves the open-calls gauge (the
    /// core told every end exactly once, as it took the call out).
    fn tell(&self, key: CallKey, event: CallEvent, msg: Option<(&Message, Instant)>) {
        if matches!(event, CallEvent::Failed { .. } | CallEvent::Ended(_)) {
            self.metrics.calls_open.dec();
        }
        let (msg, received) = (msg.map(|m| m.0), msg.map(|m| m.1));
        self.gate.on_event(&CallNews {
            key,
            event,
            msg,
            received,
        });
    }

    /// News brought by `msg`, received at `received` (what the record's times are).
    fn tell_of(&self, news: Option<(CallKey, CallEvent)>, msg: &Message, received: Instant) {
        if let Some((key, event)) = news {
            self.tell(key, event, Some((msg, received)));
        }
    }

    /// A TLS connection from `addr` presented a verified certificate naming `names`.
    pub(crate) fn tls_peer_connected(&self, addr: SocketAddr, names: Vec<String>) {
        self.admission.tls_peer_connected(addr, names);
    }

    pub(crate) fn tls_peer_closed(&self, addr: SocketAddr) {
        self.admission.tls_peer_closed(addr);
    }

    /// Handle one received message; what to send is appended to `out` in order.
    pub fn handle(&self, buf: Bytes, src: Peer, out: &mut Vec<Outgoing>) {
        let received = Instant::now();
        if buf.iter().all(|c| matches!(c, b'\r' | b'\n' | 0)) {
            return; // keep-alive
        }
        let side = self.admission.side_of(src, self.s.upstream);
        // A source that may not send anything is answered (403, for a misconfigured dialer to
        // see) only up to a small global rate: beyond it, a flood costs no parsing and earns
        // no reply (no reflection), and legal traffic keeps the CPU.
        if side.is_none() && !self.admission.may_answer_stranger() {
            self.metrics.unauthorized.inc();
            return self.metrics.dropped("unauthorized_unanswered");
        }
        let msg = match Message::parse_or_return(buf) {
            Ok(m) => m,
            Err((e, buf)) => return self.on_unparseable(buf, e, src, side, out),
        };
        match msg.start {
            StartLine::Response { code, .. } => self.on_response(&msg, code, side, received, out),
            StartLine::Request { method, .. } => {
                self.on_request(&msg, method, src, side, received, out)
            }
        }
    }

    fn on_request(
        &self,
        msg: &Message,
        method: Method,
        src: Peer,
        side: Option<Side>,
        received: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        self.metrics.count_sip(Direction::In, method, None);
        #[cfg(debug_assertions)]
        test_hooks::maybe_panic(msg);
        let Some(side) = side else {
            return self.refuse_stranger(msg, method, src, out);
        };
        let v = match msg.validate_request() {
            Ok(v) => v,
            Err(e) => return self.on_invalid(msg, method, e, src, out),
        };
        let Some(ruri) = self.usable_request_uri(&v, src, out) else {
            return;
        };
        if self.refused_extension(&v, src, out) {
            return;
        }
        let r = Req {
            v: &v,
            src,
            side,
            key: transaction::tx_key(&v),
            received,
        };
        match method {
            Method::Ack => return self.on_ack(&r, &ruri, out),
            Method::Cancel => return self.on_cancel(&r, out),
            Method::Invite => {
                if let Some(phase) = self.txns.phase(r.key) {
                    return self.on_invite_retransmission(&r, phase, out);
                }
            }
            _ => {}
        }
        let edits = self.our_routes(msg);
        let fwd = match self.route(&r, &ruri, edits) {
            Route::Local => return self.answer_options(&r, out),
            Route::Refuse(status, why) => return self.respond_warning(msg, status, why, src, out),
            Route::Forward(f) => f,
        };
        if v.max_forwards == Some(0) {
            return self.refuse(&v, 483, src, out);
        }
        if method == Method::Invite && v.is_initial() {
            return self.on_new_invite(&r, &ruri, fwd, received, out);
        }
        self.tell_of(self.calls.on_in_dialog(method, msg, side), msg, received);
        self.forward(&r, &fwd, false, out);
        if let (Method::Invite, Dest::Peer(p)) = (method, &fwd.dest) {
            let phase = TxPhase::Forwarded {
                dest: *p,
                call: None,
            };
            self.txns.remember(r.key, phase);
        }
    }

    /// A new call: the source's rate, the drain, then the gate's decision; forwarded with our
    /// 100 Trying, or answered with the gate's rejection (kept for retransmissions).
    fn on_new_invite(
        &self,
        r: &Req<'_>,
        ruri: &Uri<'_>,
        fwd: Forward,
        received: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let key = calls::Calls::key_of_new(r.msg(), r.side);
        let target = crate::hashing::hash_bytes(r.msg().bytes(r.v.uri));
        let unanswered = || calls::Unanswered {
            invite: r.msg().buf.clone(),
            from: r.src,
            side: r.side,
            tx: r.key,
        };
        match self.calls.attempt(key, target, r.v.cseq, unanswered) {
            // The caller's new attempt after a challenge: the call decided before goes on.
            calls::Attempt::Continues => {
                return self.forward_new_invite(r, fwd, key, None, self.s.send_100, out)
            }
            calls::Attempt::Merged => return self.refuse_merged(r, out),
            calls::Attempt::Replaces(ended) => self.tell(key, ended, None),
            calls::Attempt::New if self.is_deciding(key) => return self.refuse_merged(r, out),
            calls::Attempt::New => {}
        }
        if r.side == Side::Dialer && !self.admission.take_call_token(r.src.ip()) {
            self.metrics.rate_limited.inc();
            return self.respond_503(r, b"1", out);
        }
        if self.draining.load(Ordering::Acquire) {
            self.metrics.drain_rejections.inc();
            let secs = self.admission.access().drain_retry_after_secs.to_string();
            return self.respond_503(r, secs.as_bytes(), out);
        }
        // The open-calls gauge is exact (inc at open, dec at the one end told): read it rather
        // than count the map, which would lock every shard per new call.
        let open = usize::try_from(self.metrics.calls_open.get()).unwrap_or(0);
        if open + self.held_calls() >= self.s.max_open_calls {
            return self.refuse_past_max_open(r, out);
        }
        if self.at_capacity.swap(false, Ordering::Relaxed) {
            tracing::warn!("open calls are below calls.max_open again: new calls are taken");
        }
        let call = NewCall {
            req: r.v,
            ruri,
            src: r.src,
            side: r.side,
            cert_names: self.admission.cert_names(r.src),
            received,
            key,
            later: &self.later,
        };
        match self.gate.admit(&call) {
            Admission::Forward { hold_until } => {
                self.calls.opened(key, target, r.v.cseq, unanswered());
                self.metrics.calls_open.inc();
                self.forward_new_invite(r, fwd, key, hold_until, self.s.send_100, out)
            }
            Admission::Reject(rejection) => self.reject_new_invite(r, &rejection, out),
            Admission::Later => self.hold_for_decision(r, key, out),
        }
    }

    fn forward_new_invite(
        &self,
        r: &Req<'_>,
        fwd: Forward,
        call: CallKey,
        hold_until: Option<u64>,
        trying: bool,
        out: &mut Vec<Outgoing>,
    ) {
        if trying {
            self.trying(r.msg(), r.src, out);
        }
        self.forward(r, &fwd, true, out);
        // The forwarded INVITE is the last message pushed: it waits for its record.
        if let Some(o) = out.last_mut() {
            o.after_record = hold_until;
        }
        if let Dest::Peer(p) = fwd.dest {
            let call = Some(call);
            self.txns
                .remember(r.key, TxPhase::Forwarded { dest: p, call });
            self.txns.invite_forwarded(self.our_branch(r.key));
        }
    }

    fn reject_new_invite(&self, r: &Req<'_>, rejection: &Rejection, out: &mut Vec<Outgoing>) {
        let response = self.rejection_response(r, rejection);
        self.send_local(
            r.src,
            Method::Invite,
            rejection.status,
            response.clone(),
            out,
        );
        self.txns.remember(
            r.key,
            TxPhase::Rejected {
                response,
                status: rejection.status,
                to: r.src,
            },
        );
    }

    /// The same call's INVITE on another branch while it is in progress (RFC 3261 section
    /// 8.2.2.2): 482, so that one call never has two decisions nor replaces its own record.
    fn refuse_merged(&self, r: &Req<'_>, out: &mut Vec<Outgoing>) {
        self.respond(r.msg(), 482, r.src, &[], out)
    }

    /// `calls.max_open` calls are open: the new one is refused before any decision (no state
    /// is taken for it), said once in the log until calls are taken again.
    fn refuse_past_max_open(&self, r: &Req<'_>, out: &mut Vec<Outgoing>) {
        self.metrics.max_open_refusals.inc();
        if !self.at_capacity.swap(true, Ordering::Relaxed) {
            tracing::error!(
                max_open = self.s.max_open_calls,
                "calls.max_open calls are open: new calls are answered 503 until some end"
            );
        }
        self.respond_503(r, b"5", out)
    }

    /// 503 with the time to retry after (rate limit, drain): dialers fail over or wait.
    fn respond_503(&self, r: &Req<'_>, retry_after: &[u8], out: &mut Vec<Outgoing>) {
        let retry = super::edit::ExtraHeader {
            name: "Retry-After",
            value: retry_after,
        };
        self.respond(r.msg(), 503, r.src, &[retry], out);
    }

    /// The id our branch carries for transaction `key` (hex after our prefix).
    fn our_branch(&self, key: u64) -> u64 {
        mix(key ^ self.branch_salt)
    }
}

/// A panic on demand, for the tests that prove a panic on the SIP thread is never silent
/// (debug builds only): an INVITE whose Call-ID is `CALLGATE_TEST_PANIC_CALL_ID`.
#[cfg(debug_assertions)]
mod test_hooks {
    use crate::sip::parse::Message;
    use std::sync::OnceLock;

    pub(super) fn maybe_panic(msg: &Message) {
        static ID: OnceLock<Option<Vec<u8>>> = OnceLock::new();
        let id = ID.get_or_init(|| {
            std::env::var_os("CALLGATE_TEST_PANIC_CALL_ID").map(|v| v.into_encoded_bytes())
        });
        if id.as_deref().is_some_and(|id| id == msg.call_id()) {
            panic!("test hook: CALLGATE_TEST_PANIC_CALL_ID");
        }
    }
}
