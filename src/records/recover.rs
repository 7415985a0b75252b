//! After a crash: the calls the previous run decided but never recorded as ended get their
//! record at the next start, `disposition = "unknown"`, `ended_by = "restart"` (a blocked
//! call whose record was lost keeps `rejected`). Only the log is read: a decision line with no
//! call line naming it is such a call. The files read are those that can hold a call still
//! open (the longest call, and a day besides, back from the newest file).

use super::line::{Decision, Line};
use super::{Direction, Disposition, EndedBy};
use crate::audit::{AuditSink, Entry};
use crate::call::{Reason, Reasons, Verdict};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

/// The parts of a log line recovery reads (decision lines and call lines).
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    called_e164: Option<Cow<'a, str>>,
    #[serde(borrow)]
    called_raw: Option<Cow<'a, str>>,
    #[serde(default)]
    reasons: Vec<Cow<'a, str>>,
    sip_status: Option<u16>,
    /// Why a call the policy allowed was refused (`records_unwritable`, `records_backlog`).
    #[serde(borrow)]
    refused: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source_cert: Option<Cow<'a, str>>,
    #[serde(borrow)]
    from: Option<Cow<'a, str>>,
    policy: Option<PolicyProbe>,
    #[serde(borrow)]
    call: Option<CallProbe<'a>>,
}

#[derive(Deserialize, Default)]
struct PolicyProbe {
    campaign: Option<String>,
    seller: Option<String>,
    subject: Option<String>,
    audience: Option<String>,
    script: Option<String>,
    purpose: Option<String>,
    method: Option<String>,
    caller_id: Option<String>,
}

#[derive(Deserialize)]
struct CallProbe<'a> {
    #[serde(borrow)]
    decision: Cow<'a, str>,
}

/// A decision still waiting for its call record.
struct Orphan {
    id: String,
    ts: String,
    verdict: Verdict,
    call_id: String,
    called: String,
    reasons: Reasons,
    sip_status: Option<u16>,
    /// Refused although the policy allowed it (its records could not be written then).
    refused: bool,
    /// The certificate name or address the call came from.
    telemarketer: Option<String>,
    caller_id: Option<String>,
    caller_name: Option<String>,
    policy: PolicyProbe,
}

/// Read the files that may hold open calls; write a record for each.
pub(crate) fn close_orphans(
    dir: &Path,
    longest_call: Duration,
    sink: &AuditSink,
    now: DateTime<Utc>,
) -> std::io::Result<usize> {
    let files = match crate::audit::chain::audit_files(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let day_of = crate::audit::chain::day_of;
    let Some(newest) = files.last().and_then(|p| day_of(p)) else {
        return Ok(0);
    };
    let back = chrono::Duration::days(longest_call.as_secs().div_ceil(86_400) as i64 + 1);
    let window: Vec<&Path> = files
        .iter()
        .filter(|p| day_of(p).is_some_and(|d| d >= newest - back))
        .map(|p| p.as_path())
        .collect();
    let mut seen = Seen::default();
    for (i, f) in window.iter().enumerate() {
        // One unreadable file (a corrupt compressed day) must not keep callgate from taking
        // calls: it is said, counted, and the rest is recovered.
        if let Err(e) = seen.scan(i, f) {
            unreadable(sink, f, &e);
        }
    }
    let mut orphans = Vec::with_capacity(seen.open.len());
    for (i, f) in window.iter().enumerate() {
        if let Err(e) = seen.read_orphans(i, f, &mut orphans) {
            unreadable(sink, f, &e);
        }
    }
    orphans.sort_by(|a, b| a.ts.cmp(&b.ts));
    let n = orphans.len();
    for o in orphans {
        sink.entry(Box::new(Closed { o, now }));
    }
    Ok(n)
}

fn unreadable(sink: &AuditSink, f: &Path, e: &std::io::Error) {
    sink.metrics().recovery_unreadable_files.inc();
    tracing::error!(file = %f.display(), error = %e,
        "an audit file in the crash-recovery window cannot be read: calls it left open may stay without an end record");
}

/// The decisions seen without their call record so far: where each line is (the file's
/// place in the window, the line's number). A first pass reads only the ids of decision and
/// call lines (no JSON parse: the window may hold millions of lines); the few decisions left
/// open are read whole in a second.
#[derive(Default)]
struct Seen {
    open: HashMap<String, (usize, u64)>,
    /// Call lines written before their decision's (older versions wrote a rejected call's
    /// so): the decision that follows is closed.
    closed_early: HashSet<String>,
}

/// What a log line is, read from its first bytes.
enum Shape<'a> {
    Decision(&'a str),
    Call(&'a str),
    Other,
}

/// A decision line starts with its id; a call line with its time and its decision's id (as
/// `audit::write_record` and `records::line` write them). Anything else, or an id that would
/// need unescaping, is read as JSON.
fn shape(line: &[u8]) -> Shape<'_> {
    fn id(rest: &[u8]) -> Option<&str> {
        let end = rest.iter().position(|c| *c == b'"')?;
        let id = &rest[..end];
        (!id.contains(&b'\\')).then(|| std::str::from_utf8(id).ok())?
    }
    const CALL: &[u8] = b"\",\"call\":{\"decision\":\"";
    if let Some(rest) = line.strip_prefix(b"{\"id\":\"") {
        return id(rest).map_or(Shape::Other, Shape::Decision);
    }
    if line.starts_with(b"{\"ts\":\"") {
        let head = &line[..line.len().min(96)];
        if let Some(at) = head.windows(CALL.len()).position(|w| w == CALL) {
            return id(&line[at + CALL.len()..]).map_or(Shape::Other, Shape::Call);
        }
    }
    Shape::Other
}

impl Seen {
    fn scan(&mut self, file: usize, path: &Path) -> std::io::Result<()> {
        let lines = crate::audit::chain::open_lines(path)?;
        for (n, line) in lines.split(b'\n').enumerate() {
            let line = line?;
            match shape(&line) {
                Shape::Decision(id) => self.decision(id, (file, n as u64)),
                Shape::Call(id) => self.call(id),
                Shape::Other => match serde_json::from_slice::<Probe>(&line) {
                    Ok(Probe { call: Some(c), .. }) => self.call(&c.decision),
                    Ok(Probe {
                        id: Some(id),
                        verdict: Some(_),
                        ..
                    }) => self.decision(&id, (file, n as u64)),
                    _ => {} // a seal, an admin line, a torn tail
                },
            }
        }
        Ok(())
    }

    fn decision(&mut self, id: &str, at: (usize, u64)) {
        if !self.closed_early.remove(id) {
            self.open.insert(id.to_string(), at);
        }
    }

    fn call(&mut self, decision: &str) {
        if self.open.remove(decision).is_none() {
            self.closed_early.insert(decision.to_string());
        }
    }

    /// The decisions of `file` still open, read whole.
    fn read_orphans(&self, file: usize, path: &Path, out: &mut Vec<Orphan>) -> std::io::Result<()> {
        let wanted: HashSet<u64> = self
            .open
            .values()
            .filter(|(f, _)| *f == file)
            .map(|(_, n)| *n)
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let lines = crate::audit::chain::open_lines(path)?;
        for (n, line) in lines.split(b'\n').enumerate() {
            let line = line?;
            if wanted.contains(&(n as u64)) {
                out.extend(serde_json::from_slice::<Probe>(&line).ok().and_then(orphan));
            }
        }
        Ok(())
    }
}

/// A decision line, as the orphan it is.
fn orphan(p: Probe<'_>) -> Option<Orphan> {
    let id = p.id?;
    let verdict = p.verdict.as_deref().and_then(Verdict::parse)?;
    let mut reasons = Reasons::default();
    for r in p.reasons.iter().filter_map(|r| Reason::from_code(r)) {
        reasons.insert(r);
    }
    let policy = p.policy.unwrap_or_default();
    let caller_name = p.from.as_deref().and_then(display_name).map(str::to_string);
    Some(Orphan {
        id: id.into_owned(),
        ts: p.ts.unwrap_or_default().into_owned(),
        verdict,
        call_id: p.call_id.unwrap_or_default().into_owned(),
        called: p
            .called_e164
            .or(p.called_raw)
            .unwrap_or_default()
            .into_owned(),
        reasons,
        sip_status: p.sip_status,
        refused: p.refused.is_some(),
        telemarketer: p.source_cert.or(p.source).map(Cow::into_owned),
        caller_id: policy.caller_id.clone().filter(|c| c.starts_with('+')),
        caller_name,
        policy,
    })
}

/// The record recovery writes for one orphan.
struct Closed {
    o: Orphan,
    now: DateTime<Utc>,
}

impl Entry for Closed {
    fn ts(&self) -> DateTime<Utc> {
        self.now
    }

    fn write(&self, out: &mut Vec<u8>) {
        self.with_line(|line| line.write(out, self.now));
    }

    fn summary(&self) -> Option<crate::audit::summary::Summary> {
        Some(self.with_line(|line| line.summary(self.now)))
    }
}

impl Closed {
    /// The call record's fields, made from what the decision line kept.
    fn with_line<R>(&self, f: impl FnOnce(&Line) -> R) -> R {
        let o = &self.o;
        let k = &o.policy;
        let rejected = !o.verdict.forwards() || o.refused;
        let at = DateTime::parse_from_rfc3339(&o.ts)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let line = Line {
            decision: Decision::Id(&o.id),
            call_id: &o.call_id,
            direction: match o.verdict {
                Verdict::Inbound => Direction::Inbound,
                _ => Direction::Outbound,
            },
            verdict: o.verdict.as_str(),
            telemarketer: o.telemarketer.as_deref(),
            seller: k.seller.as_deref(),
            campaign: k.campaign.as_deref(),
            subject: k.subject.as_deref(),
            audience: k.audience.as_deref().and_then(crate::call::Audience::parse),
            purpose: k.purpose.as_deref(),
            method: k.method.as_deref(),
            script: k.script.as_deref(),
            called: &o.called,
            caller_id: o.caller_id.as_deref().and_then(|c| c.parse().ok()),
            caller_name: o.caller_name.as_deref(),
            caller_id_grant: None,
            invite_at: at,
            ringing_at: None,
            answered_at: None,
            ended_at: at.filter(|_| rejected),
            setup_ms: None,
            duration_ms: rejected.then_some(0),
            disposition: if rejected {
                Disposition::Rejected
            } else {
                Disposition::Unknown
            },
            reasons: o.reasons,
            ended_by: if rejected {
                EndedBy::Callgate
            } else {
                EndedBy::Restart
            },
            sip_status: o.sip_status,
            q850_cause: None,
            transfer_to: None,
            transfer_by: None,
        };
        f(&line)
    }
}

/// The display name of a From header value (`"Acme Sales" <sip:...>`).
fn display_name(from: &str) -> Option<&str> {
    let (name, _) = from.split_once('<')?;
    let name = name.trim();
    let name = name
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name);
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::{shape, Shape};

    #[test]
    fn decision_and_call_lines_are_told_by_their_first_bytes() {
        let decision = br#"{"id":"18f2a-7","ts":"2026-12-06T19:00:00.123Z","call_id":"c1","verdict":"allowed"}"#;
        assert!(matches!(shape(decision), Shape::Decision("18f2a-7")));
        let call =
            br#"{"ts":"2026-12-06T19:00:01.456Z","call":{"decision":"18f2a-7","call_id":"c1"}}"#;
        assert!(matches!(shape(call), Shape::Call("18f2a-7")));
        for other in [
            &br#"{"seal":{"records":2}}"#[..],
            br#"{"id":"needs\"unescaping","verdict":"allowed"}"#,
            br#"{"ts":"2026-12-06T19:00:01.456Z","admin":{"action":"reload"}}"#,
            b"{\"id\":\"torn",
        ] {
            assert!(matches!(shape(other), Shape::Other));
        }
    }
}
