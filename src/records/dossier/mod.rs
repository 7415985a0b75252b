//! The complaint dossier: for one number, every decision, call record, opt-out and consent in
//! the log, in order, each with its line's hash and whether the hash chain holds through it.
//! One document (HTML to print or attach, JSON to process) that answers "you called me".
//! Lines are found with the records index and read from the log itself.

mod chain;
mod html;

use super::cluster::{Logs, Source};
use super::export::FindError;
use super::index::{each_line, Found, Index, Kind, Pos, Query};
use crate::audit::walk::DayWalk;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub use html::render as html;
pub(crate) use html::{campaign_of, headline};

/// What the dossier covers.
pub struct Ask {
    /// E.164 with `+`.
    pub number: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct Dossier {
    pub number: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub generated_at: String,
    pub generated_by: String,
    pub entries: Vec<Entry>,
    /// The chain of each day the entries come from.
    pub days: Vec<Day>,
    pub counts: Counts,
}

/// One line of the log about the number.
#[derive(Serialize)]
pub struct Entry {
    pub file: String,
    /// The instance whose log holds the line, when not this one (the line is read from this
    /// instance's copy of that log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub offset: u64,
    pub kind: Kind,
    pub ts: Option<String>,
    /// SHA-256 of the line's exact bytes (without its newline), as the next line names it.
    pub hash: String,
    /// Whether the hash chain holds from the start of its day's file through this line.
    pub verified: bool,
    /// The newest line of the log: no line after it vouches for it yet (pin the head
    /// `callgate audit verify` prints).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub newest: bool,
    /// The record as written (the object under `call` or `admin`, or the decision itself).
    pub record: Value,
    /// The line's exact text, so anyone can recompute `hash` (SHA-256 of it). Left out when
    /// the line also names other people (a batch of consent records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

#[derive(Serialize)]
pub struct Day {
    pub file: String,
    /// `prev` of the file's first line.
    pub starts_from: Option<String>,
    /// Whether that is the previous file's seal (None: no previous file in the log).
    pub linked_to_previous: Option<bool>,
    pub verified: bool,
    /// Where the chain breaks, and why.
    pub broken_at: Option<u64>,
    pub why: Option<String>,
}

#[derive(Default, Serialize)]
pub struct Counts {
    pub decisions: u64,
    pub blocked: u64,
    pub calls: u64,
    pub answered: u64,
    pub optouts: u64,
    pub consents: u64,
    pub not_verified: u64,
    /// Day files of the period whose chain was walked, and how many of them break.
    pub days_walked: u64,
    pub days_not_verified: u64,
}

/// At most this many records in one dossier: a longer history is asked for by period.
pub const MAX_ENTRIES: usize = 10_000;

/// Gather the dossier from the log `files` (oldest first) through `index` (up to date).
/// The chain is walked through every day of the period, not only the days with a record of
/// the number: a line changed so that it no longer names the number still breaks its day.
pub fn build(
    files: &[PathBuf],
    index: &Index,
    ask: &Ask,
    now: DateTime<Utc>,
) -> Result<Dossier, FindError> {
    let found = found(index, ask)?;
    let with_entries = found.iter().map(|f| f.pos.day.clone()).collect();
    let walks = chain::walk_period(files, &with_entries, ask.from, ask.to)?;
    let entries = gather(files, &found, ask, Some(&walks))?;
    let days = walks.days();
    Ok(Dossier {
        number: ask.number.clone(),
        from: ask.from.map(stamp),
        to: ask.to.map(stamp),
        generated_at: stamp(now),
        generated_by: format!("callgate {}", env!("CARGO_PKG_VERSION")),
        counts: count(&entries, &days),
        entries,
        days,
    })
}

/// The dossier of every log of the cluster (this instance's and the copies of the others'):
/// each log's entries and chain walks, a copy's files named from the audit directory
/// (`cluster/<instance>/...`), the entries in time order.
pub(crate) fn build_all(logs: &Logs, ask: &Ask, now: DateTime<Utc>) -> Result<Dossier, FindError> {
    let mut d = build(&logs.own.files, &logs.own.index, ask, now)?;
    for log in &logs.others {
        let other = build(&log.files, &log.index, ask, now)?;
        d.entries.extend(labelled(other.entries, &log.source));
        d.days.extend(other.days.into_iter().map(|mut day| {
            day.file.insert_str(0, &log.source.prefix());
            day
        }));
    }
    if d.entries.len() > MAX_ENTRIES {
        return Err(FindError::TooMany { max: MAX_ENTRIES });
    }
    // Stable: within one time, this instance's entries first, each log's in its order.
    d.entries.sort_by(|a, b| a.ts.cmp(&b.ts));
    d.counts = count(&d.entries, &d.days);
    Ok(d)
}

/// A number's records by kind (whatever their count: a history shows the newest only).
#[derive(Default, Serialize)]
pub struct Kinds {
    pub decisions: u64,
    pub calls: u64,
    pub admin: u64,
}

/// The number's newest `newest` records as the log holds them, without walking the hash chain
/// (none is marked verified), and how many it has of each kind: the console's history of a
/// number, read in milliseconds; the dossier proves the chain.
pub fn history(
    files: &[PathBuf],
    index: &Index,
    ask: &Ask,
    newest: usize,
) -> Result<(Vec<Entry>, Kinds), FindError> {
    let found = index.query(&Query {
        number: Some(ask.number.clone()),
        from: ask.from,
        to: ask.to,
        ..Query::default()
    })?;
    let mut kinds = Kinds::default();
    for f in &found {
        *match f.kind {
            Kind::Decision => &mut kinds.decisions,
            Kind::Call => &mut kinds.calls,
            Kind::Admin => &mut kinds.admin,
        } += 1;
    }
    let shown = &found[found.len().saturating_sub(newest)..];
    Ok((gather(files, shown, ask, None)?, kinds))
}

/// Another log's entries: their instance, their files named from the audit directory.
fn labelled(entries: Vec<Entry>, log: &Source) -> impl Iterator<Item = Entry> + '_ {
    let prefix = log.prefix();
    entries.into_iter().map(move |mut e| {
        e.file.insert_str(0, &prefix);
        e.instance = log.instance.clone();
        e
    })
}

/// The number's newest `newest` records in every log of the cluster, in time order, and how
/// many it has of each kind in all (see `history`).
pub(crate) fn history_all(
    logs: &Logs,
    ask: &Ask,
    newest: usize,
) -> Result<(Vec<Entry>, Kinds), FindError> {
    let (mut entries, mut kinds) = history(&logs.own.files, &logs.own.index, ask, newest)?;
    for log in &logs.others {
        let (more, k) = history(&log.files, &log.index, ask, newest)?;
        entries.extend(labelled(more, &log.source));
        kinds.decisions += k.decisions;
        kinds.calls += k.calls;
        kinds.admin += k.admin;
    }
    entries.sort_by(|a, b| a.ts.cmp(&b.ts));
    entries.drain(..entries.len().saturating_sub(newest));
    Ok((entries, kinds))
}

/// The lines of the number in the period, at most `MAX_ENTRIES`.
fn found(index: &Index, ask: &Ask) -> Result<Vec<Found>, FindError> {
    let found = index.query(&Query {
        number: Some(ask.number.clone()),
        from: ask.from,
        to: ask.to,
        limit: Some(MAX_ENTRIES as u32 + 1),
        ..Query::default()
    })?;
    if found.len() > MAX_ENTRIES {
        return Err(FindError::TooMany { max: MAX_ENTRIES });
    }
    Ok(found)
}

/// Each found line as an entry, marked verified as `walks` (if any) found its day.
fn gather(
    files: &[PathBuf],
    found: &[Found],
    ask: &Ask,
    walks: Option<&chain::Walks>,
) -> Result<Vec<Entry>, FindError> {
    let mut entries = Vec::with_capacity(found.len());
    each_line(files, found, |file, f, bytes| {
        let walk = walks.and_then(|w| w.of(&f.pos.day));
        let mut e = entry(file, &f.pos, f.kind, bytes, walk);
        if !only_this_number(&mut e.record, &ask.number) {
            e.line = Some(String::from_utf8_lossy(bytes).into_owned());
        }
        entries.push(e);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(entries)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The record at `pos` as the log holds it now. A line changed since it was indexed (not a
/// record any more, or another kind) is shown as it is: its day's chain breaks at it.
fn entry(file: &Path, pos: &Pos, kind: Kind, bytes: &[u8], walk: Option<&DayWalk>) -> Entry {
    let line: Option<Value> = serde_json::from_slice(bytes).ok();
    let ts = line
        .as_ref()
        .and_then(|l| l.get("ts"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let part = |k: &str| line.as_ref().and_then(|l| l.get(k)).cloned();
    let record = match kind {
        Kind::Call => part("call"),
        Kind::Admin => part("admin"),
        Kind::Decision => line.clone(),
    };
    let record = record.unwrap_or_else(|| json!({"unreadable": String::from_utf8_lossy(bytes)}));
    Entry {
        file: name(file),
        instance: None,
        offset: pos.offset,
        kind,
        ts,
        hash: crate::audit::chain::line_hash(bytes),
        verified: walk.is_some_and(|w| w.verified_at(pos.offset)),
        newest: walk.is_some_and(|w| w.unvouched == Some(pos.offset)),
        record,
        line: None,
    }
}

/// A batch of consent records (an admin record) keeps only the number's own, and not what
/// would tell the batch's size: a dossier goes to one consumer. The line's hash still covers
/// the whole batch. Whether others were left out.
pub(crate) fn only_this_number(record: &mut Value, number: &str) -> bool {
    let Some(detail) = record.get_mut("detail").and_then(Value::as_object_mut) else {
        return false;
    };
    let Some(cs) = detail.get_mut("consents").and_then(Value::as_array_mut) else {
        return false;
    };
    let before = cs.len();
    cs.retain(|c| c.get("number").and_then(Value::as_str) == Some(number));
    let narrowed = cs.len() < before;
    if narrowed {
        for batch in ["records", "seq_first", "seq_last"] {
            detail.remove(batch);
        }
    }
    narrowed
}

fn count(entries: &[Entry], days: &[Day]) -> Counts {
    let mut c = Counts {
        days_walked: days.len() as u64,
        days_not_verified: days.iter().filter(|d| !d.verified).count() as u64,
        ..Counts::default()
    };
    for e in entries {
        let s = |k: &str| e.record.get(k).and_then(Value::as_str);
        match e.kind {
            Kind::Decision => {
                c.decisions += 1;
                c.blocked += u64::from(s("verdict") == Some("blocked"));
            }
            Kind::Call => {
                c.calls += 1;
                c.answered += u64::from(s("disposition") == Some("answered"));
            }
            Kind::Admin => match s("action") {
                Some("optout_add") => c.optouts += 1,
                Some("consent_add") => c.consents += 1,
                _ => {}
            },
        }
        c.not_verified += u64::from(!e.verified);
    }
    c
}
