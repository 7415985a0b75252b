//! Changes read from the shared database, applied to this instance's stores in their order,
//! and the cursor that says where to resume. Each store remembers the newest change it holds
//! (in its journal or file) and skips what it holds, under its write lock, so a change read
//! twice (after a crash between a store's write and the cursor's) is applied once.

use super::changes::{Change, Row};
use super::Parts;
use crate::lists::optouts::SharedOptOut;
use crate::policy::consent::ConsentStore;
use crate::policy::emergency::Emergency;
use chrono::{DateTime, Utc};
use std::path::Path;

/// What one batch of changes did here.
#[derive(Default, Debug)]
pub(crate) struct Applied {
    pub optouts: usize,
    pub consent: usize,
    pub emergency: usize,
    /// Rows that could not be applied (a record this instance refuses), named.
    pub refused: Vec<String>,
}

/// Apply `rows` (in order) to the stores. Blocking: the journals' fsyncs. A change this
/// instance finds invalid is refused (and named); one it cannot write is an error: the batch
/// is read again, and the instance is stale until it is written.
pub(crate) fn apply(parts: &Parts, rows: Vec<Row>) -> std::io::Result<Applied> {
    let mut applied = Applied::default();
    let mut optouts: Vec<SharedOptOut> = vec![];
    for row in rows {
        if !matches!(row.change, Change::OptOuts(_)) {
            applied.optouts += flush_optouts(parts, &mut optouts)?;
        }
        let seq = row.seq;
        match row.change {
            Change::OptOuts(entries) => {
                for e in entries {
                    match e.number.parse() {
                        Ok(number) => optouts.push(SharedOptOut {
                            seq,
                            number,
                            at: e.at.unwrap_or(row.at),
                            source: e.source,
                        }),
                        Err(_) => applied
                            .refused
                            .push(format!("change {seq}: opt-out `{}`", e.number)),
                    }
                }
            }
            Change::Consent(inputs) => match ConsentStore::check(&inputs) {
                Err(e) => applied.refused.push(format!("change {seq}: {e}")),
                Ok(()) => {
                    let added = parts.state.consent.add_shared(inputs, row.at, seq);
                    applied.consent += added.map_err(std::io::Error::other)?.len();
                }
            },
            Change::Emergency(closed) => match Emergency::check(&closed) {
                Err(e) => applied.refused.push(format!("change {seq}: {e}")),
                Ok(()) => {
                    let set = parts.state.emergency.set_shared(&closed, seq);
                    set.map_err(|e| std::io::Error::other(format!("{e:#}")))?;
                    applied.emergency += 1;
                }
            },
        }
    }
    applied.optouts += flush_optouts(parts, &mut optouts)?;
    Ok(applied)
}

/// A run of opt-outs in one write and one fsync.
fn flush_optouts(parts: &Parts, run: &mut Vec<SharedOptOut>) -> std::io::Result<usize> {
    if run.is_empty() {
        return Ok(0);
    }
    parts.lists.optouts.apply_shared(std::mem::take(run))
}

/// Where following resumes: the last change applied, and its time as the database stamped
/// it (what tells that change from another numbered the same in another database).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Cursor {
    pub seq: u64,
    pub at: Option<DateTime<Utc>>,
}

/// The cursor file: `seq` and `at` (0 and none when there is no file or it cannot be read:
/// everything is read again, and the stores skip what they hold). A file of an older callgate
/// holds the number alone.
pub(crate) fn cursor(path: &Path) -> Cursor {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut words = text.split_whitespace();
    let Some(seq) = words.next().and_then(|s| s.parse().ok()) else {
        return Cursor::default();
    };
    let at = words.next().and_then(|a| a.parse().ok());
    Cursor { seq, at }
}

/// Written after the stores: a cursor never runs ahead of them (a stale one costs a re-read).
pub(crate) fn set_cursor(path: &Path, c: Cursor) -> std::io::Result<()> {
    let at =
        c.at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
    crate::journal::replace_file(path, &[format!("{} {at}\n", c.seq).as_bytes()])
}
