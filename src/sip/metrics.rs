//! The SIP core's own counters (messages, parse errors, drops, retransmissions, transactions,
//! connections). Registered into the registry the rest of callgate's metrics use, so one
//! `/metrics` shows both; labelled children are resolved once, so counting is an atomic add.

use super::parse::Method;
use crate::metrics::{counter, counter_vec, gauge};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    In,
    Out,
}

const STATUS_SLOTS: usize = 601; // 0 = request, 1..=600 = status 100..=699

pub struct SipMetrics {
    sip_messages: IntCounterVec,
    sip_handles: Box<[OnceLock<IntCounter>]>,
    pub parse_errors: IntCounterVec,
    pub dropped: IntCounterVec,
    pub upstream_send_errors: IntCounter,
    pub send_errors: IntCounter,
    pub unauthorized: IntCounter,
    pub retransmissions: IntCounterVec,
    pub transactions: IntGauge,
    pub calls_open: IntGauge,
    pub tcp_connections: IntGauge,
    pub udp_receive_buffer: IntGauge,
    pub worker_datagrams: IntCounterVec,
    pub drain_rejections: IntCounter,
    pub rate_limited: IntCounter,
    pub max_open_refusals: IntCounter,
}

impl SipMetrics {
    pub fn register(r: &Registry) -> SipMetrics {
        SipMetrics {
            sip_messages: counter_vec(
                r,
                "callgate_sip_messages_total",
                "SIP messages received (in) and sent (out), by method (CSeq method for responses) and status.",
                &["direction", "method", "status"],
            ),
            sip_handles: (0..2 * Method::ALL.len() * STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
            parse_errors: counter_vec(r, "callgate_parse_errors_total", "Messages that failed to parse or validate.", &["kind"]),
            dropped: counter_vec(r, "callgate_dropped_messages_total", "Messages dropped without a response.", &["reason"]),
            upstream_send_errors: counter(r, "callgate_upstream_send_errors_total", "Failures sending to the upstream."),
            send_errors: counter(r, "callgate_send_errors_total", "Failures sending to any peer."),
            worker_datagrams: counter_vec(
                r,
                "callgate_sip_worker_datagrams_total",
                "UDP datagrams received, by worker (sip.workers): how the kernel spread the senders.",
                &["worker"],
            ),
            unauthorized: counter(
                r,
                "callgate_unauthorized_requests_total",
                "Requests from sources that are neither a configured dialer nor the upstream (answered 403).",
            ),
            retransmissions: counter_vec(
                r,
                "callgate_retransmissions_total",
                "Retransmitted requests recognised by transaction.",
                &["method", "action"],
            ),
            transactions: gauge(r, "callgate_transactions", "INVITE server transactions being tracked."),
            calls_open: gauge(r, "callgate_calls_open", "Calls forwarded and not yet ended (ringing or answered)."),
            udp_receive_buffer: gauge(r, "callgate_udp_receive_buffer_bytes", "The UDP socket's kernel receive buffer as granted (compare with sip.udp_receive_buffer_bytes)."),
            tcp_connections: gauge(r, "callgate_tcp_connections", "Open SIP TCP and TLS connections (including TLS handshakes in progress on the listener)."),
            rate_limited: counter(r, "callgate_rate_limited_total", "New INVITEs answered 503 because their source exceeded dialers.max_calls_per_second."),
            max_open_refusals: counter(r, "callgate_calls_refused_max_open_total", "New INVITEs answered 503 because calls.max_open calls were already open."),
            drain_rejections: counter(r, "callgate_drain_rejections_total", "New INVITEs answered 503 while draining for shutdown."),
        }
    }

    /// A detached set (tests and benchmarks that do not render `/metrics`).
    pub fn detached() -> SipMetrics {
        SipMetrics::register(&Registry::new())
    }

    /// Count a SIP message; `status` is None for requests.
    #[inline]
    pub(crate) fn count_sip(&self, dir: Direction, method: Method, status: Option<u16>) {
        let slot = status
            .map(|s| (s.clamp(100, 699) - 99) as usize)
            .unwrap_or(0);
        let idx = ((dir as usize) * Method::ALL.len() + method.index()) * STATUS_SLOTS + slot;
        self.sip_handles[idx]
            .get_or_init(|| {
                let d = if dir == Direction::In { "in" } else { "out" };
                let st = status.map(|s| s.to_string()).unwrap_or_default();
                self.sip_messages
                    .with_label_values(&[d, method.as_str(), &st])
            })
            .inc();
    }

    pub(crate) fn dropped(&self, reason: &str) {
        self.dropped.with_label_values(&[reason]).inc();
    }
}
