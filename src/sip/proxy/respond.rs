//! The answers callgate gives itself: to requests it cannot or will not forward (400, 403,
//! 416, 420, 483, 503), to OPTIONS pings, and the gate's rejection of a new call.

use super::{Proxy, Req};
use crate::sip::edit::{build_response, ExtraHeader};
use crate::sip::gate::Rejection;
use crate::sip::metrics::Direction;
use crate::sip::parse::{HeaderName, Message, Method, ParseError, ValidRequest};
use crate::sip::peer::{Dest, Outgoing, Peer, Side};
use crate::sip::uri::{Scheme, Uri};
use bytes::Bytes;

const ALLOW: &[u8] =
    b"INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE";

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
    pub(super) fn send_local(
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
            after_record: None,
        });
    }

    /// Answer `req` with `status` and extra header lines.
    pub(super) fn respond(
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
    pub(super) fn respond_warning(
        &self,
        req: &Message,
        status: u16,
        why: &str,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        let w = format!("399 {} \"{why}\"", self.s.advertise_host);
        let warning = ExtraHeader {
            name: "Warning",
            value: w.as_bytes(),
        };
        self.respond(req, status, src, &[warning], out);
    }

    /// A request refused with a bare status (an ACK is never answered: dropped).
    pub(super) fn refuse(
        &self,
        v: &ValidRequest<'_>,
        status: u16,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        if v.method == Method::Ack {
            return self.metrics.dropped("invalid_ack");
        }
        self.respond(v.msg, status, src, &[], out)
    }

    /// A request from a source that may not send (within the stranger budget): 403.
    pub(super) fn refuse_stranger(
        &self,
        msg: &Message,
        method: Method,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        self.metrics.unauthorized.inc();
        if method != Method::Ack && msg.header(HeaderName::Via).is_some() {
            self.respond(msg, 403, src, &[], out);
        }
    }

    /// A message that does not parse: a request still earns a response if its headers can
    /// be found; anything else is dropped and counted.
    pub(super) fn on_unparseable(
        &self,
        buf: Bytes,
        e: ParseError,
        src: Peer,
        side: Option<Side>,
        out: &mut Vec<Outgoing>,
    ) {
        self.metrics.parse_errors.with_label_values(&[e.kind]).inc();
        if let (Some(status), Some(_)) = (e.status, side) {
            if let Ok(m) = Message::parse_lenient(buf) {
                if m.is_request()
                    && m.method() != Some(Method::Ack)
                    && m.header(HeaderName::Via).is_some()
                    && m.header(HeaderName::CSeq).is_some()
                {
                    return self.respond_warning(&m, status, e.detail, src, out);
                }
            }
        }
        self.metrics.dropped("unparseable");
    }

    /// A request that parses but fails validation.
    pub(super) fn on_invalid(
        &self,
        msg: &Message,
        method: Method,
        e: ParseError,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) {
        self.metrics.parse_errors.with_label_values(&[e.kind]).inc();
        // Via is copied verbatim and the answer goes to the source address, so even a
        // request with an unparseable Via can be told why it was refused.
        match e.status {
            Some(status) if method != Method::Ack && msg.header(HeaderName::Via).is_some() => {
                self.respond_warning(msg, status, e.detail, src, out)
            }
            _ => self.metrics.dropped("invalid"),
        }
    }

    /// The Request-URI, when callgate can act on it; else the request is refused.
    pub(super) fn usable_request_uri<'m>(
        &self,
        v: &ValidRequest<'m>,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) -> Option<Uri<'m>> {
        let refused = match Uri::parse(v.msg.bytes(v.uri)) {
            None => 400,
            Some(u) if u.scheme == Scheme::Other => 416,
            Some(u) if u.is_sip() && u.headers.is_some() => 400,
            Some(u) => return Some(u),
        };
        self.refuse(v, refused, src, out);
        None
    }

    /// A Proxy-Require names an extension callgate does not support (all of them): 420.
    pub(super) fn refused_extension(
        &self,
        v: &ValidRequest<'_>,
        src: Peer,
        out: &mut Vec<Outgoing>,
    ) -> bool {
        if matches!(v.method, Method::Ack | Method::Cancel) {
            return false;
        }
        let Some(h) = v.msg.header(HeaderName::ProxyRequire) else {
            return false;
        };
        self.metrics
            .parse_errors
            .with_label_values(&["bad_extension"])
            .inc();
        let unsupported = ExtraHeader {
            name: "Unsupported",
            value: v.msg.bytes(h.value),
        };
        self.respond(v.msg, 420, src, &[unsupported], out);
        true
    }

    /// An OPTIONS ping addressed to callgate itself.
    pub(super) fn answer_options(&self, r: &Req<'_>, out: &mut Vec<Outgoing>) {
        let allow = [ExtraHeader {
            name: "Allow",
            value: ALLOW,
        }];
        let resp = build_response(r.msg(), 200, "OK", Some("cgping"), &allow);
        self.send_local(r.src, r.v.method, 200, resp, out);
    }

    /// The gate's rejection as a final response, with a To tag of our own.
    pub(super) fn rejection_response(&self, r: &Req<'_>, rej: &Rejection) -> Bytes {
        let extra: Vec<ExtraHeader<'_>> = rej
            .headers
            .iter()
            .map(|(name, value)| ExtraHeader { name, value })
            .collect();
        let tag = format!("cg{:x}", r.key & 0xffff_ffff);
        build_response(r.msg(), rej.status, &rej.phrase, Some(&tag), &extra)
    }
}
