//! Who a message came from and where one goes: the transport, the peer, the destination of an
//! outgoing message, and which side of callgate a peer is on.

use bytes::Bytes;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// A SIP transport, as configured (`upstream.transport`) and as named in Via and URIs.
#[derive(
    Debug, Clone, Copy, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// A transport named in SIP (a Via's protocol, a URI's `transport=`), any case.
    pub(crate) fn from_token(t: &[u8]) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|x| t.eq_ignore_ascii_case(x.lower().as_bytes()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    pub fn lower(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// A transport-level peer: the address plus how we talk to it. For TCP and TLS the address
/// names the connection (its remote address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Tls(SocketAddr),
}

impl Peer {
    pub fn new(t: Transport, a: SocketAddr) -> Peer {
        match t {
            Transport::Udp => Peer::Udp(a),
            Transport::Tcp => Peer::Tcp(a),
            Transport::Tls => Peer::Tls(a),
        }
    }

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

    /// The source IP as policies compare it (IPv4-mapped IPv6 as IPv4).
    pub fn ip(self) -> IpAddr {
        normalize_ip(self.addr().ip())
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

impl Dest {
    pub fn transport(&self) -> Transport {
        match self {
            Dest::Peer(p) => p.transport(),
            Dest::Resolve { transport, .. } => *transport,
        }
    }
}

/// One message to send, in the order the proxy emitted it.
#[derive(Debug)]
pub struct Outgoing {
    pub dest: Dest,
    pub data: Bytes,
    /// Counted as upstream traffic (send errors go to `callgate_upstream_send_errors_total`).
    pub to_upstream: bool,
    /// Send only once the record with this sequence number is durable (before-forward); later
    /// messages queue behind it, so order is kept.
    pub after_record: Option<u64>,
}

/// Which side of callgate a peer is on; a source that is neither may not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Upstream,
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) compare as IPv4.
pub(crate) fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}
