//! Bringing the index up to the log: each day's lines past the last one indexed, in one
//! transaction with the day's new position and the hash of its last indexed line. A day whose
//! file no longer holds that line where the index left it (cut after a power loss, rewritten)
//! is indexed again from its start; a day that cannot be read is named and the others go on.

use super::read::{compressed_since, day_of, open_at, LineAt};
use super::{codes, rows, Index, IndexError};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// What a catch-up did.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// Lines added.
    pub added: u64,
    /// Days indexed again from their start: the log no longer held what the index had read.
    pub redone: Vec<String>,
    /// Days that could not be read, and why; the index holds what it had of them.
    pub failed: Vec<IndexError>,
}

/// How far to read each day: to the end (a catch-up), or to given positions (the scratch
/// index `check` builds reads what the real one had read, no further).
#[derive(Clone, Copy)]
pub(crate) enum Until<'a> {
    End,
    Positions(&'a HashMap<String, u64>),
}

/// What the index holds of a day, to tell whether its file changed since.
struct DayMark {
    file: String,
    file_len: Option<u64>,
    indexed_to: u64,
}

/// Where the index left a day, read in the day's transaction.
struct Position {
    indexed_to: u64,
    /// Offset and hash of the last line indexed.
    last: Option<(u64, String)>,
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Index {
    /// Bring the index up to the log `files` (oldest first): the lines past each day's last
    /// indexed position, and no day the log no longer holds.
    pub fn catch_up(&mut self, files: &[PathBuf]) -> Result<CatchUp, IndexError> {
        self.catch_up_each(files, Until::End, |_, _| {})
    }

    /// Empty the index and index the whole log again (`records reindex`), telling `progress`
    /// how many files of how many are done. A callgate indexing beside it goes on with the
    /// same file.
    pub fn rebuild(
        &mut self,
        files: &[PathBuf],
        progress: impl FnMut(usize, usize),
    ) -> Result<CatchUp, IndexError> {
        self.clear()?;
        self.catch_up_each(files, Until::End, progress)
    }

    /// `catch_up` to `until`, telling `progress` how many files of how many are done. An
    /// error of the index file itself stops it; a day that cannot be read does not.
    pub(crate) fn catch_up_each(
        &mut self,
        files: &[PathBuf],
        until: Until,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<CatchUp, IndexError> {
        let days: Vec<String> = files.iter().map(|f| day_of(f)).collect();
        let marks = self.marks()?;
        let held: std::collections::HashSet<&String> = days.iter().collect();
        let gone: Vec<String> = marks
            .keys()
            .filter(|d| !held.contains(d))
            .cloned()
            .collect();
        self.forget(&gone)?;
        let mut done = CatchUp::default();
        for (i, (file, day)) in files.iter().zip(&days).enumerate() {
            let limit = match until {
                Until::End => None,
                Until::Positions(p) => Some(p.get(day).copied().unwrap_or(0)),
            };
            let file = &compressed_since(file);
            let len = changed_since(file, marks.get(day));
            if limit != Some(0) && len.is_some() {
                let len = len.flatten();
                match self.catch_up_day(file, day, len, limit) {
                    Ok((added, redone)) => {
                        done.added += added;
                        if redone {
                            done.redone.push(day.clone());
                        }
                    }
                    Err(e @ IndexError::Io { .. }) => done.failed.push(e),
                    Err(e) => return Err(e),
                }
            }
            progress(i + 1, files.len());
        }
        Ok(done)
    }

    fn marks(&self) -> Result<HashMap<String, DayMark>, IndexError> {
        let mut q = self
            .db
            .prepare("SELECT day, file, file_len, indexed_to FROM days")
            .map_err(self.sql())?;
        let rows = q
            .query_map([], |r| {
                let mark = DayMark {
                    file: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    file_len: r.get::<_, Option<i64>>(2)?.map(|n| n.max(0) as u64),
                    indexed_to: r.get::<_, i64>(3)?.max(0) as u64,
                };
                Ok((r.get::<_, String>(0)?, mark))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// The index's positions by day (what `check` reads the log to).
    pub(crate) fn positions(&self) -> Result<HashMap<String, u64>, IndexError> {
        Ok(self
            .marks()?
            .into_iter()
            .map(|(day, m)| (day, m.indexed_to))
            .collect())
    }

    /// One day's new lines, in one transaction with the day's new position: a crash leaves
    /// either both or neither, and the next catch-up reads from where this one started.
    /// Whether the day was indexed again from its start.
    fn catch_up_day(
        &mut self,
        file: &Path,
        day: &str,
        len: Option<u64>,
        limit: Option<u64>,
    ) -> Result<(u64, bool), IndexError> {
        let io = |source| IndexError::Io {
            file: file.display().to_string(),
            source,
        };
        let sql = self.sql_owned();
        // Immediate: the position read below is still ours when the transaction commits, even
        // with another process catching up beside this one.
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let mut at = position(&tx, day).map_err(&sql)?;
        let redone = at.indexed_to > 0 && !still_there(file, &at).map_err(io)?;
        if redone {
            let (lo, hi) = super::codes::day_places(day).unwrap_or((0, 0));
            tx.execute(
                "DELETE FROM entries WHERE place >= ?1 AND place < ?2",
                [lo, hi],
            )
            .map_err(&sql)?;
            at = Position {
                indexed_to: 0,
                last: None,
            };
        }
        let (mut reader, _) = open_at(file, at.indexed_to).map_err(io)?;
        let lines = Lines {
            tx: &tx,
            day,
            limit,
        };
        let Indexed { added, to, last } =
            lines
                .index(&mut reader, at.indexed_to)
                .map_err(|e| match e {
                    LinesError::Sql(source) => sql(source),
                    LinesError::Io(source) => io(source),
                })?;
        let last = last.or(at.last);
        tx.execute(
            "INSERT OR REPLACE INTO days (day, day_number, indexed_to, file, file_len, last_at,
                last_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                day,
                super::codes::day_number(day),
                to_i64(to),
                name_of(file),
                len.map(to_i64),
                last.as_ref().map(|l| to_i64(l.0)),
                last.map(|l| l.1)
            ],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok((added, redone))
    }
}

fn position(tx: &Transaction, day: &str) -> rusqlite::Result<Position> {
    let row = tx
        .query_row(
            "SELECT indexed_to, last_at, last_hash FROM days WHERE day = ?1",
            [day],
            |r| {
                let last = match (r.get::<_, Option<i64>>(1)?, r.get::<_, Option<String>>(2)?) {
                    (Some(at), Some(hash)) => Some((at.max(0) as u64, hash)),
                    _ => None,
                };
                Ok(Position {
                    indexed_to: r.get::<_, i64>(0)?.max(0) as u64,
                    last,
                })
            },
        )
        .optional()?;
    Ok(row.unwrap_or(Position {
        indexed_to: 0,
        last: None,
    }))
}

/// Whether the file still holds, where the index left it, the last line it indexed: the
/// line at its offset has its hash and ends at the position indexed.
fn still_there(file: &Path, at: &Position) -> std::io::Result<bool> {
    let Some((offset, hash)) = &at.last else {
        return Ok(false);
    };
    let mut line = Vec::new();
    if LineAt::open(file)?.read(*offset, &mut line).is_err() {
        return Ok(false);
    }
    let whole = line.last() == Some(&b'\n') && offset + line.len() as u64 == at.indexed_to;
    Ok(whole && crate::audit::chain::line_hash(&line[..line.len() - 1]) == *hash)
}

/// Whether `file` may hold lines the index has not read (`mark`: what the index holds of
/// its day), and if so its length now (None when it cannot be read: it is read anyway, to be
/// told why). A compressed day is final once indexed under its compressed name (no call to
/// the filesystem: five years of days cost nothing per pass); a plain one is unchanged while
/// its length is the one indexed.
fn changed_since(file: &Path, mark: Option<&DayMark>) -> Option<Option<u64>> {
    let same_name = mark.is_some_and(|m| m.file == name_of(file));
    if same_name && crate::audit::chain::is_compressed(file) {
        return None;
    }
    let len = std::fs::metadata(file).ok().map(|m| m.len());
    match mark {
        Some(m) if same_name && len.is_some() && m.file_len == len => None,
        _ => Some(len),
    }
}

enum LinesError {
    Sql(rusqlite::Error),
    Io(std::io::Error),
}

/// What one day's read added: lines, the position after the last whole line, and that
/// line's offset and hash.
struct Indexed {
    added: u64,
    to: u64,
    last: Option<(u64, String)>,
}

/// Rows of one day, added in its transaction.
struct Lines<'a> {
    tx: &'a Transaction<'a>,
    day: &'a str,
    /// Read no further than this position.
    limit: Option<u64>,
}

impl Lines<'_> {
    /// The records of `reader` from byte `from` on: how many lines, the position after the
    /// last whole line (a line still being written is indexed next time), and that line's
    /// offset and hash.
    fn index(&self, reader: &mut dyn BufRead, from: u64) -> Result<Indexed, LinesError> {
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT OR REPLACE INTO entries (place, number, day, kind, ts_ms, campaign,
                    verdict, reasons, disposition, call_id, decision_id, instance, action, who)
                 VALUES (?1, ?2, ?1 >> 40, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .map_err(LinesError::Sql)?;
        let (mut added, mut pos) = (0, from);
        let (mut line, mut last) = (Vec::with_capacity(2048), Vec::with_capacity(2048));
        let mut last_at = None;
        loop {
            if self.limit.is_some_and(|l| pos >= l) {
                break;
            }
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(LinesError::Io)?;
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            if let Some((kind, rows)) = rows::rows_of(&line[..n - 1]) {
                let place = codes::place(self.day, pos).ok_or_else(|| {
                    let e = format!(
                        "{}@{pos}: not a day and offset the index can hold",
                        self.day
                    );
                    LinesError::Io(std::io::Error::other(e))
                })?;
                for r in rows {
                    let row = params![
                        place,
                        codes::number(&r.number),
                        codes::kind(kind),
                        r.ts_ms,
                        r.campaign,
                        r.verdict,
                        r.reasons,
                        r.disposition,
                        r.call_id,
                        r.decision_id,
                        r.instance,
                        r.action,
                        r.who
                    ];
                    insert.execute(row).map_err(LinesError::Sql)?;
                }
                added += 1;
            }
            std::mem::swap(&mut line, &mut last);
            last_at = Some(pos);
            pos += n as u64;
        }
        let last = last_at.map(|at| (at, crate::audit::chain::line_hash(&last[..last.len() - 1])));
        Ok(Indexed {
            added,
            to: pos,
            last,
        })
    }
}
