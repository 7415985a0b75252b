//! Responses travel back down the Via path: only those that carry our Via on top are relayed,
//! without it, to where the next Via says. Responses to a forwarded new INVITE are told to the
//! gate (ringing, answered, failed).

use super::rewrite::strip_top_via;
use super::routing::response_dest;
use super::{Proxy, OUR_BRANCH_PREFIX};
use crate::sip::metrics::Direction;
use crate::sip::parse::{HeaderName, Message, Method, Via};
use crate::sip::peer::{Outgoing, Side};

impl Proxy {
    pub(super) fn on_response(
        &self,
        msg: &Message,
        code: u16,
        side: Option<Side>,
        received: std::time::Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let method = msg.cseq().map(|c| c.1).unwrap_or(Method::Other);
        self.metrics.count_sip(Direction::In, method, Some(code));
        let Some(side) = side else {
            self.metrics.unauthorized.inc();
            return self.metrics.dropped("unauthorized_response");
        };
        let (Some(via_hdr), mut vias) = (msg.header(HeaderName::Via), msg.vias()) else {
            return self.metrics.dropped("no_via");
        };
        let (Some(top), second) = (vias.next(), vias.next()) else {
            return self.metrics.dropped("no_via");
        };
        // Our Via: its branch carries the transaction's id in hex after our prefix.
        let our_branch = Via::parse(&msg.buf, top)
            .filter(|v| self.is_us(msg.bytes(v.host), v.port))
            .and_then(|v| v.branch)
            .and_then(|b| msg.bytes(b).strip_prefix(OUR_BRANCH_PREFIX));
        let Some(our_branch) = our_branch else {
            return self.metrics.dropped("via_not_ours");
        };
        let Some(next) = second.and_then(|s| Via::parse(&msg.buf, s)) else {
            return self.metrics.dropped("no_via");
        };
        if method == Method::Invite && code == 100 && self.s.send_100 {
            // We already sent our own 100 (section 16.7 step 5: 100s are not forwarded).
            return self.metrics.dropped("100_absorbed");
        }
        let Some(dest) = response_dest(msg, &next) else {
            return self.metrics.dropped("bad_destination");
        };
        if method == Method::Invite && code >= 200 {
            self.invite_answered_finally(our_branch);
        }
        let news = self.calls.on_response(msg, method, code, side);
        self.tell_of(news, msg, received);
        let data = strip_top_via(msg, via_hdr, top, next.value.start);
        self.metrics.count_sip(Direction::Out, method, Some(code));
        out.push(Outgoing {
            dest,
            data,
            to_upstream: false,
            after_record: None,
        });
    }

    /// A final response to an INVITE ends what a drain waits for.
    fn invite_answered_finally(&self, our_branch: &[u8]) {
        let id = std::str::from_utf8(our_branch)
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        if let Some(id) = id {
            self.txns.invite_answered(id);
        }
    }
}
