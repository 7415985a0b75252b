//! Where a message goes. Requests from dialers go only to the upstream; requests from the
//! upstream follow their Route set or Request-URI; responses go where the next Via says
//! (section 18.2.2).

use super::{Proxy, Req};
use crate::sip::parse::{name_addr_uri, CommaSplit, HeaderName, Message, Method, Span, Via};
use crate::sip::peer::{Dest, Peer, Side, Transport};
use crate::sip::uri::{Scheme, Uri};
use std::net::{IpAddr, SocketAddr};

pub(super) enum Route {
    /// Addressed to callgate itself (OPTIONS ping).
    Local,
    Forward(Forward),
    Refuse(u16, &'static str),
}

/// Where a request is forwarded, and the Route values naming us that it loses on the way.
pub(super) struct Forward {
    pub(super) dest: Dest,
    /// Counted as upstream traffic.
    pub(super) upstream: bool,
    pub(super) edits: RouteEdits,
}

/// Spans to delete for consumed Route values, and the next Route URI.
#[derive(Default)]
pub(super) struct RouteEdits {
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

    pub(super) fn spans(&self) -> &[Span] {
        &self.spans[..self.n]
    }
}

/// How much of one Route header names us.
enum OursIn {
    Nothing,
    /// Every value: the whole line goes.
    WholeLine,
    /// The leading values, up to the next value's start.
    UpTo(u32),
}

impl Proxy {
    pub(super) fn route(&self, r: &Req<'_>, ruri: &Uri<'_>, edits: RouteEdits) -> Route {
        let upstream = Dest::Peer(Peer::new(self.s.upstream_transport, self.s.upstream));
        // Requests from dialers go only to the configured upstream, in a dialog or not: every
        // dialog a dialer has runs through callgate to the upstream, and callgate is not a
        // relay to wherever a Request-URI or a Route header points.
        if r.side == Side::Dialer {
            if r.v.method == Method::Options
                && r.v.is_initial()
                && ruri.user.is_none()
                && edits.next.is_none()
                && self.is_us(ruri.host, ruri.port)
            {
                return Route::Local;
            }
            return Route::Forward(Forward {
                dest: upstream,
                upstream: true,
                edits,
            });
        }
        let target = match edits.next {
            Some(span) => match Uri::parse(r.msg().bytes(span)) {
                Some(u) if u.is_sip() => u,
                _ => return Route::Refuse(400, "unroutable Route header"),
            },
            None => *ruri,
        };
        if !target.is_sip() {
            return Route::Refuse(416, "cannot route this URI scheme");
        }
        if self.is_us(target.host, target.port) {
            if r.v.method == Method::Options && target.user.is_none() {
                return Route::Local;
            }
            return match self.s.inbound_target {
                Some(t) => Route::Forward(Forward {
                    dest: Dest::Peer(Peer::Udp(t)),
                    upstream: false,
                    edits,
                }),
                None => Route::Refuse(404, "no route for a request addressed to callgate"),
            };
        }
        match self.resolve(&target) {
            Ok((dest, upstream)) => Route::Forward(Forward {
                dest,
                upstream,
                edits,
            }),
            Err(why) => Route::Refuse(400, why),
        }
    }

    /// Where a URI points: a peer (and whether it is the upstream), or a host to resolve.
    fn resolve(&self, u: &Uri<'_>) -> Result<(Dest, bool), &'static str> {
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
                return Err("refusing to send to a broadcast or unspecified address");
            }
            let addr = SocketAddr::new(ip, port);
            let is_up = addr == self.s.upstream;
            let t = transport.unwrap_or(if is_up {
                self.s.upstream_transport
            } else {
                Transport::Udp
            });
            return Ok((Dest::Peer(Peer::new(t, addr)), is_up));
        }
        if host.eq_ignore_ascii_case(&self.s.upstream_host) && port == self.s.upstream.port() {
            let up = Peer::new(self.s.upstream_transport, self.s.upstream);
            return Ok((Dest::Peer(up), true));
        }
        if host.is_empty() {
            return Err("no host to route to");
        }
        let dest = Dest::Resolve {
            host: host.to_string(),
            port,
            transport: transport.unwrap_or(Transport::Udp),
        };
        Ok((dest, false))
    }

    pub(super) fn is_us(&self, host: &[u8], port: Option<u16>) -> bool {
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
    pub(super) fn our_routes(&self, msg: &Message) -> RouteEdits {
        let mut edits = RouteEdits::default();
        for h in msg.headers.iter().filter(|h| h.name == HeaderName::Route) {
            let mut values = CommaSplit::new(&msg.buf, h.value).peekable();
            let mut ours = OursIn::Nothing;
            while let Some(v) = values.next() {
                let uri = name_addr_uri(msg.bytes(v));
                let is_ours =
                    Uri::parse(uri).is_some_and(|u| u.is_sip() && self.is_us(u.host, u.port));
                if !is_ours {
                    let s = uri.as_ptr() as usize - msg.buf.as_ptr() as usize;
                    edits.next = Some(Span::new(s, s + uri.len()));
                    break;
                }
                ours = match values.peek() {
                    Some(n) => OursIn::UpTo(n.start),
                    None => OursIn::WholeLine,
                };
            }
            match ours {
                OursIn::WholeLine => edits.push(h.line),
                OursIn::UpTo(next_start) => edits.push(Span {
                    start: h.value.start,
                    end: next_start,
                }),
                OursIn::Nothing => {}
            }
            if edits.next.is_some() {
                break;
            }
        }
        edits
    }
}

fn deliverable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_broadcast() || v4.is_unspecified() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Where a response goes: the next Via's `received`/`rport` or sent-by (section 18.2.2).
pub(super) fn response_dest(msg: &Message, via: &Via) -> Option<Dest> {
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
