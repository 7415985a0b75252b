//! The decision record of a new call, handed to the audit writer (which serializes, chains and
//! writes it off the SIP thread).

use crate::audit::{AuditEvent, AuditSink};
use crate::policy::Decision;
use crate::sip::gate::NewCall;
use crate::sip::parse::{HeaderName, Span};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What happened to the call besides the decision itself.
pub(super) struct Outcome {
    /// The URI the called number was taken from.
    pub(super) called_span: Span,
    pub(super) seq: u64,
    pub(super) ts: DateTime<Utc>,
    pub(super) latency: Duration,
    /// The status callgate answered with; `None` when forwarded.
    pub(super) sip_status: Option<u16>,
}

pub(super) fn submit(audit: &AuditSink, call: &NewCall<'_>, decision: Decision, o: Outcome) {
    let msg = call.req.msg;
    let slice = |h: HeaderName| msg.header(h).map(|h| msg.buf.slice(h.value.range()));
    audit.submit(AuditEvent {
        seq: o.seq,
        instance: audit.instance_arc(),
        ts: o.ts,
        call_id: slice(HeaderName::CallId).unwrap_or_default(),
        source: call.src.addr(),
        transport: call.src.transport().lower(),
        source_cert: call.cert_names.clone(),
        from: slice(HeaderName::From).unwrap_or_default(),
        pai: slice(HeaderName::PAssertedIdentity),
        called_raw: msg.buf.slice(o.called_span.range()),
        decision,
        sip_status: o.sip_status,
        latency_us: o.latency.as_micros().min(u32::MAX as u128) as u32,
    });
}
