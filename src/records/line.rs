//! A call record as one line of the log: `{"ts": ..., "call": {...}}`, one field per item of
//! TSR 310.5(a)(2) (the table in docs/compliance/call-records.md says which holds which).

use super::open::OpenCall;
use super::{Direction, Disposition, EndedBy};
use crate::audit::summary::{self, DecisionId, Kind, Summary};
use crate::audit::Entry;
use crate::call::{Audience, Reasons};
use crate::number::E164;
use crate::policy::context::CallerIdGrant;
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::io::Write;
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
        if self.end.disposition == Disposition::Unknown {
            return None;
        }
        match (self.call.answered_at, self.end.at) {
            (Some(a), Some(e)) => Some(ms_between(a, e)),
            (None, Some(_)) => Some(0),
            (_, None) => None,
        }
    }
}

/// Between the times as written (whole milliseconds), so that a reader's subtraction agrees.
fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> u64 {
    (b.timestamp_millis() - a.timestamp_millis()).max(0) as u64
}

/// The fields of a call record as written. Recovery writes the same shape from what a
/// decision line kept.
pub(crate) struct Line<'a> {
    pub(crate) decision: Decision<'a>,
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
    pub(crate) script: Option<&'a str>,
    pub(crate) called: &'a str,
    pub(crate) caller_id: Option<E164>,
    pub(crate) caller_name: Option<&'a str>,
    /// The campaign's grant of the caller ID presented, when it lists one.
    pub(crate) caller_id_grant: Option<&'a CallerIdGrant>,
    pub(crate) invite_at: Option<DateTime<Utc>>,
    pub(crate) ringing_at: Option<DateTime<Utc>>,
    pub(crate) answered_at: Option<DateTime<Utc>>,
    pub(crate) ended_at: Option<DateTime<Utc>>,
    pub(crate) setup_ms: Option<u64>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) disposition: Disposition,
    pub(crate) reasons: Reasons,
    pub(crate) ended_by: EndedBy,
    pub(crate) sip_status: Option<u16>,
    pub(crate) q850_cause: Option<u16>,
    pub(crate) transfer_to: Option<&'a str>,
    /// `dialer` or `carrier`: whose REFER was accepted.
    pub(crate) transfer_by: Option<&'static str>,
}

/// The decision record's id: `instance-seq` as written, or as read back.
pub(crate) enum Decision<'a> {
    Parts(&'a str, u64),
    Id(&'a str),
}

/// One JSON object written field by field: the writer thread serializes a call record per
/// call, and serde's generic path cost three times this (measured with callgrind).
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Obj<'_> {
    fn key(&mut self, k: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A token known to need no escaping (an enum's name).
    fn token(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push(b'"');
        self.out.extend_from_slice(v.as_bytes());
        self.out.push(b'"');
    }

    fn str(&mut self, k: &str, v: Option<&str>) {
        self.key(k);
        match v {
            Some(v) => {
                let _ = serde_json::to_writer(&mut *self.out, v);
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn num(&mut self, k: &str, v: Option<u64>) {
        self.key(k);
        match v {
            Some(v) => {
                let _ = write!(self.out, "{v}");
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn time(&mut self, k: &str, v: Option<DateTime<Utc>>) {
        self.key(k);
        match v {
            Some(t) => {
                self.out.push(b'"');
                crate::clock::utc_ms(t, self.out);
                self.out.push(b'"');
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }
}

/// A call record's line, told by its first bytes as `Line::write` lays them out (the time,
/// then the call object), without parsing it: what a scan or the index reads.
pub(crate) fn is_call_line(line: &[u8]) -> bool {
    const CALL: &[u8] = b",\"call\":{";
    line.starts_with(b"{\"ts\":")
        && line[..line.len().min(64)]
            .windows(CALL.len())
            .any(|w| w == CALL)
}

impl Line<'_> {
    /// What the line written at `ts` is about (what the index reads back from it).
    pub(crate) fn summary(&self, ts: DateTime<Utc>) -> Summary {
        let decision = match self.decision {
            Decision::Parts(instance, seq) => DecisionId::Parts(instance.into(), seq),
            Decision::Id(id) => DecisionId::Whole(id.to_string()),
        };
        Summary {
            number: summary::digits(self.called),
            ts_ms: Some(summary::call_time(self.invite_at, ts)),
            campaign: self.campaign.map(Into::into),
            verdict: Some(Cow::Owned(self.verdict.to_string())),
            reasons: summary::reasons(self.reasons),
            disposition: Some(Cow::Borrowed(self.disposition.as_str())),
            call_key: Some(summary::call_key(self.call_id)),
            decision: Some(decision),
            ..Summary::new(Kind::Call)
        }
    }

    /// `{"ts":...,"call":{...}}`, no newline (the chain link is added after it).
    pub(crate) fn write(&self, out: &mut Vec<u8>, ts: DateTime<Utc>) {
        out.push(b'{');
        let mut top = Obj { out, first: true };
        top.time("ts", Some(ts));
        top.key("call");
        out.push(b'{');
        let mut o = Obj { out, first: true };
        o.key("decision");
        match self.decision {
            Decision::Parts(instance, seq) => {
                let _ = write!(o.out, "\"{instance}-{seq}\"");
            }
            Decision::Id(id) => {
                let _ = serde_json::to_writer(&mut *o.out, id);
            }
        }
        o.str("call_id", Some(self.call_id));
        o.token("direction", self.direction.as_str());
        o.token("verdict", self.verdict);
        o.str("telemarketer", self.telemarketer);
        o.str("seller", self.seller);
        o.str("campaign", self.campaign);
        o.str("subject", self.subject);
        o.str("audience", self.audience.map(Audience::as_str));
        o.str("purpose", self.purpose);
        o.str("method", self.method);
        o.key("prerecorded");
        // The TSR item "whether a prerecorded message was used", as its own field.
        let prerecorded = self
            .method
            .map(|m| m == crate::call::CallMethod::Prerecorded.as_str());
        o.out.extend_from_slice(match prerecorded {
            Some(true) => b"true",
            Some(false) => b"false",
            None => b"null",
        });
        o.str("script", self.script);
        o.str("called", Some(self.called));
        o.key("caller_id");
        match self.caller_id {
            Some(n) => {
                let _ = write!(o.out, "\"{n}\"");
            }
            None => o.out.extend_from_slice(b"null"),
        }
        o.str("caller_name", self.caller_name);
        let g = self.caller_id_grant;
        o.str("caller_id_evidence", g.and_then(|g| g.evidence.as_deref()));
        let day = |d: Option<chrono::NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
        o.str(
            "caller_id_authorized_from",
            day(g.and_then(|g| g.from)).as_deref(),
        );
        o.str(
            "caller_id_authorized_to",
            day(g.and_then(|g| g.to)).as_deref(),
        );
        o.time("invite_at", self.invite_at);
        o.time("ringing_at", self.ringing_at);
        o.time("answered_at", self.answered_at);
        o.time("ended_at", self.ended_at);
        o.num("setup_ms", self.setup_ms);
        o.num("duration_ms", self.duration_ms);
        o.token("disposition", self.disposition.as_str());
        if !self.reasons.is_empty() {
            o.key("reasons");
            let _ = serde_json::to_writer(&mut *o.out, &self.reasons);
        }
        o.token("ended_by", self.ended_by.as_str());
        o.num("sip_status", self.sip_status.map(u64::from));
        o.num("q850_cause", self.q850_cause.map(u64::from));
        o.str("transfer_to", self.transfer_to);
        o.str("transfer_by", self.transfer_by);
        out.extend_from_slice(b"}}");
    }
}

impl CallRecord {
    fn line<'a>(&'a self, telemarketer: &'a str) -> Line<'a> {
        let (c, e) = (&self.call, &self.end);
        let campaign = c.campaign.as_deref();
        Line {
            decision: Decision::Parts(&self.instance, c.decision),
            call_id: &c.call_id,
            direction: c.direction,
            verdict: c.verdict.as_str(),
            telemarketer: Some(telemarketer),
            seller: campaign.and_then(|k| k.seller.as_deref()),
            campaign: campaign.map(|k| &*k.id),
            subject: campaign.map(|k| k.subject.as_str()),
            audience: campaign.map(|k| k.audience),
            purpose: c.call_type.map(|t| t.0.as_str()),
            method: c.call_type.map(|t| t.1.as_str()),
            script: c
                .script
                .as_deref()
                .or(campaign.and_then(|k| k.script.as_deref())),
            called: &c.called,
            caller_id: c.caller_id,
            caller_name: c.caller_name.as_deref(),
            caller_id_grant: match (campaign, c.caller_id) {
                (Some(k), Some(n)) => k.caller_id_grant(n),
                _ => None,
            },
            invite_at: Some(c.invite_at),
            ringing_at: c.ringing_at,
            answered_at: c.answered_at,
            ended_at: e.at,
            setup_ms: self.setup_ms(),
            duration_ms: self.duration_ms(),
            disposition: e.disposition,
            reasons: e.reasons,
            ended_by: e.ended_by,
            sip_status: e.sip_status,
            q850_cause: e.q850,
            transfer_to: c.transfer_to.as_deref(),
            transfer_by: c.transfer_by.map(|s| match s {
                crate::sip::peer::Side::Dialer => "dialer",
                crate::sip::peer::Side::Upstream => "carrier",
            }),
        }
    }
}

impl Entry for CallRecord {
    fn ts(&self) -> DateTime<Utc> {
        self.end.at.unwrap_or(self.call.invite_at)
    }

    fn write(&self, out: &mut Vec<u8>) {
        let telemarketer = self.call.telemarketer.to_string();
        self.line(&telemarketer).write(out, self.ts());
    }

    /// As `Line::summary` gives it, from the record's own fields (the writer's thread makes
    /// one per line: shared, not copied, where it can).
    fn summary(&self) -> Option<Summary> {
        let (c, e) = (&self.call, &self.end);
        Some(Summary {
            number: summary::digits(&c.called),
            ts_ms: Some(summary::call_time(Some(c.invite_at), self.ts())),
            campaign: c.campaign.as_ref().map(|k| k.id.clone()),
            verdict: Some(Cow::Borrowed(c.verdict.as_str())),
            reasons: summary::reasons(e.reasons),
            disposition: Some(Cow::Borrowed(e.disposition.as_str())),
            call_key: Some(summary::call_key(&c.call_id)),
            decision: Some(DecisionId::Parts(self.instance.clone(), c.decision)),
            ..Summary::new(Kind::Call)
        })
    }
}
