//! The index kept current from the writer's batches (`audit::summary::Batch`): what it
//! committed, already summarized, so the log is not read back and parsed. A batch that does
//! not start where the index stands (one dropped, the index replaced) is a gap: the follower
//! reads the file instead.

use super::catch_up::{advance, name_of, position, Moved, Put};
use super::{codes, day_of, Index, IndexError};
use crate::audit::summary::Batch;
use rusqlite::{Transaction, TransactionBehavior};

impl Index {
    /// Add the batches' lines past where the index stands in their day, in one transaction:
    /// how many, and whether a batch started past where the index stands (lines between were
    /// never fed: the caller reads them from the file; the batches after it are not added).
    pub(crate) fn apply(&mut self, batches: &[Batch]) -> Result<(u64, bool), IndexError> {
        let sql = self.sql_owned();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let (mut added, mut gap) = (0, false);
        for b in batches {
            match apply_one(&tx, b)? {
                Some(n) => added += n,
                None => {
                    gap = true;
                    break;
                }
            }
        }
        tx.commit().map_err(&sql)?;
        Ok((added, gap))
    }
}

/// One batch, in the caller's transaction: its rows added, or None for a gap.
fn apply_one(tx: &Transaction, b: &Batch) -> Result<Option<u64>, IndexError> {
    let day = day_of(&b.file);
    let sql = |source| IndexError::Sql {
        file: b.file.display().to_string(),
        source,
    };
    let at = position(tx, &day).map_err(sql)?;
    if at.indexed_to < b.from {
        return Ok(None);
    }
    if at.indexed_to >= b.end {
        return Ok(Some(0));
    }
    let mut put = Put::new(tx).map_err(sql)?;
    let (mut rows, mut earliest_ms) = (0, None::<i64>);
    let day_number = codes::day_number(&day);
    for (offset, s) in b.lines.iter().filter(|(o, _)| *o >= at.indexed_to) {
        let place = day_number.and_then(|d| codes::place_in(d, *offset));
        let place = place.ok_or_else(|| IndexError::Io {
            file: b.file.display().to_string(),
            source: std::io::Error::other(format!(
                "{day}@{offset}: not a day and offset the index can hold"
            )),
        })?;
        if let Some(t) = put.line(place, s).map_err(sql)? {
            earliest_ms = Some(earliest_ms.map_or(t, |e| e.min(t)));
        }
        rows += 1;
    }
    let last = b.last.clone().filter(|(o, _)| *o >= at.indexed_to);
    let moved = Moved {
        to: b.end,
        file: name_of(&b.file),
        file_len: Some(b.end),
        last: last.or(at.last.clone()),
        rows,
        earliest_ms,
    };
    advance(tx, &day, &at, moved, false).map_err(sql)?;
    Ok(Some(rows))
}
