//! A decision told in full: every check evaluated with its outcome and source, the place and
//! local time that bound it, the consent record used, and the versions of the data behind it.
//! What a compliance officer needs to answer "why was this call blocked (or allowed)?".

use super::{Check, Decision, Outcome};
use serde_json::{json, Value};

fn outcome(o: Outcome) -> (&'static str, Option<&'static str>) {
    match o {
        Outcome::Pass => ("pass", None),
        Outcome::Block(r) => ("block", Some(r.code())),
        Outcome::Exempt => ("exempt_by_consent", None),
        Outcome::Pending => ("entry_not_yet_effective", None),
        Outcome::OutOfScope => ("other_state", None),
        Outcome::FailOpen(r) => ("fail_open", Some(r.code())),
    }
}

/// Each evaluated check, in evaluation order.
pub fn checks(d: &Decision) -> Vec<Value> {
    d.trace
        .iter()
        .map(|(c, o)| {
            let (out, reason) = outcome(o);
            let mut v = match c {
                Check::Rule(i) => {
                    let r = &d.rules.rules[i as usize];
                    json!({"check": r.id, "kind": r.kind.name(), "source": r.source, "confidence": r.confidence})
                }
                Check::List(i) => {
                    let l = &d.lists.lists[i as usize].meta;
                    json!({"check": format!("list:{}", l.id), "kind": "list", "list_kind": l.kind, "version": l.version()})
                }
                Check::OptOuts => json!({"check": "optouts", "kind": "list", "version": d.optouts_seq}),
                Check::Campaign => json!({"check": "campaign", "kind": "context"}),
                Check::CallerId => json!({"check": "caller_id", "kind": "caller_id", "source": "47 CFR 64.1601(e); 16 CFR 310.4(a)(8)"}),
                Check::Emergency => json!({"check": "state_of_emergency", "kind": "emergency", "source": "La. R.S. 45:844.31 (operator switch)"}),
                Check::Location => json!({"check": "data", "kind": "data"}),
            };
            v["outcome"] = json!(out);
            if let Some(r) = reason {
                v["reason"] = json!(r);
            }
            v
        })
        .collect()
}

/// The context, place and versions of a decision (shared by the audit record and explain).
pub fn context(d: &Decision) -> Value {
    let ctx = d.context.as_ref();
    json!({
        "campaign": ctx.map(|c| &*c.campaign.id),
        "seller": ctx.and_then(|c| c.campaign.seller.as_deref()),
        "purpose": ctx.map(|c| c.purpose.as_str()),
        "method": ctx.map(|c| c.method.as_str()),
        "caller_id": ctx.map(|c| c.caller_id.describe()),
        "shadow": ctx.is_some_and(|c| c.campaign.shadow),
        "npa_state": d.place.npa_state,
        "address_state": d.place.address_state,
        "zones": d.place.zones,
        "binding_zone": d.place.binding.map(|b| b.0),
        "local_time": d.place.binding.map(|b| b.1.format("%Y-%m-%dT%H:%M:%S").to_string()),
        "wireless": d.wireless,
        "retry_after_secs": d.retry_after,
        "consent_used": d.consent.as_ref().map(|c| json!({
            "seq": c.seq, "type": c.kind, "seller": c.seller, "campaign": c.campaign,
            "captured": c.captured, "expires": c.expiry(&d.rules.consent), "evidence": c.evidence,
        })),
        "versions": {
            "rules": d.rules.version,
            "holiday_years": d.rules.calendar.years(),
            "consent_seq": d.consent_seq,
            "optouts_seq": d.optouts_seq,
            "list_generation": d.lists.generation,
        },
    })
}

/// The audit record's view of a decision's context: the same fields as `context`, serialized
/// straight from the decision (the writer thread does this once per call).
pub struct AuditContext<'a>(pub &'a Decision);

impl serde::Serialize for AuditContext<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let d = self.0;
        let ctx = d.context.as_ref();
        let mut m = s.serialize_map(None)?;
        if let Some(c) = ctx {
            m.serialize_entry("campaign", &*c.campaign.id)?;
            if let Some(seller) = &c.campaign.seller {
                m.serialize_entry("seller", seller)?;
            }
            m.serialize_entry("purpose", c.purpose.as_str())?;
            m.serialize_entry("method", c.method.as_str())?;
            m.serialize_entry("caller_id", &c.caller_id.describe())?;
            if c.campaign.shadow {
                m.serialize_entry("shadow", &true)?;
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
            m.serialize_entry(
                "local_time",
                &format_args!("{}", t.format("%Y-%m-%dT%H:%M:%S")).to_string(),
            )?;
        }
        if let Some(w) = d.wireless {
            m.serialize_entry("wireless", &w)?;
        }
        if let Some(r) = d.retry_after {
            m.serialize_entry("retry_after_secs", &r)?;
        }
        if let Some(c) = &d.consent {
            m.serialize_entry("consent_seq", &c.seq)?;
            m.serialize_entry("consent_type", &c.kind)?;
            if let Some(e) = &c.evidence {
                m.serialize_entry("consent_evidence", e)?;
            }
        }
        m.serialize_entry("rules_version", &d.rules.version)?;
        m.serialize_entry("consent_data_seq", &d.consent_seq)?;
        m.end()
    }
}

/// The audit record's compact list of checks: `id=outcome[:reason]`.
pub struct AuditChecks<'a>(pub &'a Decision);

impl serde::Serialize for AuditChecks<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        struct One<'a>(&'a Decision, Check, Outcome);
        impl std::fmt::Display for One<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let d = self.0;
                match self.1 {
                    Check::Rule(i) => f.write_str(&d.rules.rules[i as usize].id)?,
                    Check::List(i) => write!(f, "list:{}", d.lists.lists[i as usize].meta.id)?,
                    Check::OptOuts => f.write_str("optouts")?,
                    Check::Campaign => f.write_str("campaign")?,
                    Check::CallerId => f.write_str("caller_id")?,
                    Check::Emergency => f.write_str("state_of_emergency")?,
                    Check::Location => f.write_str("data")?,
                }
                let (out, reason) = outcome(self.2);
                write!(f, "={out}")?;
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
