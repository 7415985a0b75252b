//! RFC 3261 section 16 proxy behaviour, with the compliance check on initial outbound INVITEs.
//!
//! `Proxy::handle` takes one message and its source and appends what to send, in order. It does
//! no I/O, so it is driven the same way by the UDP loop, the TCP connections and the tests.
//!
//! State is kept only where RFC 3261 needs it: INVITE server transactions (to answer
//! retransmissions of a rejected INVITE from cache, absorb the ACK to our own rejection, send a
//! CANCEL where its INVITE went, and absorb upstream 100s once we sent our own). Everything else
//! is forwarded statelessly with a branch derived from the incoming one (section 16.11), so a
//! retransmission goes out exactly once more, never amplified.

use super::edit::{build_response, ExtraHeader, Splicer};
use super::parse::{
    name_addr_uri, trim_slice, CommaSplit, HeaderName, Message, Method, ParseError, Span,
    StartLine, Via,
};
use super::uri::{Scheme, Uri};
use crate::admin::metrics::{Direction, Metrics};
use crate::audit::{AuditEvent, AuditSink};
use crate::clock::SharedClock;
use crate::config::{RejectConfig, Transport};
use crate::lists::set::mix;
use crate::lists::ListStore;
use crate::policy::context::{CallContext, CallerId};
use crate::policy::normalize::{Called, Normalizer};
use crate::policy::{Decision, NumberProblem, Policy, PolicyState, Reason};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ipnet::IpNet;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A transport-level peer: the address plus how we talk to it. For TCP and TLS the address
/// names the connection (its remote address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Tls(SocketAddr),
}

impl Peer {
    pub fn addr(self) -> SocketAddr {
        match self {
            Peer::Udp(a) | Peer::Tcp(a) | Peer::Tls(a) => a,
        }
    }
    pub fn transport(self) -> Transport {
        match self {
            Peer::Udp(_) => Transport::Udp,
            Peer::Tcp(_) => Transport::Tcp,
            Peer::Tls(_) => Transport::Tls,
        }
    }
    pub fn new(t: Transport, a: SocketAddr) -> Peer {
        match t {
            Transport::Udp => Peer::Udp(a),
            Transport::Tcp => Peer::Tcp(a),
            Transport::Tls => Peer::Tls(a),
        }
    }
}

/// Where an outgoing message goes: a known peer, or a host name to resolve first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    Peer(Peer),
    Resolve {
        host: String,
        port: u16,
        transport: Transport,
    },
}

#[derive(Debug)]
pub struct Outgoing {
    pub dest: Dest,
    pub data: Bytes,
    /// Counted as upstream traffic (send errors go to `callgate_upstream_send_errors_total`).
    pub to_upstream: bool,
    /// Before-forward durability: send only once the audit record with this sequence number
    /// is on disk (0: no wait). Later messages queue behind it, so order is kept.
    pub after_record: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Upstream,
}

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
    /// `audit.durability = "before-forward"`: hold a forwarded new INVITE until its record is
    /// on disk.
    pub before_forward: bool,
}

#[derive(Clone)]
enum TxPhase {
    Forwarded {
        dest: Peer,
    },
    Rejected {
        response: Bytes,
        status: u16,
        to: Peer,
    },
}

struct Tx {
    created: Instant,
    phase: TxPhase,
}

pub struct Proxy {
    s: ProxySettings,
    normalizer: Normalizer,
    lists: Arc<ListStore>,
    /// Consent, frequency-cap counters and emergency closures.
    pub state: Arc<PolicyState>,
    audit: AuditSink,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    txns: DashMap<u64, Tx>,
    /// New INVITEs forwarded and not yet answered finally, by our branch: what a SIGTERM
    /// drain waits for.
    pending: DashMap<u64, Instant>,
    draining: AtomicBool,
    /// What a configuration reload may change while calls flow; read once per use.
    live: arc_swap::ArcSwap<Live>,
    /// Token buckets of new calls per source address.
    stranger_budget: std::sync::Mutex<Bucket>,
    buckets: DashMap<std::net::IpAddr, Bucket>,
    branch_salt: u64,
    /// The certificate identities of open TLS connections that presented a verified client
    /// certificate, by remote address.
    tls_names: DashMap<SocketAddr, Arc<[String]>>,
}

/// The settings a configuration reload (SIGHUP) swaps in without a restart.
#[derive(Clone)]
pub struct Live {
    pub dialers: Vec<IpNet>,
    pub upstream_sources: Vec<IpNet>,
    pub max_calls_per_second: u32,
    pub burst: u32,
    pub drain_retry_after_secs: u32,
    pub reject: RejectConfig,
    pub policy: Arc<Policy>,
    /// Client-certificate identities (lower case) that make a TLS peer a dialer.
    pub tls_dialer_names: Vec<String>,
}

/// A token bucket: `tokens` refill at the configured rate up to rate + burst.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refill for the time since the last take (at `rate` per second, up to `cap`), then take
    /// one token if there is one.
    fn take(&mut self, rate: f64, cap: f64, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(cap);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests from sources that may not send are answered 403 at most this often (all sources
/// together); the rest are dropped unparsed and counted.
const STRANGER_ANSWERS_PER_SEC: f64 = 100.0;
const OUR_BRANCH_PREFIX: &[u8] = b"z9hG4bKcg";
const MAGIC_COOKIE: &[u8] = b"z9hG4bK";
const ALLOW: &[u8] =
    b"INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE";

enum Route {
    /// Addressed to callgate itself (OPTIONS ping).
    Local,
    Forward {
        dest: Dest,
        upstream: bool,
    },
    Refuse(u16, &'static str),
}

fn hash_of(parts: &[&[u8]]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

pub fn status_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        607 => "Unwanted",
        608 => "Rejected",
        _ => "Rejected",
    }
}

impl Proxy {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        s: ProxySettings,
        normalizer: Normalizer,
        live: Live,
        lists: Arc<ListStore>,
        audit: AuditSink,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        state: Arc<PolicyState>,
    ) -> Proxy {
        state.caps.set_retain_secs(live.policy.longest_cap_secs());
        let branch_salt = hash_of(&[s.advertise_host.as_bytes(), &s.advertise_port.to_be_bytes()]);
        Proxy {
            s,
            normalizer,
            lists,
            state,
            audit,
            metrics,
            clock,
            txns: DashMap::new(),
            pending: DashMap::new(),
            draining: AtomicBool::new(false),
            live: arc_swap::ArcSwap::from_pointee(live),
            buckets: DashMap::new(),
            stranger_budget: std::sync::Mutex::new(Bucket {
                tokens: STRANGER_ANSWERS_PER_SEC,
                at: Instant::now(),
            }),
            branch_salt,
            tls_names: DashMap::new(),
        }
    }

    /// The policy in force (it changes on a configuration reload).
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// Swap in reloaded settings; calls already being handled finish with the old ones. The
    /// policy decides how long frequency-cap counters must be kept, so the store learns it here.
    pub fn set_live(&self, live: Live) {
        self.state
            .caps
            .set_retain_secs(live.policy.longest_cap_secs());
        self.live.store(Arc::new(live));
    }

    /// Stop taking new INVITEs (503 + Retry-After); everything else still flows.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Take one new-call token for `ip`; false when its rate is exceeded.
    fn admit(&self, ip: std::net::IpAddr) -> bool {
        let live = self.live.load();
        let rate = live.max_calls_per_second as f64;
        if rate == 0.0 {
            return true;
        }
        let cap = rate + live.burst as f64;
        let now = Instant::now();
        self.buckets
            .entry(ip)
            .or_insert(Bucket {
                tokens: cap,
                at: now,
            })
            .take(rate, cap, now)
    }

    /// The global budget for answering sources that may not send (`STRANGER_ANSWERS_PER_SEC`).
    fn may_answer_stranger(&self) -> bool {
        let rate = STRANGER_ANSWERS_PER_SEC;
        self.stranger_budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(rate, rate, Instant::now())
    }

    /// Forwarded INVITEs still waiting for a final response.
    pub fn pending_invites(&self) -> usize {
        self.pending.len()
    }

    /// Forget transactions older than the transaction timeout (64*T1 by default).
    pub fn sweep(&self) {
        let timeout = self.s.tx_timeout;
        self.txns.retain(|_, tx| tx.created.elapsed() < timeout);
        self.pending.retain(|_, t| t.elapsed() < timeout);
        // An idle source's bucket is full again after a few seconds: forget it.
        self.buckets
            .retain(|_, b| b.at.elapsed() < Duration::from_secs(60));
        self.metrics.transactions.set(self.txns.len() as i64);
    }

    fn side_of(&self, src: Peer) -> Option<Side> {
        let a = src.addr();
        let ip = normalize_ip(a.ip());
        let live = self.live.load();
        if a == self.s.upstream || live.upstream_sources.iter().any(|n| n.contains(&ip)) {
            return Some(Side::Upstream);
        }
        if live.dialers.iter().any(|n| n.contains(&ip)) {
            return Some(Side::Dialer);
        }
        if let (Peer::Tls(_), false) = (src, live.tls_dialer_names.is_empty()) {
            let names = self.tls_names.get(&a)?;
            if names.iter().any(|n| live.tls_dialer_names.contains(n)) {
                return Some(Side::Dialer);
            }
        }
        None
    }

    /// A TLS connection from `addr` presented a verified certificate naming `names`.
    pub fn tls_peer_connected(&self, addr: SocketAddr, names: Vec<String>) {
        if !names.is_empty() {
            self.tls_names.insert(addr, names.into());
        }
    }

    pub fn tls_peer_closed(&self, addr: SocketAddr) {
        self.tls_names.remove(&addr);
    }

    fn dropped(&self, reason: &str) {
        self.metrics.dropped.with_label_values(&[reason]).inc();
    }

    /// Handle one received message; what to send is appended to `out` in order.
    pub fn handle(&self, buf: Bytes, src: Peer, out: &mut Vec<Outgoing>) {
        let received = Instant::now();
        if buf.iter().all(|c| matches!(c, b'\r' | b'\n' | 0)) {
            return; // keep-alive
        }
        let side = self.side_of(src);
        // A source that may not send anything is answered (403, for a misconfigured dialer to
        // see) only up to a small global rate: beyond it, a flood costs no parsing and earns
        // no reply (no reflection), and legal traffic keeps the CPU.
        if side.is_none() && !self.may_answer_stranger() {
            self.metrics.unauthorized.inc();
            return self.dropped("unauthorized_unanswered");
        }
        let msg = match Message::parse(buf.clone()) {
            Ok(m) => m,
            Err(e) => return self.on_unparseable(buf, e, src, out),
        };
        match msg.start {
            StartLine::Response { code, .. } => self.on_response(&msg, code, side, out),
            StartLine::Request { method, .. } => {
                self.on_request(&msg, method, src, side, received, out)
            }
        }
    }

    fn on_unparseable(&self, buf: Bytes, e: ParseError, src: Peer, out: &mut Vec<Outgoing>) {
        self.metrics.parse_errors.with_label_values(&[e.kind]).inc();
        // A request earns a response if its headers can still be found.
        if e.status != 0 && self.side_of(src).is_some() {
            if let Ok(m) = Message::parse_lenient(buf) {
                if m.is_request()
                    && m.method() != Some(Method::Ack)
                    && m.header(HeaderName::Via).is_some()
                    && m.header(HeaderName::CSeq).is_some()
                {
                    return self.respond_warning(&m, e.status, e.detail, src, out);
                }
            }
        }
        self.dropped("unparseable");
    }

    fn send_local(
        &self,
        to: Peer,
        method: Method,
        status: u16,
        data: Bytes,
        out: &mut Vec<Outgoing>,
    ) {
        self.metrics.count_sip(Direction::Out, method, Some(status));
        out.push(Outgoing {
            dest: Dest::Peer(to),
            data,
            to_upstream: false,
            after_record: 0,
        });
    }

    fn respond(
        &self,
        req: &Message,
        status: u16,
        src: Peer,
        extra: &[ExtraHeader<'_>],
        out: &mut Vec<Outgoing>,
    ) {
        let method = req.method().unwrap_or(Method::Other);
        let r = build_response(req, status, status_phrase(status), Some("cg0"), extra);
        self.send_local(src, method, status, r, out);
    }

    /// A response that says why in `Warning: 399`.
    fn respond_warning(
        &self,
        req: &Message,
        status: u16,
        why: &str,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        let w = format!("399 {} \"{why}\"", self.s.advertise_host);
        self.respond(
            req,
            status,
            src,
            &[ExtraHeader {
                name: "Warning",
                value: w.as_bytes(),
            }],
            out,
        );
    }

    /// Transaction key: the branch and sent-by for RFC 3261 branches; for RFC 2543 peers the
    /// fields section 17.2.3 falls back to. CSeq method is left out so that ACK and CANCEL map
    /// to their INVITE.
    fn tx_key(&self, msg: &Message, via: &Via) -> u64 {
        let branch = via.branch.map(|b| msg.bytes(b)).unwrap_or(b"");
        let port = via.port.unwrap_or(5060).to_be_bytes();
        if branch.starts_with(MAGIC_COOKIE) {
            hash_of(&[branch, msg.bytes(via.host), &port])
        } else {
            let cseq = msg.cseq().map(|c| c.0).unwrap_or(0).to_be_bytes();
            let from_tag = msg.tag(HeaderName::From).unwrap_or(b"");
            hash_of(&[msg.call_id(), &cseq, from_tag, msg.bytes(via.value)])
        }
    }

    /// Our port for `t` in Via and Record-Route.
    fn port_for(&self, t: Transport) -> u16 {
        match (t, self.s.advertise_tls_port) {
            (Transport::Tls, Some(p)) => p,
            _ => self.s.advertise_port,
        }
    }

    fn our_branch(&self, key: u64) -> u64 {
        mix(key ^ self.branch_salt)
    }

    /// A copy of the transaction's state: no map lock is held while the caller forwards.
    fn tx_phase(&self, key: u64) -> Option<TxPhase> {
        self.txns.get(&key).map(|tx| tx.phase.clone())
    }

    fn remember(&self, key: u64, phase: TxPhase) {
        self.txns.insert(
            key,
            Tx {
                created: Instant::now(),
                phase,
            },
        );
    }

    /// Forward within an existing transaction (retransmitted INVITE, hop-by-hop ACK, CANCEL):
    /// to where the INVITE went, with the branch derived from the same key.
    #[allow(clippy::too_many_arguments)]
    fn relay_in_tx(
        &self,
        msg: &Message,
        via: &Via,
        src: Peer,
        key: u64,
        dest: Peer,
        record_route: bool,
        out: &mut Vec<Outgoing>,
    ) {
        let removals = self.our_routes(msg);
        let upstream = dest.addr() == self.s.upstream;
        self.forward(
            msg,
            via,
            src,
            key,
            &Dest::Peer(dest),
            &removals,
            record_route,
            upstream,
            out,
        );
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
        let Some(side) = side else {
            self.metrics.unauthorized.inc();
            if method != Method::Ack && msg.header(HeaderName::Via).is_some() {
                self.respond(msg, 403, src, &[], out);
            }
            return;
        };
        if let Err(e) = msg.validate_request() {
            self.metrics.parse_errors.with_label_values(&[e.kind]).inc();
            // Via is copied verbatim and the answer goes to the source address, so even a
            // request with an unparseable Via can be told why it was refused.
            if method != Method::Ack && msg.header(HeaderName::Via).is_some() {
                self.respond_warning(msg, e.status, e.detail, src, out);
            } else {
                self.dropped("invalid");
            }
            return;
        }
        let via = msg.top_via().expect("validated");
        let ruri_span = msg.request_uri().expect("request");
        let Some(ruri) = Uri::parse(msg.bytes(ruri_span)) else {
            return self.refuse(msg, method, 400, src, out);
        };
        if ruri.scheme == Scheme::Other {
            return self.refuse(msg, method, 416, src, out);
        }
        if ruri.is_sip() && ruri.headers.is_some() {
            return self.refuse(msg, method, 400, src, out);
        }
        if method != Method::Ack && method != Method::Cancel {
            if let Some(h) = msg.header(HeaderName::ProxyRequire) {
                self.metrics
                    .parse_errors
                    .with_label_values(&["bad_extension"])
                    .inc();
                let unsupported = [ExtraHeader {
                    name: "Unsupported",
                    value: msg.bytes(h.value),
                }];
                return self.respond(msg, 420, src, &unsupported, out);
            }
        }
        let key = self.tx_key(msg, &via);
        match method {
            Method::Ack => return self.on_ack(msg, &via, &ruri, side, key, src, out),
            Method::Cancel => return self.on_cancel(msg, &via, key, src, out),
            Method::Invite => {
                if let Some(phase) = self.tx_phase(key) {
                    return self.on_invite_retransmission(msg, &via, phase, key, src, out);
                }
            }
            _ => {}
        }
        let removals = self.our_routes(msg);
        let (dest, upstream) = match self.route(msg, method, &ruri, side, &removals) {
            Route::Local => {
                let allow = [ExtraHeader {
                    name: "Allow",
                    value: ALLOW,
                }];
                let r = build_response(msg, 200, "OK", Some("cgping"), &allow);
                return self.send_local(src, method, 200, r, out);
            }
            Route::Refuse(status, why) => return self.respond_warning(msg, status, why, src, out),
            Route::Forward { dest, upstream } => (dest, upstream),
        };
        match msg.max_forwards() {
            Some(Ok(0)) => return self.refuse(msg, method, 483, src, out),
            Some(Err(())) => return self.refuse(msg, method, 400, src, out),
            _ => {}
        }
        let initial_invite = method == Method::Invite && msg.tag(HeaderName::To).is_none();
        if !initial_invite {
            self.forward(msg, &via, src, key, &dest, &removals, false, upstream, out);
            if let (Method::Invite, Dest::Peer(p)) = (method, &dest) {
                self.remember(key, TxPhase::Forwarded { dest: *p });
            }
            return;
        }
        if side == Side::Dialer && !self.admit(normalize_ip(src.addr().ip())) {
            self.metrics.rate_limited.inc();
            let retry = [ExtraHeader {
                name: "Retry-After",
                value: b"1",
            }];
            return self.respond(msg, 503, src, &retry, out);
        }
        if self.draining.load(Ordering::Acquire) {
            self.metrics.drain_rejections.inc();
            let secs = self.live.load().drain_retry_after_secs.to_string();
            let retry = [ExtraHeader {
                name: "Retry-After",
                value: secs.as_bytes(),
            }];
            return self.respond(msg, 503, src, &retry, out);
        }
        let (called, called_span) = self.called_number(msg, &ruri);
        let now = self.clock.now();
        let decision = match side {
            Side::Dialer => {
                let live = self.live.load();
                let ctx = self.call_context(msg, src, &live.policy);
                live.policy.decide(
                    ctx,
                    called,
                    self.lists.snapshot(),
                    &self.lists.optouts,
                    &self.state,
                    now,
                    true,
                )
            }
            Side::Upstream => {
                self.live
                    .load()
                    .policy
                    .inbound(called, self.lists.snapshot(), &self.lists.optouts)
            }
        };
        let latency = received.elapsed();
        self.metrics.decision_seconds.observe(latency.as_secs_f64());
        self.metrics
            .count_decision(decision.verdict, decision.reasons);
        let seq = self.audit.next_seq();
        let mut sip_status = 0;
        if decision.verdict.forwards() {
            if self.s.send_100 {
                let r = build_response(msg, 100, "Trying", None, &[]);
                self.send_local(src, method, 100, r, out);
            }
            self.forward(msg, &via, src, key, &dest, &removals, true, upstream, out);
            if self.s.before_forward {
                // The forwarded INVITE is the last message pushed: it waits for its record.
                if let Some(o) = out.last_mut() {
                    o.after_record = seq;
                }
            }
            if let Dest::Peer(p) = dest {
                self.remember(key, TxPhase::Forwarded { dest: p });
                self.pending.insert(self.our_branch(key), Instant::now());
            }
        } else {
            let (status, response) = self.rejection(msg, &decision, key, seq);
            sip_status = status;
            self.send_local(src, method, status, response.clone(), out);
            self.remember(
                key,
                TxPhase::Rejected {
                    response,
                    status,
                    to: src,
                },
            );
        }
        self.audit_decision(
            msg,
            called_span,
            src,
            decision,
            sip_status,
            seq,
            now,
            latency,
        );
    }

    fn refuse(
        &self,
        msg: &Message,
        method: Method,
        status: u16,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        if method == Method::Ack {
            return self.dropped("invalid_ack");
        }
        self.respond(msg, status, src, &[], out)
    }

    fn on_invite_retransmission(
        &self,
        msg: &Message,
        via: &Via,
        phase: TxPhase,
        key: u64,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        match phase {
            TxPhase::Rejected {
                response,
                status,
                to,
            } => {
                // Section 17.2.1: a retransmitted request gets the final response again.
                self.metrics
                    .retransmissions
                    .with_label_values(&["INVITE", "answered"])
                    .inc();
                self.send_local(to, Method::Invite, status, response, out);
            }
            TxPhase::Forwarded { dest } => {
                // Stateless relay of the retransmission (same branch): exactly one copy out.
                self.metrics
                    .retransmissions
                    .with_label_values(&["INVITE", "relayed"])
                    .inc();
                let initial = msg.tag(HeaderName::To).is_none();
                self.relay_in_tx(msg, via, src, key, dest, initial, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_ack(
        &self,
        msg: &Message,
        via: &Via,
        ruri: &Uri<'_>,
        side: Side,
        key: u64,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        match self.tx_phase(key) {
            // The ACK to our own non-2xx final response ends here (section 17.2.1).
            Some(TxPhase::Rejected { .. }) => {
                self.metrics
                    .retransmissions
                    .with_label_values(&["ACK", "absorbed"])
                    .inc();
            }
            // ACK for a non-2xx response from downstream: same hop, same branch.
            Some(TxPhase::Forwarded { dest }) => {
                self.relay_in_tx(msg, via, src, key, dest, false, out)
            }
            // ACK for a 2xx: its own transaction, routed like any in-dialog request.
            None => {
                let removals = self.our_routes(msg);
                match self.route(msg, Method::Ack, ruri, side, &removals) {
                    Route::Forward { dest, upstream } => {
                        if !matches!(msg.max_forwards(), Some(Ok(0))) {
                            self.forward(
                                msg, via, src, key, &dest, &removals, false, upstream, out,
                            );
                        }
                    }
                    _ => self.dropped("ack_unroutable"),
                }
            }
        }
    }

    fn on_cancel(&self, msg: &Message, via: &Via, key: u64, src: Peer, out: &mut Vec<Outgoing>) {
        match self.tx_phase(key) {
            // CANCEL goes where its INVITE went, with the INVITE's branch (section 9.1).
            Some(TxPhase::Forwarded { dest }) => {
                self.relay_in_tx(msg, via, src, key, dest, false, out)
            }
            // Already answered with a final response: the CANCEL has nothing left to cancel.
            Some(TxPhase::Rejected { .. }) => self.respond(msg, 200, src, &[], out),
            None => self.respond(msg, 481, src, &[], out),
        }
    }

    /// The called number and the span of the URI it was taken from: the Request-URI's user
    /// part, or To when the Request-URI has none.
    fn called_number(
        &self,
        msg: &Message,
        ruri: &Uri<'_>,
    ) -> (Result<Called, NumberProblem>, Span) {
        let ruri_span = msg.request_uri().expect("request");
        if ruri.user.is_some() || ruri.scheme == Scheme::Tel {
            return (self.normalizer.called(ruri), ruri_span);
        }
        let Some(to) = msg.header(HeaderName::To) else {
            return (Err(NumberProblem::NoRequestUri), ruri_span);
        };
        let to_uri = name_addr_uri(msg.bytes(to.value));
        let start = to_uri.as_ptr() as usize - msg.buf.as_ptr() as usize;
        let span = Span::new(start, start + to_uri.len());
        let r = Uri::parse(to_uri)
            .ok_or(NumberProblem::NoRequestUri)
            .and_then(|u| self.normalizer.called(&u));
        (r, span)
    }

    /// Campaign, call type and caller ID of a new call from a dialer.
    fn call_context(&self, msg: &Message, src: Peer, policy: &Policy) -> CallContext {
        let campaigns = &policy.campaigns;
        let withheld = msg.other_header(b"privacy").is_some_and(|p| {
            p.split(|c| *c == b';' || *c == b',')
                .any(|t| trim_slice(t).eq_ignore_ascii_case(b"id"))
        });
        let header = msg
            .header(HeaderName::PAssertedIdentity)
            .or_else(|| msg.header(HeaderName::From));
        let caller_id = match header
            .map(|h| name_addr_uri(msg.bytes(h.value)))
            .and_then(Uri::parse)
        {
            _ if withheld => CallerId::Anonymous,
            Some(u)
                if u.user.is_some_and(|x| x.eq_ignore_ascii_case(b"anonymous"))
                    || u.host.eq_ignore_ascii_case(b"anonymous.invalid") =>
            {
                CallerId::Anonymous
            }
            Some(u) => match self.normalizer.called(&u) {
                Ok(Called::Number(n)) => CallerId::Number(n),
                _ => CallerId::Missing,
            },
            None => CallerId::Missing,
        };
        campaigns.classify(
            Some(normalize_ip(src.addr().ip())),
            msg.other_header(campaigns.campaign_header.as_bytes()),
            msg.other_header(campaigns.call_type_header.as_bytes()),
            caller_id,
        )
    }

    fn is_us(&self, host: &[u8], port: Option<u16>) -> bool {
        let port = port.unwrap_or(5060);
        let port_ok = port == self.s.advertise_port || Some(port) == self.s.advertise_tls_port;
        port_ok
            && self
                .s
                .local_hosts
                .iter()
                .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
    }

    /// Leading Route values that name this proxy: what to delete (whole lines, or a value and
    /// its comma), and the first remaining Route URI if any.
    fn our_routes(&self, msg: &Message) -> RouteEdits {
        let mut edits = RouteEdits::default();
        for h in msg.headers.iter().filter(|h| h.name == HeaderName::Route) {
            let mut values = CommaSplit::new(&msg.buf, h.value).peekable();
            let first_start = h.value.start;
            let mut removed_to: Option<u32> = None;
            while let Some(v) = values.next() {
                let uri = name_addr_uri(msg.bytes(v));
                let ours =
                    Uri::parse(uri).is_some_and(|u| u.is_sip() && self.is_us(u.host, u.port));
                if !ours {
                    let s = uri.as_ptr() as usize - msg.buf.as_ptr() as usize;
                    edits.next = Some(Span::new(s, s + uri.len()));
                    break;
                }
                removed_to = Some(values.peek().map(|n| n.start).unwrap_or(u32::MAX));
            }
            match removed_to {
                Some(u32::MAX) => edits.push(h.line),
                Some(next_start) => edits.push(Span {
                    start: first_start,
                    end: next_start,
                }),
                None => {}
            }
            if edits.next.is_some() {
                break;
            }
        }
        edits
    }

    fn route(
        &self,
        msg: &Message,
        method: Method,
        ruri: &Uri<'_>,
        side: Side,
        edits: &RouteEdits,
    ) -> Route {
        let in_dialog = msg.tag(HeaderName::To).is_some();
        let upstream = Route::Forward {
            dest: Dest::Peer(Peer::new(self.s.upstream_transport, self.s.upstream)),
            upstream: true,
        };
        // Requests from dialers go only to the configured upstream, in a dialog or not: every
        // dialog a dialer has runs through callgate to the upstream, and callgate is not a
        // relay to wherever a Request-URI or a Route header points.
        if side == Side::Dialer {
            if method == Method::Options
                && !in_dialog
                && ruri.user.is_none()
                && edits.next.is_none()
                && self.is_us(ruri.host, ruri.port)
            {
                return Route::Local;
            }
            return upstream;
        }
        let target = match edits.next {
            Some(span) => match Uri::parse(msg.bytes(span)) {
                Some(u) if u.is_sip() => u,
                _ => return Route::Refuse(400, "unroutable Route header"),
            },
            None => *ruri,
        };
        if !target.is_sip() {
            return Route::Refuse(416, "cannot route this URI scheme");
        }
        if self.is_us(target.host, target.port) {
            if method == Method::Options && target.user.is_none() {
                return Route::Local;
            }
            return match (side, self.s.inbound_target) {
                (Side::Upstream, Some(t)) => Route::Forward {
                    dest: Dest::Peer(Peer::Udp(t)),
                    upstream: false,
                },
                _ => Route::Refuse(404, "no route for a request addressed to callgate"),
            };
        }
        self.resolve(&target)
    }

    fn resolve(&self, u: &Uri<'_>) -> Route {
        let port = u
            .port
            .unwrap_or(if u.scheme == Scheme::Sips { 5061 } else { 5060 });
        let transport = match u.param(b"transport").and_then(Transport::from_token) {
            Some(t) => Some(t),
            None if u.scheme == Scheme::Sips => Some(Transport::Tls),
            None => None,
        };
        let host = u
            .host
            .strip_prefix(b"[")
            .and_then(|h| h.strip_suffix(b"]"))
            .unwrap_or(u.host);
        let host = std::str::from_utf8(host).unwrap_or("");
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !deliverable(ip) {
                return Route::Refuse(
                    400,
                    "refusing to send to a broadcast or unspecified address",
                );
            }
            let addr = SocketAddr::new(ip, port);
            let is_up = addr == self.s.upstream;
            let t = transport.unwrap_or(if is_up {
                self.s.upstream_transport
            } else {
                Transport::Udp
            });
            return Route::Forward {
                dest: Dest::Peer(Peer::new(t, addr)),
                upstream: is_up,
            };
        }
        if host.eq_ignore_ascii_case(&self.s.upstream_host) && port == self.s.upstream.port() {
            return Route::Forward {
                dest: Dest::Peer(Peer::new(self.s.upstream_transport, self.s.upstream)),
                upstream: true,
            };
        }
        if host.is_empty() {
            return Route::Refuse(400, "no host to route to");
        }
        Route::Forward {
            dest: Dest::Resolve {
                host: host.to_string(),
                port,
                transport: transport.unwrap_or(Transport::Udp),
            },
            upstream: false,
        }
    }

    /// Write the forwarded request: our Via on top, received/rport on the sender's Via,
    /// Max-Forwards decremented, our Route entries consumed, Record-Route added to initial
    /// INVITEs. Nothing else changes (the SDP body least of all).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        msg: &Message,
        via: &Via,
        src: Peer,
        key: u64,
        dest: &Dest,
        removals: &RouteEdits,
        record_route: bool,
        upstream: bool,
        out: &mut Vec<Outgoing>,
    ) {
        let out_transport = match dest {
            Dest::Peer(p) => p.transport(),
            Dest::Resolve { transport, .. } => *transport,
        };
        let mut s = Splicer::new(msg);
        let first_via = msg
            .headers
            .iter()
            .find(|h| h.name == HeaderName::Via)
            .expect("validated");
        let at = first_via.line.start as usize;
        let (host, branch) = (&self.s.advertise_host, self.our_branch(key));
        let port = self.port_for(out_transport);
        s.insert(at, |t| {
            let _ = write!(
                t,
                "Via: SIP/2.0/{} {}:{};branch=z9hG4bKcg{:016x}\r\n",
                out_transport.as_str(),
                host,
                port,
                branch
            );
        });
        if self.s.record_route && record_route {
            let rr_at = msg
                .headers
                .iter()
                .find(|h| h.name == HeaderName::RecordRoute)
                .map(|h| h.line.start as usize)
                .unwrap_or(at);
            let in_t = src.transport();
            s.insert(rr_at, |t| {
                // Double Record-Route when the transport changes, so each side reaches us on
                // its own transport (RFC 3261 section 16.6 step 4; RFC 5658).
                rr_line(t, host, port, out_transport);
                if in_t != out_transport {
                    rr_line(t, host, self.port_for(in_t), in_t);
                }
            });
        }
        // received / rport on the sender's Via (section 18.2.1, RFC 3581). Over TCP and TLS
        // rport is always filled in: it names the connection the responses must go back on.
        let src_ip = normalize_ip(src.addr().ip());
        let sent_by_ip = std::str::from_utf8(msg.bytes(via.host)).ok().and_then(|h| {
            h.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .ok()
        });
        let need_received = sent_by_ip != Some(src_ip) && via.received.is_none();
        let src_port = src.addr().port();
        match via.rport_param {
            Some(p) if via.rport == Some(None) => {
                s.replace(p.start as usize, p.end as usize, |t| {
                    let _ = write!(t, "rport={src_port}");
                })
            }
            None if src.transport() != Transport::Udp => s.insert(via.value.end as usize, |t| {
                let _ = write!(t, ";rport={src_port}");
            }),
            _ => {}
        }
        if need_received {
            s.insert(via.value.end as usize, |t| {
                let _ = write!(t, ";received={src_ip}");
            });
        }
        match msg.header(HeaderName::MaxForwards) {
            Some(h) => {
                let n = msg
                    .max_forwards()
                    .and_then(|r| r.ok())
                    .unwrap_or(70)
                    .saturating_sub(1);
                s.replace(h.value.start as usize, h.value.end as usize, |t| {
                    let _ = write!(t, "{n}");
                });
            }
            None => s.insert(at, |t| t.extend_from_slice(b"Max-Forwards: 70\r\n")),
        }
        for r in removals.spans() {
            s.delete(r.start as usize, r.end as usize);
        }
        if !msg.has_content_length {
            let len = msg.body.len();
            s.insert(msg.headers_end as usize, |t| {
                let _ = write!(t, "Content-Length: {len}\r\n");
            });
        }
        let data = s.finish();
        self.metrics
            .count_sip(Direction::Out, msg.method().unwrap_or(Method::Other), None);
        out.push(Outgoing {
            dest: dest.clone(),
            data,
            to_upstream: upstream,
            after_record: 0,
        });
    }

    fn on_response(&self, msg: &Message, code: u16, side: Option<Side>, out: &mut Vec<Outgoing>) {
        let method = msg.cseq().map(|c| c.1).unwrap_or(Method::Other);
        self.metrics.count_sip(Direction::In, method, Some(code));
        if side.is_none() {
            self.metrics.unauthorized.inc();
            return self.dropped("unauthorized_response");
        }
        let mut vias = msg.vias();
        let (Some(top), second) = (vias.next(), vias.next()) else {
            return self.dropped("no_via");
        };
        // Our Via: its branch carries the transaction's id in hex after our prefix.
        let our_branch = Via::parse(&msg.buf, top)
            .filter(|v| self.is_us(msg.bytes(v.host), v.port))
            .and_then(|v| v.branch)
            .and_then(|b| msg.bytes(b).strip_prefix(OUR_BRANCH_PREFIX));
        let Some(our_branch) = our_branch else {
            return self.dropped("via_not_ours");
        };
        let Some(next) = second.and_then(|s| Via::parse(&msg.buf, s)) else {
            return self.dropped("no_via");
        };
        if method == Method::Invite && code == 100 && self.s.send_100 {
            // We already sent our own 100 (section 16.7 step 5: 100s are not forwarded).
            return self.dropped("100_absorbed");
        }
        let Some(dest) = response_dest(msg, &next) else {
            return self.dropped("bad_destination");
        };
        if method == Method::Invite && code >= 200 {
            if let Some(id) = std::str::from_utf8(our_branch)
                .ok()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                self.pending.remove(&id);
            }
        }
        // Remove our Via: the whole line when it holds only ours, else our value and its comma.
        let mut s = Splicer::new(msg);
        let via_hdr = msg
            .headers
            .iter()
            .find(|h| h.name == HeaderName::Via)
            .expect("has via");
        if CommaSplit::new(&msg.buf, via_hdr.value).nth(1).is_some() {
            s.delete(
                top.start as usize,
                (next.value.start as usize).min(via_hdr.value.end as usize),
            );
        } else {
            s.delete(via_hdr.line.start as usize, via_hdr.line.end as usize);
        }
        let data = s.finish();
        self.metrics.count_sip(Direction::Out, method, Some(code));
        out.push(Outgoing {
            dest,
            data,
            to_upstream: false,
            after_record: 0,
        });
    }

    /// The final response for a blocked call: configured status, a Q.850 `Reason` and a
    /// `Warning: 399` naming the reason code. Returns the status with the bytes.
    fn rejection(&self, msg: &Message, d: &Decision, key: u64, seq: u64) -> (u16, Bytes) {
        let primary = d.reasons.primary().unwrap_or(Reason::NationalDnc);
        let live = self.live.load();
        let reject = &live.reject;
        let status = reject.status_for(Some(primary));
        let phrase = if status == reject.status {
            reject.reason_phrase.as_str()
        } else {
            status_phrase(status)
        };
        let cause = if primary == Reason::UnparseableNumber {
            28
        } else {
            reject.q850_cause
        };
        let mut reason = Vec::with_capacity(64);
        let _ = write!(reason, "Q.850;cause={cause};text=\"{}\"", primary.code());
        let mut warning = Vec::with_capacity(96);
        let _ = write!(
            warning,
            "399 {} \"{}: {}\"",
            self.s.advertise_host,
            primary.code(),
            primary.text()
        );
        let id = self.audit.decision_id(seq);
        let retry = d.retry_after.map(|s| s.to_string());
        let mut extra = Vec::with_capacity(4);
        if reject.reason_header {
            extra.push(ExtraHeader {
                name: "Reason",
                value: &reason,
            });
        }
        if reject.warning_header {
            extra.push(ExtraHeader {
                name: "Warning",
                value: &warning,
            });
        }
        extra.push(ExtraHeader {
            name: "X-Callgate-Decision",
            value: id.as_bytes(),
        });
        if let Some(r) = &retry {
            extra.push(ExtraHeader {
                name: "Retry-After",
                value: r.as_bytes(),
            });
        }
        let tag = format!("cg{:x}", key & 0xffff_ffff);
        (
            status,
            build_response(msg, status, phrase, Some(&tag), &extra),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_decision(
        &self,
        msg: &Message,
        called_span: Span,
        src: Peer,
        decision: Decision,
        sip_status: u16,
        seq: u64,
        ts: DateTime<Utc>,
        latency: Duration,
    ) {
        let slice = |h: HeaderName| msg.header(h).map(|h| msg.buf.slice(h.value.range()));
        self.audit.submit(AuditEvent {
            seq,
            instance: self.audit.instance_arc(),
            ts,
            call_id: slice(HeaderName::CallId).unwrap_or_default(),
            source: src.addr(),
            transport: src.transport().lower(),
            source_cert: match src {
                Peer::Tls(a) => self.tls_names.get(&a).map(|n| n.value().clone()),
                _ => None,
            },
            from: slice(HeaderName::From).unwrap_or_default(),
            pai: slice(HeaderName::PAssertedIdentity),
            called_raw: msg.buf.slice(called_span.range()),
            decision,
            sip_status,
            latency_us: latency.as_micros().min(u32::MAX as u128) as u32,
        });
    }

    /// What would happen to a call (admin API and CLI). Counts nothing.
    pub fn check(&self, req: &crate::policy::CheckRequest) -> Result<Decision, String> {
        crate::policy::check_number(
            &self.normalizer,
            &self.live.load().policy,
            &self.lists,
            &self.state,
            req,
            self.clock.now(),
        )
    }
}

fn rr_line(t: &mut Vec<u8>, host: &str, port: u16, transport: Transport) {
    let _ = match transport {
        Transport::Udp => write!(t, "Record-Route: <sip:{host}:{port};lr>\r\n"),
        Transport::Tcp | Transport::Tls => write!(
            t,
            "Record-Route: <sip:{host}:{port};transport={};lr>\r\n",
            transport.lower()
        ),
    };
}

/// Spans to delete for consumed Route values, and the next Route URI.
#[derive(Default)]
struct RouteEdits {
    spans: [Span; 4],
    n: usize,
    next: Option<Span>,
}

impl RouteEdits {
    fn push(&mut self, s: Span) {
        if self.n < self.spans.len() {
            self.spans[self.n] = s;
            self.n += 1;
        }
    }
    fn spans(&self) -> &[Span] {
        &self.spans[..self.n]
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) compare as IPv4.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn deliverable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_broadcast() || v4.is_unspecified() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Where a response goes: the next Via's `received`/`rport` or sent-by (section 18.2.2).
fn response_dest(msg: &Message, via: &Via) -> Option<Dest> {
    let transport = Transport::from_token(via.transport(&msg.buf)).unwrap_or(Transport::Udp);
    let host_bytes = via
        .received
        .map(|r| msg.bytes(r))
        .unwrap_or(msg.bytes(via.host));
    let host = std::str::from_utf8(host_bytes)
        .ok()?
        .trim_matches(|c| c == '[' || c == ']');
    let port = via.rport.flatten().or(via.port).unwrap_or(5060);
    match host.parse::<IpAddr>() {
        Ok(ip) if deliverable(ip) => {
            Some(Dest::Peer(Peer::new(transport, SocketAddr::new(ip, port))))
        }
        Ok(_) => None,
        Err(_) => Some(Dest::Resolve {
            host: host.to_string(),
            port,
            transport,
        }),
    }
}
