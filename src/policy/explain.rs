//! A decision told in full: every check evaluated with its outcome and source, the place and
//! local time that bound it, the consent record used, and the versions of the data behind it.
//! What a compliance officer needs to answer "why was this call blocked (or allowed)?". The
//! audit record, `/v1/check` and `callgate check` all use these views.

use super::{Check, Decision, Outcome};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use std::fmt;

fn outcome(o: Outcome) -> (&'static str, Option<&'static str>) {
    match o {
        Outcome::Pass => ("pass", None),
        Outcome::Block(r) => ("block", Some(r.code())),
        Outcome::Exempt => ("exempt_by_consent", None),
        Outcome::Pending => ("entry_not_yet_effective", None),
        Outcome::OutOfScope => ("other_state", None),
        Outcome::FailOpen(r) => ("fail_open", Some(r.code())),
        Outcome::NotCounted => ("not_counted", None),
    }
}

/// A check's name: the rule id, `list:<id>`, or the built-in check's name.
struct Name<'a>(&'a Decision, Check);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        match self.1 {
            Check::Rule(i) => f.write_str(&d.rules.rules[i as usize].id),
            Check::List(i) => write!(f, "list:{}", d.lists.lists[i as usize].meta.id),
            Check::OptOuts => f.write_str("optouts"),
            Check::Campaign => f.write_str("campaign"),
            Check::CallerId => f.write_str("caller_id"),
            Check::Abandonment => f.write_str("abandonment"),
            Check::Emergency => f.write_str("state_of_emergency"),
            Check::Location => f.write_str("data"),
            Check::Reassigned => f.write_str("reassigned_numbers"),
        }
    }
}

/// Each evaluated check, in evaluation order, with its kind, source and outcome.
pub fn checks(d: &Decision) -> Vec<Value> {
    d.trace
        .iter()
        .map(|(c, o)| {
            let mut v = match c {
                Check::Rule(i) => {
                    let r = &d.rules.rules[i as usize];
                    json!({"kind": r.kind.name(), "source": r.source, "confidence": r.confidence})
                }
                Check::List(i) => {
                    let l = &d.lists.lists[i as usize].meta;
                    json!({"kind": "list", "list_kind": l.kind, "version": l.version()})
                }
                Check::OptOuts => json!({"kind": "list", "version": d.optouts_seq}),
                Check::Campaign => json!({"kind": "context"}),
                Check::CallerId => {
                    json!({"kind": "caller_id", "source": "47 CFR 64.1601(e); 16 CFR 310.4(a)(8)"})
                }
                Check::Abandonment => {
                    json!({"kind": "abandonment", "source": "16 CFR 310.4(b)(4); 47 CFR 64.1200(a)(7)"})
                }
                Check::Emergency => {
                    json!({"kind": "emergency", "source": "La. R.S. 45:844.31 (operator switch)"})
                }
                Check::Location => json!({"kind": "data"}),
                Check::Reassigned => json!({"kind": "rnd", "source": "47 CFR 64.1200(m)"}),
            };
            let (out, reason) = outcome(o);
            v["check"] = json!(Name(d, c).to_string());
            v["outcome"] = json!(out);
            if let Some(r) = reason {
                v["reason"] = json!(r);
            }
            v
        })
        .collect()
}

/// The context, place and versions of a decision, serialized straight from it (the audit
/// writer does this once per call): campaign, call type, caller ID, states, zones, binding zone
/// and local time, line type, Retry-After, the consent record used, data versions. Fields
/// without a value are left out.
pub struct Context<'a>(pub &'a Decision);

/// As a JSON value (the admin API and the CLI).
pub fn context(d: &Decision) -> Value {
    serde_json::to_value(Context(d)).unwrap_or(Value::Null)
}

impl Serialize for Context<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut m = s.serialize_map(None)?;
        if let Some(c) = &d.context {
            m.serialize_entry("campaign", &*c.campaign.id)?;
            if let Some(seller) = &c.campaign.seller {
                m.serialize_entry("seller", seller)?;
            }
            // What a call record holds of the campaign, for one rebuilt after a crash.
            m.serialize_entry("subject", &c.campaign.subject)?;
            m.serialize_entry("audience", c.campaign.audience.as_str())?;
            if let Some(script) = &c.campaign.script {
                m.serialize_entry("script", script)?;
            }
            m.serialize_entry("purpose", c.purpose.as_str())?;
            m.serialize_entry("method", c.method.as_str())?;
            m.serialize_entry("caller_id", &c.caller_id.describe())?;
            m.serialize_entry("shadow", &c.campaign.shadow)?;
        }
        // Said where it is not the default: a US number's records stay as they were.
        if let Some(c) = d
            .place
            .country
            .filter(|c| *c != crate::number::geo::Country::US)
        {
            m.serialize_entry("country", &c)?;
            // The policy the call was judged by, and how sure its source is.
            if let Some(p) = d.rules.country(c) {
                let policy =
                    json!({"name": p.name, "source": p.source, "confidence": p.confidence});
                m.serialize_entry("country_policy", &policy)?;
            }
        }
        if let Some(st) = d.place.npa_state {
            m.serialize_entry("npa_state", &st)?;
        }
        if let Some(st) = d.place.address_state {
            m.serialize_entry("address_state", &st)?;
        }
        m.serialize_entry("zones", &d.place.zones)?;
        if let Some((z, t)) = d.place.binding {
            m.serialize_entry("binding_zone", &z)?;
            m.serialize_entry("local_time", &format_args!("{}", LocalTime(&t)))?;
        }
        if let Some(w) = d.wireless {
            m.serialize_entry("wireless", &w)?;
        }
        if let Some(r) = d.retry_after {
            m.serialize_entry("retry_after_secs", &r)?;
        }
        if let Some(c) = &d.consent {
            m.serialize_entry("consent_used", &ConsentUsed::of(c, d))?;
        }
        if let Some(a) = &d.rnd_used {
            m.serialize_entry("rnd_used", &RndUsed::of(a))?;
        }
        m.serialize_entry("versions", &Versions::of(d))?;
        m.end()
    }
}

// The record's nested objects, written straight from the decision (the audit writer does this
// for every call). Fields in name order: the order these objects have had in every record.

#[derive(Serialize)]
struct ConsentUsed<'a> {
    campaign: &'a Option<String>,
    captured: chrono::NaiveDate,
    evidence: &'a Option<String>,
    expires: Option<chrono::NaiveDate>,
    seller: &'a Option<String>,
    seq: u64,
    #[serde(rename = "type")]
    kind: super::rules::ConsentKind,
}

#[derive(Serialize)]
struct RndUsed<'a> {
    answer: Option<super::consent::RndAnswer>,
    asked_about: chrono::NaiveDate,
    evidence: &'a Option<String>,
    queried: Option<chrono::NaiveDate>,
    seq: u64,
}

#[derive(Serialize)]
struct Versions<'a> {
    consent_seq: u64,
    holiday_years: &'a [i32],
    list_generation: u64,
    optouts_seq: u64,
    rules: &'a str,
}

impl<'a> ConsentUsed<'a> {
    fn of(c: &'a super::consent::ConsentRecord, d: &Decision) -> Self {
        ConsentUsed {
            campaign: &c.campaign,
            captured: c.captured,
            evidence: &c.evidence,
            expires: c.expiry(&d.rules.consent),
            seller: &c.seller,
            seq: c.seq,
            kind: c.kind,
        }
    }
}

impl<'a> RndUsed<'a> {
    fn of(a: &'a super::consent::ConsentRecord) -> Self {
        RndUsed {
            answer: a.rnd.map(|r| r.answer),
            asked_about: a.captured,
            evidence: &a.evidence,
            queried: a.rnd.map(|r| r.queried),
            seq: a.seq,
        }
    }
}

impl<'a> Versions<'a> {
    fn of(d: &'a Decision) -> Self {
        Versions {
            consent_seq: d.consent_seq,
            holiday_years: d.rules.calendar.years(),
            list_generation: d.lists.generation,
            optouts_seq: d.optouts_seq,
            rules: &d.rules.version,
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, without parsing a format string per record.
struct LocalTime<'a>(&'a chrono::NaiveDateTime);

impl fmt::Display for LocalTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// The audit record's compact list of checks: `id=outcome[:reason]`.
pub(crate) struct AuditChecks<'a>(pub &'a Decision);

impl Serialize for AuditChecks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct One<'a>(&'a Decision, Check, Outcome);
        impl fmt::Display for One<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (out, reason) = outcome(self.2);
                write!(f, "{}={out}", Name(self.0, self.1))?;
                if let Some(r) = reason {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
        }
        let mut seq = s.serialize_seq(None)?;
        for (c, o) in self.0.trace.iter() {
            seq.serialize_element(&format_args!("{}", One(self.0, c, o)))?;
        }
        seq.end()
    }
}
