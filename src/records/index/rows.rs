//! What the index keeps of one log line: the columns people search by, nothing else (the
//! record itself is read back from the log).

use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// The three kinds of record the index points at (seals are not indexed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The gate's decision on an INVITE.
    Decision,
    /// The call record written when the call ended (TSR 310.5(a)(2)).
    Call,
    /// A change made through the admin API or a signal: opt-outs, consent, reloads...
    Admin,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Decision, Kind::Call, Kind::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::Call => "call",
            Kind::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One row: a line names at most one number, except an admin record of several consents.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Row {
    pub(crate) number: String,
    pub(crate) ts_ms: Option<i64>,
    pub(crate) campaign: Option<String>,
    pub(crate) verdict: Option<String>,
    pub(crate) reasons: Option<String>,
    pub(crate) disposition: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) decision_id: Option<String>,
    pub(crate) instance: Option<String>,
    /// Admin records: what was done and by whom.
    pub(crate) action: Option<String>,
    pub(crate) who: Option<String>,
}

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
    detail: Value,
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

fn millis(t: Option<&str>) -> Option<i64> {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
}

fn joined(reasons: &[Cow<'_, str>]) -> Option<String> {
    (!reasons.is_empty()).then(|| reasons.join(" "))
}

/// A decision id is `<instance>-<seq>`.
fn instance_of(decision: Option<&str>) -> Option<String> {
    decision
        .and_then(|d| d.rsplit_once('-'))
        .map(|(i, _)| i.to_string())
}

/// The kind and rows of one line (without its newline); None for a seal or what is not a
/// record.
pub(crate) fn rows_of(line: &[u8]) -> Option<(Kind, Vec<Row>)> {
    let l: AnyLine = serde_json::from_slice(line).ok()?;
    if let Some(c) = l.call {
        let at = millis(c.invite_at.as_deref()).or_else(|| millis(l.ts.as_deref()));
        let row = Row {
            number: owned(c.called).unwrap_or_default(),
            ts_ms: at,
            campaign: owned(c.campaign),
            verdict: owned(c.verdict),
            reasons: joined(&c.reasons),
            disposition: owned(c.disposition),
            call_id: owned(c.call_id),
            instance: instance_of(c.decision.as_deref()),
            decision_id: owned(c.decision),
            ..Row::default()
        };
        return Some((Kind::Call, vec![row]));
    }
    if let Some(a) = l.admin {
        return Some((Kind::Admin, admin_rows(millis(l.ts.as_deref()), a)));
    }
    let verdict = l.verdict?;
    let row = Row {
        number: owned(l.called_e164).unwrap_or_default(),
        ts_ms: millis(l.ts.as_deref()),
        campaign: l.policy.and_then(|p| owned(p.campaign)),
        verdict: Some(verdict.into_owned()),
        reasons: joined(&l.reasons),
        call_id: owned(l.call_id),
        instance: instance_of(l.id.as_deref()),
        decision_id: owned(l.id),
        ..Row::default()
    };
    Some((Kind::Decision, vec![row]))
}

/// An admin record names the numbers it is about: one for an opt-out, each consent's for a
/// batch of consent records, none for a reload or a prune (one row without a number).
fn admin_rows(ts_ms: Option<i64>, a: AdminPart) -> Vec<Row> {
    let mut numbers: Vec<String> = match &a.detail {
        Value::Object(d) => match (d.get("number"), d.get("consents")) {
            (Some(Value::String(n)), _) => vec![n.clone()],
            (_, Some(Value::Array(cs))) => cs
                .iter()
                .filter_map(|c| c.get("number").and_then(Value::as_str))
                .map(str::to_string)
                .collect(),
            _ => vec![],
        },
        _ => vec![],
    };
    numbers.sort();
    numbers.dedup();
    if numbers.is_empty() {
        numbers.push(String::new());
    }
    numbers
        .into_iter()
        .map(|number| Row {
            number,
            ts_ms,
            action: Some(a.action.clone()),
            who: Some(a.who.clone()),
            ..Row::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_indexed_by_its_number_campaign_and_verdict() {
        let line = br#"{"id":"abc-7","ts":"2026-12-06T19:00:00.154Z","call_id":"1@h","called_e164":"+14155550100","verdict":"blocked","reasons":["national_dnc","state_hours"],"policy":{"campaign":"spring","caller_id":"+1"},"prev":"00"}"#;
        let (kind, rows) = rows_of(line).unwrap();
        assert_eq!(kind, Kind::Decision);
        let r = &rows[0];
        assert_eq!(r.number, "+14155550100");
        assert_eq!(r.campaign.as_deref(), Some("spring"));
        assert_eq!(r.reasons.as_deref(), Some("national_dnc state_hours"));
        assert_eq!(r.decision_id.as_deref(), Some("abc-7"));
        assert_eq!(r.instance.as_deref(), Some("abc"));
    }

    #[test]
    fn a_batch_of_consents_gives_one_row_per_number() {
        let line = br#"{"ts":"2026-12-06T19:00:00.000Z","admin":{"action":"consent_add","who":"token","detail":{"consents":[{"number":"+14155550101"},{"number":"+14155550100"},{"number":"+14155550101"}]}},"prev":"00"}"#;
        let (kind, rows) = rows_of(line).unwrap();
        assert_eq!(kind, Kind::Admin);
        let numbers: Vec<_> = rows.iter().map(|r| r.number.as_str()).collect();
        assert_eq!(numbers, ["+14155550100", "+14155550101"]);
    }

    #[test]
    fn a_seal_is_not_a_record() {
        assert!(rows_of(br#"{"seal":{"file":"a","next":"b","ts":"t"},"prev":"00"}"#).is_none());
    }
}
