//! The complaint dossier: for one number, every decision, call record, opt-out and consent in
//! the log, in order, each with its line's hash and whether the hash chain holds through it.
//! One document (HTML to print or attach, JSON to process) that answers "you called me".
//! Lines are found with the records index and read from the log itself.

mod html;

use super::export::FindError;
use super::index::{each_line, Index, Kind, Pos, Query};
use crate::audit::verify::{walk_day, DayWalk, VerifyError};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub use html::render as html;

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
    pub offset: u64,
    pub kind: Kind,
    pub ts: Option<String>,
    /// SHA-256 of the line's exact bytes (without its newline), as the next line names it.
    pub hash: String,
    /// Whether the hash chain holds from the start of its day's file through this line.
    pub verified: bool,
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
}

/// Gather the dossier from the log `files` (oldest first) through `index` (up to date).
pub fn build(
    files: &[PathBuf],
    index: &Index,
    ask: &Ask,
    now: DateTime<Utc>,
) -> Result<Dossier, FindError> {
    let found = index.query(&Query {
        number: Some(ask.number.clone()),
        from: ask.from,
        to: ask.to,
        ..Query::default()
    })?;
    let mut entries = Vec::with_capacity(found.len());
    let mut days: Vec<Day> = vec![];
    let mut walked: Option<(String, DayWalk)> = None;
    each_line(files, &found, |file, f, bytes| {
        if walked.as_ref().is_none_or(|(d, _)| *d != f.pos.day) {
            let w = walk(files, file)?;
            days.push(day_of(file, &w));
            walked = Some((f.pos.day.clone(), w));
        }
        let (_, w) = walked.as_ref().expect("walked above");
        let mut e = entry(file, &f.pos, f.kind, bytes, w)?;
        if !only_this_number(&mut e.record, &ask.number) {
            e.line = Some(String::from_utf8_lossy(bytes).into_owned());
        }
        entries.push(e);
        Ok(())
    })?;
    Ok(Dossier {
        number: ask.number.clone(),
        from: ask.from.map(stamp),
        to: ask.to.map(stamp),
        generated_at: stamp(now),
        generated_by: format!("callgate {}", env!("CARGO_PKG_VERSION")),
        counts: count(&entries),
        entries,
        days,
    })
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn differs(pos: &Pos, why: &str) -> FindError {
    FindError::Differs {
        file: pos.day.clone(),
        offset: pos.offset,
        why: why.to_string(),
    }
}

/// The chain of `file`, its first line checked against the seal of the file before it.
fn walk(files: &[PathBuf], file: &Path) -> Result<DayWalk, FindError> {
    let before = files
        .iter()
        .position(|f| super::index::compressed_since(f) == file)
        .and_then(|i| i.checked_sub(1))
        .map(|i| super::index::compressed_since(&files[i]));
    let expected = match before {
        Some(prev) => Some(
            crate::audit::chain::final_hash(&prev)
                .map_err(|source| VerifyError::Io {
                    file: prev.display().to_string(),
                    source,
                })?
                .0,
        ),
        None => None,
    };
    Ok(walk_day(file, expected.as_deref())?)
}

fn name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn day_of(file: &Path, walk: &DayWalk) -> Day {
    Day {
        file: name(file),
        starts_from: walk.starts_from.clone(),
        linked_to_previous: walk.linked,
        verified: walk.linked != Some(false) && walk.broken_from.is_none(),
        broken_at: walk.broken_from.as_ref().map(|b| b.0),
        why: match (&walk.broken_from, walk.linked) {
            (Some((_, why)), _) => Some(why.clone()),
            (None, Some(false)) => {
                Some("the first line does not name the previous file's seal".into())
            }
            _ => None,
        },
    }
}

fn entry(
    file: &Path,
    pos: &Pos,
    kind: Kind,
    bytes: &[u8],
    walk: &DayWalk,
) -> Result<Entry, FindError> {
    let line: Value =
        serde_json::from_slice(bytes).map_err(|e| differs(pos, &format!("not a record: {e}")))?;
    let ts = line.get("ts").and_then(Value::as_str).map(str::to_string);
    let record = match kind {
        Kind::Call => line.get("call").cloned(),
        Kind::Admin => line.get("admin").cloned(),
        Kind::Decision => Some(line),
    }
    .ok_or_else(|| differs(pos, "not the record the index names"))?;
    Ok(Entry {
        file: name(file),
        offset: pos.offset,
        kind,
        ts,
        hash: crate::audit::chain::line_hash(bytes),
        verified: walk.verified_at(pos.offset),
        record,
        line: None,
    })
}

/// A batch of consent records keeps, in the dossier, only the number's own (the line's hash
/// still covers the whole batch). Whether others were left out.
fn only_this_number(record: &mut Value, number: &str) -> bool {
    let consents = record
        .get_mut("detail")
        .and_then(|d| d.get_mut("consents"))
        .and_then(Value::as_array_mut);
    let Some(cs) = consents else { return false };
    let before = cs.len();
    cs.retain(|c| c.get("number").and_then(Value::as_str) == Some(number));
    cs.len() < before
}

fn count(entries: &[Entry]) -> Counts {
    let mut c = Counts::default();
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
