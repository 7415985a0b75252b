//! A call record as one line of the log: `{"ts": ..., "call": {...}}`, one field per item of
//! TSR 310.5(a)(2) (the README's table says which holds which).

use super::open::OpenCall;
use super::{Direction, Disposition, EndedBy};
use crate::audit::Entry;
use crate::call::{Audience, Reasons};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::sync::Arc;

/// How a call ended.
pub(crate) struct End {
    /// None when it is not known (closed at a restart).
    pub(crate) at: Option<DateTime<Utc>>,
    pub(crate) disposition: Disposition,
    pub(crate) ended_by: EndedBy,
    pub(crate) sip_status: Option<u16>,
    pub(crate) q850: Option<u16>,
    /// callgate's reasons, for a rejected call.
    pub(crate) reasons: Reasons,
}

/// A call that ended, ready for the audit writer.
pub struct CallRecord {
    pub(crate) call: OpenCall,
    pub(crate) end: End,
    pub(crate) instance: Arc<str>,
}

impl CallRecord {
    pub fn disposition(&self) -> Disposition {
        self.end.disposition
    }

    /// From the INVITE to the answer, or to the final response of an unanswered call.
    pub fn setup_ms(&self) -> Option<u64> {
        let to = self.call.answered_at.or(match self.end.sip_status {
            Some(_) => self.end.at,
            None => None,
        })?;
        Some(ms_between(self.call.invite_at, to))
    }

    /// From the answer to the end; 0 for a call never answered; None when the end is unknown.
    pub fn duration_ms(&self) -> Option<u64> {
        match (self.call.answered_at, self.end.at) {
            (Some(a), Some(e)) => Some(ms_between(a, e)),
            (None, Some(_)) => Some(0),
            (_, None) => None,
        }
    }
}

fn no_reasons(r: &Reasons) -> bool {
    r.is_empty()
}

/// Between the times as written (whole milliseconds), so that a reader's subtraction agrees.
fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b.timestamp_millis() - a.timestamp_millis()).max(0) as u64
}

pub(crate) fn utc_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The fields of a call record as written. Recovery writes the same shape from what a
/// decision line kept.
#[derive(Serialize)]
pub(crate) struct Line<'a> {
    pub(crate) decision: String,
    pub(crate) call_id: &'a str,
    pub(crate) direction: Direction,
    pub(crate) verdict: &'a str,
    pub(crate) telemarketer: Option<&'a str>,
    pub(crate) seller: Option<&'a str>,
    pub(crate) campaign: Option<&'a str>,
    pub(crate) subject: Option<&'a str>,
    pub(crate) audience: Option<Audience>,
    pub(crate) purpose: Option<&'a str>,
    pub(crate) method: Option<&'a str>,
    pub(crate) prerecorded: Option<bool>,
    pub(crate) script: Option<&'a str>,
    pub(crate) called: &'a str,
    pub(crate) caller_id: Option<String>,
    pub(crate) caller_name: Option<&'a str>,
    pub(crate) invite_at: String,
    pub(crate) ringing_at: Option<String>,
    pub(crate) answered_at: Option<String>,
    pub(crate) ended_at: Option<String>,
    pub(crate) setup_ms: Option<u64>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) disposition: Disposition,
    #[serde(skip_serializing_if = "no_reasons")]
    pub(crate) reasons: Reasons,
    pub(crate) ended_by: EndedBy,
    pub(crate) sip_status: Option<u16>,
    pub(crate) q850_cause: Option<u16>,
    pub(crate) transfer_to: Option<&'a str>,
}

#[derive(Serialize)]
struct Wrapped<'a> {
    ts: String,
    call: &'a Line<'a>,
}

pub(crate) fn write_line(out: &mut Vec<u8>, ts: DateTime<Utc>, line: &Line<'_>) {
    let _ = serde_json::to_writer(
        &mut *out,
        &Wrapped {
            ts: utc_ms(ts),
            call: line,
        },
    );
}

impl CallRecord {
    fn line(&self) -> Line<'_> {
        let (c, e) = (&self.call, &self.end);
        let campaign = c.campaign.as_deref();
        Line {
            decision: format!("{}-{}", self.instance, c.decision),
            call_id: &c.call_id,
            direction: c.direction,
            verdict: c.verdict.as_str(),
            telemarketer: Some(&c.telemarketer),
            seller: campaign.and_then(|k| k.seller.as_deref()),
            campaign: campaign.map(|k| &*k.id),
            subject: campaign.map(|k| k.subject.as_str()),
            audience: campaign.map(|k| k.audience),
            purpose: c.call_type.map(|t| t.0.as_str()),
            method: c.call_type.map(|t| t.1.as_str()),
            prerecorded: c
                .call_type
                .map(|t| t.1 == crate::call::CallMethod::Prerecorded),
            script: c
                .script
                .as_deref()
                .or(campaign.and_then(|k| k.script.as_deref())),
            called: &c.called,
            caller_id: c.caller_id.map(|n| n.to_string()),
            caller_name: c.caller_name.as_deref(),
            invite_at: utc_ms(c.invite_at),
            ringing_at: c.ringing_at.map(utc_ms),
            answered_at: c.answered_at.map(utc_ms),
            ended_at: e.at.map(utc_ms),
            setup_ms: self.setup_ms(),
            duration_ms: self.duration_ms(),
            disposition: e.disposition,
            reasons: e.reasons,
            ended_by: e.ended_by,
            sip_status: e.sip_status,
            q850_cause: e.q850,
            transfer_to: c.transfer_to.as_deref(),
        }
    }
}

impl Entry for CallRecord {
    fn ts(&self) -> DateTime<Utc> {
        self.end.at.unwrap_or(self.call.invite_at)
    }

    fn write(&self, out: &mut Vec<u8>) {
        write_line(out, self.ts(), &self.line());
    }
}
