//! The decision record of a new call, handed to the audit writer (which serializes, chains and
//! writes it off the SIP thread), and what its call record starts from.

use super::Rules;
use crate::audit::{AuditEvent, Numbered};
use crate::call::Reasons;
use crate::number::Called;
use crate::policy::context::CallerId;
use crate::policy::Decision;
use crate::records::{Direction, Disposition, End, EndedBy, OpenCall, Telemarketer};
use crate::sip::gate::NewCall;
use crate::sip::parse::{HeaderName, Span};
use crate::sip::peer::Side;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What happened to the call besides the decision itself.
pub(super) struct Outcome {
    pub(super) seq: u64,
    pub(super) ts: DateTime<Utc>,
    pub(super) latency: Duration,
    /// The status callgate answered with; `None` when forwarded.
    pub(super) sip_status: Option<u16>,
    /// Why a call the policy allowed was not forwarded (`records_unwritable`).
    pub(super) refused: Option<&'static str>,
}

/// What the decision record takes from the INVITE, kept apart from it so a call decided
/// later (a shared frequency-cap count) is recorded once its answer comes.
pub(super) struct Heard {
    call_id: bytes::Bytes,
    source: std::net::SocketAddr,
    transport: &'static str,
    source_cert: Option<Arc<[String]>>,
    from: bytes::Bytes,
    pai: Option<bytes::Bytes>,
    called_raw: bytes::Bytes,
}

pub(super) fn heard(call: &NewCall<'_>, called_span: Span) -> Heard {
    let msg = call.req.msg;
    let slice = |h: HeaderName| msg.header(h).map(|h| msg.buf.slice(h.value.range()));
    Heard {
        call_id: slice(HeaderName::CallId).unwrap_or_default(),
        source: call.src.addr(),
        transport: call.src.transport().lower(),
        source_cert: call.cert_names.clone(),
        from: slice(HeaderName::From).unwrap_or_default(),
        pai: slice(HeaderName::PAssertedIdentity),
        called_raw: msg.buf.slice(called_span.range()),
    }
}

pub(super) fn submit(numbered: Numbered<'_>, heard: Heard, decision: Decision, o: Outcome) {
    let instance = numbered.instance_arc();
    numbered.submit(AuditEvent {
        seq: o.seq,
        instance,
        ts: o.ts,
        call_id: heard.call_id,
        source: heard.source,
        transport: heard.transport,
        source_cert: heard.source_cert,
        from: heard.from,
        pai: heard.pai,
        called_raw: heard.called_raw,
        decision,
        sip_status: o.sip_status,
        refused: o.refused,
        latency_us: o.latency.as_micros().min(u32::MAX as u128) as u32,
    });
}

/// Who each dialer is recorded as (`[dialers.names]`): the TSR's "telemarketer".
#[derive(Clone, Default)]
pub struct Telemarketers(Arc<[(IpNet, Arc<str>)]>);

impl Telemarketers {
    pub fn new(names: &BTreeMap<String, Vec<IpNet>>) -> Telemarketers {
        let mut v: Vec<(IpNet, Arc<str>)> = names
            .iter()
            .flat_map(|(name, nets)| {
                let name: Arc<str> = name.as_str().into();
                nets.iter().map(move |n| (*n, name.clone()))
            })
            .collect();
        // The most specific network names a source.
        v.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        Telemarketers(v.into())
    }

    /// The configured name, else the TLS certificate's, else the address.
    fn of(&self, call: &NewCall<'_>) -> Telemarketer {
        let ip = call.src.ip();
        if let Some((_, name)) = self.0.iter().find(|(n, _)| n.contains(&ip)) {
            return Telemarketer::Named(name.clone());
        }
        match &call.cert_names {
            Some(names) if !names.is_empty() => Telemarketer::Certificate(names.clone()),
            _ => Telemarketer::Address(ip),
        }
    }
}

/// What the call record of a new call will say, as far as the INVITE and decision tell.
/// Its decision's sequence number and verdict are set when the decision is final.
pub(super) fn open_call(
    call: &NewCall<'_>,
    d: &Decision,
    ts: DateTime<Utc>,
    rules: &Rules,
) -> OpenCall {
    let msg = call.req.msg;
    let ctx = d.context.as_ref();
    let called = match (&d.called, d.number()) {
        (_, Some(n)) => n.to_string().into_boxed_str(),
        (Ok(Called::Service(s)), None) => s.as_str().into(),
        _ => super::extract::field(msg.bytes(call.req.uri)),
    };
    OpenCall {
        decision: 0,
        call_id: super::extract::field(msg.call_id()),
        direction: match call.side {
            Side::Dialer => Direction::Outbound,
            Side::Upstream => Direction::Inbound,
        },
        verdict: d.verdict,
        telemarketer: rules.telemarketers.of(call),
        campaign: ctx.map(|c| c.campaign.clone()),
        call_type: ctx.map(|c| (c.purpose, c.method)),
        script: super::extract::script(msg, &rules.calls),
        called,
        caller_id: match ctx.map(|c| c.caller_id) {
            Some(CallerId::Number(n)) => Some(n),
            _ => None,
        },
        caller_name: super::extract::caller_name(msg),
        invite_at: ts,
        ringing_at: None,
        answered_at: None,
        cancelled: None,
        refer_to: None,
        transfer_to: None,
        transfer_by: None,
    }
}

/// The end of a call callgate rejected.
pub(super) fn rejected(status: u16, reasons: Reasons, ts: DateTime<Utc>) -> End {
    End {
        at: Some(ts),
        disposition: Disposition::Rejected,
        ended_by: EndedBy::Callgate,
        sip_status: Some(status),
        q850: None,
        reasons,
    }
}
