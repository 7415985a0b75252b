//! Who may send, and how fast: a source is the upstream, a configured dialer (by address or by
//! its TLS certificate name), or a stranger; new calls from a dialer are rate-limited per
//! source IP, and strangers get at most a small global rate of answers.

use crate::sip::peer::{Peer, Side};
use arc_swap::ArcSwap;
use dashmap::DashMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests from sources that may not send are answered 403 at most this often (all sources
/// together); the rest are dropped unparsed and counted.
const STRANGER_ANSWERS_PER_SEC: f64 = 100.0;

/// The SIP settings a configuration reload (SIGHUP) swaps in without a restart.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub dialers: Vec<IpNet>,
    pub upstream_sources: Vec<IpNet>,
    /// New calls per second per dialer IP; 0: no limit.
    pub max_calls_per_second: u32,
    pub burst: u32,
    pub drain_retry_after_secs: u32,
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

pub(super) struct Admission {
    access: ArcSwap<Access>,
    /// Token buckets of new calls per source address.
    buckets: DashMap<IpAddr, Bucket>,
    stranger_budget: Mutex<Bucket>,
    /// The certificate identities of open TLS connections that presented a verified client
    /// certificate, by remote address.
    tls_names: DashMap<SocketAddr, Arc<[String]>>,
}

impl Admission {
    pub(super) fn new(access: Access) -> Admission {
        Admission {
            access: ArcSwap::from_pointee(access),
            buckets: DashMap::new(),
            stranger_budget: Mutex::new(Bucket {
                tokens: STRANGER_ANSWERS_PER_SEC,
                at: Instant::now(),
            }),
            tls_names: DashMap::new(),
        }
    }

    pub(super) fn access(&self) -> Arc<Access> {
        self.access.load_full()
    }

    pub(super) fn set_access(&self, access: Access) {
        self.access.store(Arc::new(access));
    }

    /// Which side `src` is on, or `None` for a source that may not send.
    pub(super) fn side_of(&self, src: Peer, upstream: SocketAddr) -> Option<Side> {
        let a = src.addr();
        let ip = src.ip();
        let access = self.access.load();
        if a == upstream || access.upstream_sources.iter().any(|n| n.contains(&ip)) {
            return Some(Side::Upstream);
        }
        if access.dialers.iter().any(|n| n.contains(&ip)) {
            return Some(Side::Dialer);
        }
        if let (Peer::Tls(_), false) = (src, access.tls_dialer_names.is_empty()) {
            let names = self.tls_names.get(&a)?;
            if names.iter().any(|n| access.tls_dialer_names.contains(n)) {
                return Some(Side::Dialer);
            }
        }
        None
    }

    /// Take one new-call token for `ip`; false when its rate is exceeded.
    pub(super) fn take_call_token(&self, ip: IpAddr) -> bool {
        let access = self.access.load();
        let rate = access.max_calls_per_second as f64;
        if rate == 0.0 {
            return true;
        }
        let cap = rate + access.burst as f64;
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
    pub(super) fn may_answer_stranger(&self) -> bool {
        let rate = STRANGER_ANSWERS_PER_SEC;
        self.stranger_budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(rate, rate, Instant::now())
    }

    /// An idle source's bucket is full again after a few seconds: forget it.
    pub(super) fn sweep(&self) {
        self.buckets
            .retain(|_, b| b.at.elapsed() < Duration::from_secs(60));
    }

    pub(super) fn tls_peer_connected(&self, addr: SocketAddr, names: Vec<String>) {
        if !names.is_empty() {
            self.tls_names.insert(addr, names.into());
        }
    }

    pub(super) fn tls_peer_closed(&self, addr: SocketAddr) {
        self.tls_names.remove(&addr);
    }

    /// The verified certificate names of a TLS source, if it presented any.
    pub(super) fn cert_names(&self, src: Peer) -> Option<Arc<[String]>> {
        match src {
            Peer::Tls(a) => self.tls_names.get(&a).map(|n| n.value().clone()),
            _ => None,
        }
    }
}
