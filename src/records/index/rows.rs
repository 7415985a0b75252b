//! What the index keeps of one log line: the columns people search by, nothing else (the
//! record itself is read back from the log).

use serde::Deserialize;
use std::borrow::Cow;

use crate::audit::summary::{self as summary};
pub use crate::audit::summary::{DecisionId, Kind, Summary};

/// The fields of any line the index reads; everything else is passed over unparsed.
#[derive(Deserialize)]
struct AnyLine<'a> {
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    called_e164: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasons: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    policy: Option<Policy<'a>>,
    #[serde(borrow)]
    call: Option<CallPart<'a>>,
    admin: Option<AdminPart>,
}

#[derive(Deserialize)]
struct Policy<'a> {
    #[serde(borrow)]
    campaign: Option<Cow<'a, str>>,
    #[serde(borrow)]
    consent_used: Option<ConsentUsed<'a>>,
}

#[derive(Deserialize)]
struct ConsentUsed<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct CallPart<'a> {
    #[serde(borrow)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow)]
    campaign: Option<Cow<'a, str>>,
    #[serde(borrow)]
    called: Option<Cow<'a, str>>,
    #[serde(borrow)]
    invite_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    disposition: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasons: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AdminPart {
    action: String,
    who: String,
    #[serde(default)]
    detail: serde_json::Value,
}

fn text(s: Option<Cow<'_, str>>) -> Option<summary::Text> {
    s.map(|s| Cow::Owned(s.into_owned()))
}

fn millis(t: Option<&str>) -> Option<i64> {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
}

fn joined(reasons: &[Cow<'_, str>]) -> Option<summary::Text> {
    summary::joined(reasons.iter().map(|r| r.as_ref()))
}

fn decision(id: Option<Cow<'_, str>>) -> Option<DecisionId> {
    id.map(|id| DecisionId::Whole(id.into_owned()))
}

/// The summary of one line (without its newline), as the writer gave it when it wrote the
/// line; None for a seal or what is not a record.
pub(crate) fn summary_of(line: &[u8]) -> Option<Summary> {
    let l: AnyLine = serde_json::from_slice(line).ok()?;
    if let Some(c) = l.call {
        let at = millis(c.invite_at.as_deref()).or_else(|| millis(l.ts.as_deref()));
        return Some(Summary {
            number: c.called.as_deref().map_or(0, summary::digits),
            ts_ms: at,
            campaign: c.campaign.map(|c| c.as_ref().into()),
            verdict: text(c.verdict),
            reasons: joined(&c.reasons),
            disposition: text(c.disposition),
            call_key: c.call_id.as_deref().map(summary::call_key),
            decision: decision(c.decision),
            ..Summary::new(Kind::Call)
        });
    }
    if let Some(a) = l.admin {
        let ts = millis(l.ts.as_deref());
        return Some(summary::admin(ts, &a.action, &a.who, &a.detail));
    }
    let verdict = l.verdict?;
    let (campaign, consent) = match l.policy {
        Some(p) => (p.campaign, p.consent_used.map(|c| c.kind)),
        None => (None, None),
    };
    Some(Summary {
        number: l.called_e164.as_deref().map_or(0, summary::digits),
        ts_ms: millis(l.ts.as_deref()),
        campaign: campaign.map(|c| c.as_ref().into()),
        consent: text(consent),
        verdict: Some(Cow::Owned(verdict.into_owned())),
        reasons: joined(&l.reasons),
        call_key: l.call_id.as_deref().map(summary::call_key),
        decision: decision(l.id),
        ..Summary::new(Kind::Decision)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_indexed_by_its_number_campaign_and_verdict() {
        let line = br#"{"id":"abc-7","ts":"2026-12-06T19:00:00.154Z","call_id":"1@h","called_e164":"+14155550100","verdict":"blocked","reasons":["national_dnc","state_hours"],"policy":{"campaign":"spring","caller_id":"+1"},"prev":"00"}"#;
        let r = summary_of(line).unwrap();
        assert_eq!(r.kind, Kind::Decision);
        assert_eq!(r.number, 14155550100);
        assert_eq!(r.campaign.as_deref(), Some("spring"));
        assert_eq!(r.reasons.as_deref(), Some("national_dnc state_hours"));
        assert_eq!(r.decision, Some(DecisionId::Whole("abc-7".into())));
    }

    #[test]
    fn a_decision_names_the_type_of_consent_that_exempted_it() {
        let line = br#"{"id":"abc-8","ts":"2026-12-06T19:00:00.154Z","call_id":"2@h","called_e164":"+14155550100","verdict":"allowed","policy":{"campaign":"spring","consent_used":{"seq":3,"type":"ebr_purchase"}},"prev":"00"}"#;
        let r = summary_of(line).unwrap();
        assert_eq!(r.consent.as_deref(), Some("ebr_purchase"));
    }

    #[test]
    fn a_batch_of_consents_gives_one_row_per_number() {
        let line = br#"{"ts":"2026-12-06T19:00:00.000Z","admin":{"action":"consent_add","who":"token","detail":{"consents":[{"number":"+14155550101"},{"number":"+14155550100"},{"number":"+14155550101"}]}},"prev":"00"}"#;
        let r = summary_of(line).unwrap();
        assert_eq!(r.kind, Kind::Admin);
        assert_eq!((r.number, r.more), (14155550100, vec![14155550101]));
    }

    #[test]
    fn a_seal_is_not_a_record() {
        assert!(summary_of(br#"{"seal":{"file":"a","next":"b","ts":"t"},"prev":"00"}"#).is_none());
    }
}
