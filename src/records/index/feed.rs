//! The index kept current from the writer's batches (`audit::summary::Batch`): what it
//! committed, already summarized, so the log is not read back and parsed. A batch that does
//! not start where the index stands (one dropped, the index replaced) is a gap: the follower
//! reads the file instead.

use super::catch_up::{advance, name_of, position, Moved, Position};
use super::put::Put;
use super::{codes, day_of, Index, IndexError};
use crate::audit::summary::Batch;
use rusqlite::{Transaction, TransactionBehavior};
use std::path::Path;

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
        let mut put = Put::new(&tx);
        let (mut added, mut gap, mut run) = (0, false, None::<Run>);
        for b in batches {
            if let Some(r) = run.take_if(|r| r.file != b.file) {
                r.end(&tx, &mut put)?;
            }
            let r = match &mut run {
                Some(r) => r,
                None => run.insert(Run::start(&tx, &b.file)?),
            };
            match r.add(&mut put, b)? {
                Some(n) => added += n,
                None => {
                    gap = true;
                    break;
                }
            }
        }
        if let Some(r) = run {
            r.end(&tx, &mut put)?;
        }
        tx.commit().map_err(&sql)?;
        Ok((added, gap))
    }
}

/// Consecutive batches of one file, added with one look at where the index stood in its day
/// and one move of that position: the writer commits as often as every half millisecond.
struct Run<'b> {
    file: &'b Path,
    day: String,
    day_number: Option<i64>,
    at: Position,
    /// Where the batches added so far end.
    to: u64,
    last: Option<(u64, String)>,
    rows: u64,
    earliest_ms: Option<i64>,
}

impl<'b> Run<'b> {
    fn start(tx: &Transaction, file: &'b Path) -> Result<Run<'b>, IndexError> {
        let day = day_of(file);
        let at = position(tx, &day).map_err(sql_of(file))?;
        Ok(Run {
            file,
            day_number: codes::day_number(&day),
            day,
            to: at.indexed_to,
            at,
            last: None,
            rows: 0,
            earliest_ms: None,
        })
    }

    /// One batch's lines past where the run stands: how many, or None for a gap.
    fn add(&mut self, put: &mut Put, b: &Batch) -> Result<Option<u64>, IndexError> {
        if self.to < b.from {
            return Ok(None);
        }
        if self.to >= b.end {
            return Ok(Some(0));
        }
        let (mut rows, sql) = (0, sql_of(&b.file));
        for (offset, s) in b.lines.iter().filter(|(o, _)| *o >= self.to) {
            let place = self.day_number.and_then(|d| codes::place_in(d, *offset));
            let place = place.ok_or_else(|| IndexError::Io {
                file: b.file.display().to_string(),
                source: std::io::Error::other(format!(
                    "{}@{offset}: not a day and offset the index can hold",
                    self.day
                )),
            })?;
            if let Some(t) = put.line(place, s).map_err(&sql)? {
                self.earliest_ms = Some(self.earliest_ms.map_or(t, |e| e.min(t)));
            }
            rows += 1;
        }
        if let Some(last) = b.last.as_ref().filter(|(o, _)| *o >= self.to) {
            self.last = Some(last.clone());
        }
        self.to = b.end;
        self.rows += rows;
        Ok(Some(rows))
    }

    /// Record the day's new position, once its rows are in.
    fn end(self, tx: &Transaction, put: &mut Put) -> Result<(), IndexError> {
        let sql = sql_of(self.file);
        put.flush().map_err(&sql)?;
        if self.to == self.at.indexed_to {
            return Ok(());
        }
        let moved = Moved {
            to: self.to,
            file: name_of(self.file),
            file_len: Some(self.to),
            last: self.last.or(self.at.last.clone()),
            rows: self.rows,
            earliest_ms: self.earliest_ms,
        };
        advance(tx, &self.day, &self.at, moved, false).map_err(sql)
    }
}

/// An SQL error as the index's error about `file` (the name is made only if there is one).
fn sql_of(file: &Path) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
    move |source| IndexError::Sql {
        file: file.display().to_string(),
        source,
    }
}
