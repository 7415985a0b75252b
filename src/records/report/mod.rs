//! The compliance report of a period, for an auditor: decisions by verdict, blocks by
//! reason, calls by disposition, abandonment per campaign, opt-outs and consent entered,
//! the consent decisions were exempted under, caps
//! reached, shadow-mode would-blocks, and the list versions in service each day with their age
//! (the proof that the national list was never older than the rule allows, or the days it
//! was). Counted through the records index; the list versions read from each day's first and
//! last decision in the log itself.

mod html;

use super::cluster::Logs;
use super::export::FindError;
use super::index::{each_line, Index, Kind, Query, Tally};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;

pub(crate) use html::bars;
pub use html::render as html;

/// What the report covers.
pub struct Ask {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub campaign: Option<String>,
    /// The most days a national list may be old (`policy.national_max_age_days`).
    pub national_max_age_days: u32,
}

#[derive(Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub campaign: Option<String>,
    pub generated_at: String,
    /// Decisions by verdict.
    pub decisions: BTreeMap<String, u64>,
    /// Blocked decisions by reason (a decision may have several).
    pub blocked_by_reason: BTreeMap<String, u64>,
    /// What shadow mode would have blocked, by reason.
    pub would_block_by_reason: BTreeMap<String, u64>,
    /// Call records by disposition.
    pub calls: BTreeMap<String, u64>,
    pub campaigns: Vec<Campaign>,
    pub optouts_received: u64,
    /// Consent uploads and entries (admin records; each may hold many records).
    pub consent_entries: u64,
    /// Decisions a consent or EBR record exempted from a check, by the record's type
    /// (`pewc`, `ebr_purchase`...): the consent the calls were made under.
    pub consent_used: BTreeMap<String, u64>,
    /// Calls blocked by a frequency cap.
    pub caps_reached: u64,
    /// Blocked decisions by the called party's state (its address on file, else its area
    /// code's; `unknown` when neither is known).
    pub blocked_by_state: BTreeMap<String, u64>,
    /// Each opt-out received in the period and the first call to the number blocked for it
    /// after (in the period), the newest `FOLLOW_UPS` of them.
    pub optouts: Vec<FollowUp>,
    /// The lists each day's calls were decided with.
    pub days: Vec<DayLists>,
    /// Days whose decisions are not proven to have had a national list within its allowed
    /// age: an older one, none, or a decision line that could not be read.
    pub stale_days: Vec<String>,
}

/// Opt-outs the report lists, at most (the newest).
pub const FOLLOW_UPS: usize = 500;

/// An opt-out and what came of it: the first blocked attempt to call the number after it.
#[derive(Serialize)]
pub struct FollowUp {
    pub number: String,
    pub received: String,
    pub source: Option<String>,
    pub first_blocked: Option<String>,
    /// Hours from the opt-out to that attempt.
    pub hours: Option<f64>,
}

/// One campaign's calls and abandonment (TSR 310.4(b)(4): abandoned over answered).
#[derive(Serialize)]
pub struct Campaign {
    pub campaign: String,
    pub calls: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub abandonment_percent: Option<f64>,
}

/// A day's lists, as its first and last decisions name them.
#[derive(Serialize)]
pub struct DayLists {
    pub day: String,
    /// The instance whose decisions these are, when not this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub lists: Vec<ListInService>,
    /// Why the day does not prove a fresh national list, besides an old one: none in service
    /// (missing or unavailable), or a decision line that could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl DayLists {
    /// The day, and its instance when not this one.
    pub(crate) fn label(&self) -> String {
        match &self.instance {
            Some(i) => format!("{} ({i})", self.day),
            None => self.day.clone(),
        }
    }

    /// Whether the day's decisions were made with a national list within its allowed age.
    fn proven(&self) -> bool {
        self.problem.is_none()
            && self.lists.iter().any(|l| l.kind == "national")
            && self.lists.iter().all(|l| l.fresh != Some(false))
    }
}

#[derive(Serialize, Clone, PartialEq)]
pub struct ListInService {
    pub id: String,
    pub kind: String,
    pub version: String,
    pub downloaded: Option<String>,
    /// Days from its download to the decision that used it (the day's last, the oldest).
    pub age_days: Option<i64>,
    /// For a national list: whether it was within the allowed age.
    pub fresh: Option<bool>,
}

/// Gather the report from the log `files` (oldest first) through `index` (up to date).
pub fn build(
    files: &[PathBuf],
    index: &Index,
    ask: &Ask,
    now: DateTime<Utc>,
) -> Result<Report, FindError> {
    let blocks = blocks(files, index, &query_of(ask))?;
    build_with(files, index, ask, now, blocks)
}

fn query_of(ask: &Ask) -> Query {
    Query {
        from: Some(ask.from),
        to: Some(ask.to),
        campaign: ask.campaign.clone(),
        ..Query::default()
    }
}

/// The report of one log, with the blocked calls that follow up its opt-outs in `blocks`
/// (the cluster's: an opt-out taken by one instance may be honoured by another).
fn build_with(
    files: &[PathBuf],
    index: &Index,
    ask: &Ask,
    now: DateTime<Utc>,
    blocks: Blocks,
) -> Result<Report, FindError> {
    let q = query_of(ask);
    let tallies = index.tally(&q)?;
    let mut r = Report {
        from: stamp(ask.from),
        to: stamp(ask.to),
        campaign: ask.campaign.clone(),
        generated_at: stamp(now),
        decisions: BTreeMap::new(),
        blocked_by_reason: BTreeMap::new(),
        would_block_by_reason: BTreeMap::new(),
        calls: BTreeMap::new(),
        campaigns: campaigns(
            tallies
                .iter()
                .filter(|t| t.kind == Kind::Call)
                .map(campaign_of),
        ),
        optouts_received: 0,
        consent_entries: 0,
        consent_used: BTreeMap::new(),
        caps_reached: 0,
        blocked_by_state: BTreeMap::new(),
        optouts: vec![],
        days: vec![],
        stale_days: vec![],
    };
    for t in &tallies {
        count(&mut r, t);
    }
    r.optouts = follow_ups(files, index, &q, &blocks.for_optout)?;
    r.blocked_by_state = blocks.by_state;
    r.days = days(files, index, &q, ask)?;
    r.stale_days = r
        .days
        .iter()
        .filter(|d| !d.proven())
        .map(|d| d.day.clone())
        .collect();
    Ok(r)
}

/// A time as the report shows it: to the second, UTC.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Add one tally to the report's counts.
fn count(r: &mut Report, t: &Tally) {
    let reasons = || t.reasons.split_whitespace();
    match t.kind {
        Kind::Decision => {
            *r.decisions.entry(t.verdict.clone()).or_default() += t.count;
            if !t.consent.is_empty() {
                *r.consent_used.entry(t.consent.clone()).or_default() += t.count;
            }
            let by_reason = match t.verdict.as_str() {
                "blocked" => &mut r.blocked_by_reason,
                "would_block" => &mut r.would_block_by_reason,
                _ => return,
            };
            for code in reasons() {
                *by_reason.entry(code.to_string()).or_default() += t.count;
            }
            if t.verdict == "blocked" && reasons().any(|c| c == "frequency_cap") {
                r.caps_reached += t.count;
            }
        }
        Kind::Call => *r.calls.entry(t.disposition.clone()).or_default() += t.count,
        Kind::Admin => match t.action.as_str() {
            "optout_add" => r.optouts_received += t.count,
            "consent_add" => r.consent_entries += t.count,
            _ => {}
        },
    }
}

/// A call tally as a campaign's (calls, answered, abandoned).
fn campaign_of(t: &Tally) -> Campaign {
    let n = t.count;
    let (answered, abandoned) = match t.disposition.as_str() {
        "answered" | "transferred" => (n, 0),
        "abandoned" => (0, n),
        _ => (0, 0),
    };
    let name = t.campaign.clone().unwrap_or_else(|| "-".into());
    Campaign::new(name, n, answered, abandoned)
}

/// Each campaign's calls added up, by name.
fn campaigns(parts: impl Iterator<Item = Campaign>) -> Vec<Campaign> {
    let mut by: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for c in parts {
        let e = by.entry(c.campaign).or_default();
        (e.0, e.1, e.2) = (e.0 + c.calls, e.1 + c.answered, e.2 + c.abandoned);
    }
    by.into_iter()
        .map(|(c, (calls, answered, abandoned))| Campaign::new(c, calls, answered, abandoned))
        .collect()
}

impl Campaign {
    fn new(campaign: String, calls: u64, answered: u64, abandoned: u64) -> Campaign {
        Campaign {
            campaign,
            calls,
            answered,
            abandoned,
            // Abandoned calls were answered by a person too.
            abandonment_percent: (answered + abandoned > 0)
                .then(|| 100.0 * abandoned as f64 / (answered + abandoned) as f64),
        }
    }
}

/// The report of every log of the cluster (`logs`, this instance's first): each log's counts
/// added up, a campaign's abandonment over all its calls, and each instance's days and lists
/// (each instance decides with lists of its own).
pub(crate) fn build_all(logs: &Logs, ask: &Ask, now: DateTime<Utc>) -> Result<Report, FindError> {
    let q = query_of(ask);
    let mut each = Vec::new();
    let mut for_optout: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    for log in logs.iter() {
        let mut b = blocks(&log.files, &log.index, &q)?;
        for (n, times) in b.for_optout.drain() {
            for_optout.entry(n).or_default().extend(times);
        }
        each.push(b);
    }
    let mut each = each.into_iter().map(|b| Blocks {
        by_state: b.by_state,
        for_optout: for_optout.clone(),
    });
    let own = each.next().unwrap_or_default();
    let mut r = build_with(&logs.own.files, &logs.own.index, ask, now, own)?;
    for (log, b) in logs.others.iter().zip(each) {
        let mut other = build_with(&log.files, &log.index, ask, now, b)?;
        for d in &mut other.days {
            d.instance = log.source.instance.clone();
        }
        r.add(other);
    }
    r.stale_days = r
        .days
        .iter()
        .filter(|d| !d.proven())
        .map(DayLists::label)
        .collect();
    Ok(r)
}

impl Report {
    /// Another instance's report of the same period, added to this one.
    fn add(&mut self, other: Report) {
        let sum = |a: &mut BTreeMap<String, u64>, b: BTreeMap<String, u64>| {
            for (k, n) in b {
                *a.entry(k).or_default() += n;
            }
        };
        sum(&mut self.decisions, other.decisions);
        sum(&mut self.blocked_by_reason, other.blocked_by_reason);
        sum(&mut self.would_block_by_reason, other.would_block_by_reason);
        sum(&mut self.calls, other.calls);
        sum(&mut self.consent_used, other.consent_used);
        sum(&mut self.blocked_by_state, other.blocked_by_state);
        self.optouts_received += other.optouts_received;
        self.consent_entries += other.consent_entries;
        self.caps_reached += other.caps_reached;
        let mine = std::mem::take(&mut self.campaigns);
        self.campaigns = campaigns(mine.into_iter().chain(other.campaigns));
        self.optouts.extend(other.optouts);
        self.optouts.sort_by(|a, b| a.received.cmp(&b.received));
        let past = self.optouts.len().saturating_sub(FOLLOW_UPS);
        self.optouts.drain(..past);
        self.days.extend(other.days);
    }
}

/// What the period's blocked decisions say beyond their facets.
#[derive(Default)]
struct Blocks {
    by_state: BTreeMap<String, u64>,
    /// Times of the calls blocked for the internal list (opt-outs), by number.
    for_optout: HashMap<String, Vec<DateTime<Utc>>>,
}

/// The period's blocked decisions, read from the log.
fn blocks(files: &[PathBuf], index: &Index, q: &Query) -> Result<Blocks, FindError> {
    let found = index.query(&Query {
        kinds: vec![Kind::Decision],
        verdict: Some("blocked".into()),
        ..q.clone()
    })?;
    let mut b = Blocks {
        by_state: BTreeMap::new(),
        for_optout: Default::default(),
    };
    each_line(files, &found, |_, _, line| {
        let Ok(d) = serde_json::from_slice::<Value>(line) else {
            return Ok(ControlFlow::Continue(()));
        };
        let policy = d.get("policy");
        let state = ["address_state", "npa_state"]
            .iter()
            .find_map(|k| policy.and_then(|p| p.get(*k)).and_then(Value::as_str));
        *b.by_state
            .entry(state.unwrap_or("unknown").to_string())
            .or_default() += 1;
        let internal = d["reasons"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|r| r == "internal_dnc"));
        if let (true, Some(n), Some(at)) = (internal, d["called_e164"].as_str(), time_of(&d)) {
            b.for_optout.entry(n.to_string()).or_default().push(at);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(b)
}

fn time_of(line: &Value) -> Option<DateTime<Utc>> {
    let t = line.get("ts").and_then(Value::as_str)?;
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The period's opt-outs (the newest `FOLLOW_UPS`), each with the first call to the number
/// blocked after it.
fn follow_ups(
    files: &[PathBuf],
    index: &Index,
    q: &Query,
    blocked: &std::collections::HashMap<String, Vec<DateTime<Utc>>>,
) -> Result<Vec<FollowUp>, FindError> {
    let mut found = index.query(&Query {
        kinds: vec![Kind::Admin],
        action: Some("optout_add".into()),
        // Opt-outs are not of a campaign.
        campaign: None,
        newest_first: true,
        limit: Some(FOLLOW_UPS as u32),
        ..q.clone()
    })?;
    found.reverse();
    let mut out = Vec::with_capacity(found.len());
    each_line(files, &found, |_, _, line| {
        let Ok(l) = serde_json::from_slice::<Value>(line) else {
            return Ok(ControlFlow::Continue(()));
        };
        let detail = &l["admin"]["detail"];
        let (Some(number), Some(received)) = (detail["number"].as_str(), time_of(&l)) else {
            return Ok(ControlFlow::Continue(()));
        };
        let first = blocked
            .get(number)
            .and_then(|ts| ts.iter().filter(|t| **t >= received).min().copied());
        out.push(FollowUp {
            number: number.to_string(),
            received: stamp(received),
            source: detail["source"].as_str().map(str::to_string),
            first_blocked: first.map(stamp),
            hours: first.map(|f| (f - received).num_seconds() as f64 / 3600.0),
        });
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Each day's lists, from its first and last decisions.
fn days(
    files: &[PathBuf],
    index: &Index,
    decisions: &Query,
    ask: &Ask,
) -> Result<Vec<DayLists>, FindError> {
    let ends = index.day_ends(decisions, Kind::Decision)?;
    let found: Vec<_> = ends
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut days: Vec<DayLists> = vec![];
    each_line(files, &found, |_, f, line| {
        let decision = serde_json::from_slice::<Value>(line).ok();
        let lists = decision
            .as_ref()
            .map(|d| lists_of(d, ask))
            .unwrap_or_default();
        let problem = match &decision {
            None => Some("a decision line could not be read".to_string()),
            Some(d) if !lists.iter().any(|l| l.kind == "national") => {
                let unavailable = d.get("lists_unavailable").map(Value::to_string);
                Some(format!(
                    "no national list in service{}",
                    unavailable
                        .map(|u| format!(" (unavailable: {u})"))
                        .unwrap_or_default()
                ))
            }
            Some(_) => None,
        };
        let day = f.pos.day.trim_start_matches("audit-").to_string();
        match days.last_mut() {
            Some(d) if d.day == day => {
                d.problem = d.problem.take().or(problem);
                for l in lists {
                    match d
                        .lists
                        .iter_mut()
                        .find(|x| x.id == l.id && x.version == l.version)
                    {
                        Some(x) => *x = l,
                        None => d.lists.push(l),
                    }
                }
            }
            _ => days.push(DayLists {
                day,
                instance: None,
                lists,
                problem,
            }),
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(days)
}

/// The lists a decision line names, with their age at its time.
fn lists_of(d: &Value, ask: &Ask) -> Vec<ListInService> {
    let at = d
        .get("ts")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let s = |l: &Value, k: &str| l.get(k).and_then(Value::as_str).map(str::to_string);
    let lists = d.get("lists").and_then(Value::as_array);
    lists
        .into_iter()
        .flatten()
        .map(|l| {
            let downloaded = s(l, "downloaded");
            let age_days = match (at, downloaded.as_deref()) {
                (Some(at), Some(dl)) => crate::lists::load::parse_date(dl)
                    .map(|dl| (at.with_timezone(&Utc) - dl).num_days()),
                _ => None,
            };
            let kind = s(l, "kind").unwrap_or_default();
            let fresh = (kind == "national")
                .then(|| age_days.is_some_and(|a| a <= i64::from(ask.national_max_age_days)));
            ListInService {
                id: s(l, "id").unwrap_or_default(),
                kind,
                version: s(l, "version").unwrap_or_default(),
                downloaded,
                age_days,
                fresh,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn national(fresh: bool) -> ListInService {
        ListInService {
            id: "national".into(),
            kind: "national".into(),
            version: "v".into(),
            downloaded: None,
            age_days: Some(if fresh { 3 } else { 40 }),
            fresh: Some(fresh),
        }
    }

    fn day(lists: Vec<ListInService>, problem: Option<&str>) -> DayLists {
        DayLists {
            day: "2026-01-01".into(),
            instance: None,
            lists,
            problem: problem.map(str::to_string),
        }
    }

    #[test]
    fn a_day_proves_the_rule_only_with_a_fresh_national_list() {
        assert!(day(vec![national(true)], None).proven());
        assert!(!day(vec![national(false)], None).proven());
        assert!(
            !day(vec![], None).proven(),
            "no national list proves nothing"
        );
        assert!(!day(
            vec![national(true)],
            Some("a decision line could not be read")
        )
        .proven());
    }
}
