//! The SIP core's settings as the in-memory tests and the benchmarks use them: callgate at
//! 192.0.2.10:5060 (Record-Routing, sending its own 100 Trying), the upstream given, the
//! configuration's defaults for time limits and bounds.

use callgate::sip::peer::Transport;
use callgate::sip::proxy::ProxySettings;
use std::net::SocketAddr;
use std::time::Duration;

pub fn settings(upstream: SocketAddr, upstream_host: &str) -> ProxySettings {
    ProxySettings {
        advertise_host: "192.0.2.10".into(),
        advertise_port: 5060,
        advertise_tls_port: None,
        local_hosts: vec!["192.0.2.10".into()],
        upstream,
        upstream_host: upstream_host.into(),
        upstream_transport: Transport::Udp,
        record_route: true,
        send_100: true,
        inbound_target: None,
        tx_timeout: Duration::from_secs(64),
        longest_call: Duration::from_secs(4 * 3600),
        max_open_calls: 500_000,
        timer_c: Duration::from_secs(180),
    }
}
