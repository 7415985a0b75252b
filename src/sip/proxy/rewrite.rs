//! The edits a forwarded message gets, applied once as splices over the received bytes: our
//! Via on top, received/rport on the sender's Via, Max-Forwards decremented, our Route entries
//! consumed, Record-Route on initial INVITEs; on a response, our Via removed. Nothing else
//! changes (the SDP body least of all).

use super::routing::Forward;
use super::{Proxy, Req};
use crate::sip::edit::Splicer;
use crate::sip::metrics::Direction;
use crate::sip::parse::{CommaSplit, Header, HeaderName, Message, Span};
use crate::sip::peer::{Outgoing, Transport};
use std::io::Write;
use std::net::IpAddr;

impl Proxy {
    /// Write the forwarded request and append it to `out`.
    pub(super) fn forward(
        &self,
        r: &Req<'_>,
        f: &Forward,
        record_route: bool,
        out: &mut Vec<Outgoing>,
    ) {
        let msg = r.msg();
        let out_transport = f.dest.transport();
        let mut s = Splicer::new(msg);
        let at = r.v.via_header.line.start as usize;
        self.insert_our_via(&mut s, at, r.key, out_transport);
        if self.s.record_route && record_route {
            self.insert_record_route(&mut s, msg, at, r.src.transport(), out_transport);
        }
        self.mark_sender_via(&mut s, r);
        decrement_max_forwards(&mut s, r, at);
        for span in f.edits.spans() {
            s.delete(span.start as usize, span.end as usize);
        }
        if !msg.has_content_length {
            let len = msg.body.len();
            s.insert(msg.headers_end as usize, |t| {
                let _ = write!(t, "Content-Length: {len}\r\n");
            });
        }
        let data = s.finish();
        self.metrics.count_sip(Direction::Out, r.v.method, None);
        out.push(Outgoing {
            dest: f.dest.clone(),
            data,
            to_upstream: f.upstream,
            after_record: None,
        });
    }

    fn insert_our_via(&self, s: &mut Splicer, at: usize, key: u64, t: Transport) {
        let (host, port, branch) = (
            &self.s.advertise_host,
            self.port_for(t),
            self.our_branch(key),
        );
        s.insert(at, |out| {
            let _ = write!(
                out,
                "Via: SIP/2.0/{} {}:{};branch=z9hG4bKcg{:016x}\r\n",
                t.as_str(),
                host,
                port,
                branch
            );
        });
    }

    /// Record-Route before the first Record-Route (or at our Via). Double Record-Route when the
    /// transport changes, so each side reaches us on its own transport (RFC 3261 section 16.6
    /// step 4; RFC 5658).
    fn insert_record_route(
        &self,
        s: &mut Splicer,
        msg: &Message,
        via_at: usize,
        in_t: Transport,
        out_t: Transport,
    ) {
        let rr_at = msg
            .headers
            .iter()
            .find(|h| h.name == HeaderName::RecordRoute)
            .map(|h| h.line.start as usize)
            .unwrap_or(via_at);
        let host = &self.s.advertise_host;
        s.insert(rr_at, |t| {
            rr_line(t, host, self.port_for(out_t), out_t);
            if in_t != out_t {
                rr_line(t, host, self.port_for(in_t), in_t);
            }
        });
    }

    /// received / rport on the sender's Via (section 18.2.1, RFC 3581). Over TCP and TLS
    /// rport is always filled in: it names the connection the responses must go back on.
    fn mark_sender_via(&self, s: &mut Splicer, r: &Req<'_>) {
        let (msg, via) = (r.msg(), &r.v.via);
        let src_ip = r.src.ip();
        let sent_by_ip = std::str::from_utf8(msg.bytes(via.host)).ok().and_then(|h| {
            h.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .ok()
        });
        let need_received = sent_by_ip != Some(src_ip) && via.received.is_none();
        let src_port = r.src.addr().port();
        match via.rport_param {
            Some(p) if via.rport == Some(None) => {
                s.replace(p.start as usize, p.end as usize, |t| {
                    let _ = write!(t, "rport={src_port}");
                })
            }
            None if r.src.transport() != Transport::Udp => s.insert(via.value.end as usize, |t| {
                let _ = write!(t, ";rport={src_port}");
            }),
            _ => {}
        }
        if need_received {
            s.insert(via.value.end as usize, |t| {
                let _ = write!(t, ";received={src_ip}");
            });
        }
    }

    /// Our port for `t` in Via and Record-Route.
    fn port_for(&self, t: Transport) -> u16 {
        match (t, self.s.advertise_tls_port) {
            (Transport::Tls, Some(p)) => p,
            _ => self.s.advertise_port,
        }
    }
}

fn decrement_max_forwards(s: &mut Splicer, r: &Req<'_>, via_at: usize) {
    match r.msg().header(HeaderName::MaxForwards) {
        Some(h) => {
            let n = r.v.max_forwards.unwrap_or(70).saturating_sub(1);
            s.replace(h.value.start as usize, h.value.end as usize, |t| {
                let _ = write!(t, "{n}");
            });
        }
        None => s.insert(via_at, |t| t.extend_from_slice(b"Max-Forwards: 70\r\n")),
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

/// A response without our Via: the whole line when it holds only ours, else our value and
/// its comma. `top` is our Via value, `next_start` where the next value begins.
pub(super) fn strip_top_via(
    msg: &Message,
    via_hdr: &Header,
    top: Span,
    next_start: u32,
) -> bytes::Bytes {
    let mut s = Splicer::new(msg);
    if CommaSplit::new(&msg.buf, via_hdr.value).nth(1).is_some() {
        s.delete(
            top.start as usize,
            (next_start as usize).min(via_hdr.value.end as usize),
        );
    } else {
        s.delete(via_hdr.line.start as usize, via_hdr.line.end as usize);
    }
    s.finish()
}
