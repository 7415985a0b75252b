//! Bringing the index up to the log: each day's lines past the last one indexed, in one
//! transaction with the day's new position and the hash of its last indexed line. A day whose
//! file no longer holds that line where the index left it (cut after a power loss, rewritten)
//! is indexed again from its start; a day that cannot be read is named and the others go on.

use super::put::Put;
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
    /// Where the day's rows not yet in a closed segment begin.
    keyed_to: u64,
}

/// Where the index left a day, read in the day's transaction.
#[derive(Default)]
pub(super) struct Position {
    pub(super) indexed_to: u64,
    /// Offset and hash of the last line indexed.
    pub(super) last: Option<(u64, String)>,
    /// The open segment: where it begins, and its rows.
    keyed_to: u64,
    open_rows: i64,
    /// The earliest time of the day's rows (a call's is its INVITE's, maybe the day before).
    earliest_ms: Option<i64>,
}

pub(super) fn name_of(p: &Path) -> String {
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
            // A day is over once a later one began or it was compressed: its open segment
            // closes.
            let over = i + 1 < files.len() || crate::audit::chain::is_compressed(file);
            let len = changed_since(file, marks.get(day));
            if len.is_none() && over {
                if let Some(m) = marks.get(day).filter(|m| m.keyed_to < m.indexed_to) {
                    self.close_open_segment(day, m.keyed_to, m.indexed_to)?;
                }
            }
            if limit != Some(0) && len.is_some() {
                let len = len.flatten();
                match self.catch_up_day(file, day, len, limit, over) {
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
            .prepare("SELECT day, file, file_len, indexed_to, keyed_to FROM days")
            .map_err(self.sql())?;
        let rows = q
            .query_map([], |r| {
                let mark = DayMark {
                    file: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    file_len: r.get::<_, Option<i64>>(2)?.map(|n| n.max(0) as u64),
                    indexed_to: r.get::<_, i64>(3)?.max(0) as u64,
                    keyed_to: r.get::<_, i64>(4)?.max(0) as u64,
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
        over: bool,
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
            let places = super::codes::day_places(day).unwrap_or((0, 0));
            super::drop_rows(&tx, places).map_err(&sql)?;
            at = Position::default();
        }
        let (mut reader, _) = open_at(file, at.indexed_to).map_err(io)?;
        let lines = Lines {
            tx: &tx,
            day,
            limit,
        };
        let Indexed {
            added,
            to,
            last,
            earliest_ms,
        } = lines
            .index(&mut reader, at.indexed_to)
            .map_err(|e| match e {
                LinesError::Sql(source) => sql(source),
                LinesError::Io(source) => io(source),
            })?;
        let moved = Moved {
            to,
            file: name_of(file),
            file_len: len,
            last: last.or(at.last.clone()),
            rows: added,
            earliest_ms,
        };
        advance(&tx, day, &at, moved, over).map_err(&sql)?;
        tx.commit().map_err(&sql)?;
        Ok((added, redone))
    }
}

/// Where a day's index moved to: its new position, and what was added on the way.
pub(super) struct Moved {
    pub(super) to: u64,
    pub(super) file: String,
    pub(super) file_len: Option<u64>,
    pub(super) last: Option<(u64, String)>,
    pub(super) rows: u64,
    pub(super) earliest_ms: Option<i64>,
}

/// Record the day's new position (from `at`), closing its open segment when it is full or
/// the day is `over`.
pub(super) fn advance(
    tx: &Transaction,
    day: &str,
    at: &Position,
    m: Moved,
    over: bool,
) -> rusqlite::Result<()> {
    let earliest_ms = match (at.earliest_ms, m.earliest_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let open_rows = at.open_rows + to_i64(m.rows);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO days (day, day_number, indexed_to, file, file_len, last_at,
            last_hash, keyed_to, open_rows, earliest_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        day,
        codes::day_number(day),
        to_i64(m.to),
        m.file,
        m.file_len.map(to_i64),
        m.last.as_ref().map(|l| to_i64(l.0)),
        m.last.map(|l| l.1),
        to_i64(at.keyed_to),
        open_rows,
        earliest_ms
    ])?;
    if at.keyed_to < m.to && (over || open_rows >= super::SEGMENT_ROWS) {
        super::segment::close(tx, day, at.keyed_to, m.to)?;
    }
    Ok(())
}

pub(super) fn position(tx: &Transaction, day: &str) -> rusqlite::Result<Position> {
    let row = tx
        .prepare_cached(
            "SELECT indexed_to, last_at, last_hash, keyed_to, open_rows, earliest_ms
             FROM days WHERE day = ?1",
        )?
        .query_row([day], |r| {
            let last = match (r.get::<_, Option<i64>>(1)?, r.get::<_, Option<String>>(2)?) {
                (Some(at), Some(hash)) => Some((at.max(0) as u64, hash)),
                _ => None,
            };
            Ok(Position {
                indexed_to: r.get::<_, i64>(0)?.max(0) as u64,
                last,
                keyed_to: r.get::<_, i64>(3)?.max(0) as u64,
                open_rows: r.get(4)?,
                earliest_ms: r.get(5)?,
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

impl Index {
    /// Close the open segment of a day that is over and had nothing new to index.
    fn close_open_segment(&mut self, day: &str, from: u64, to: u64) -> Result<(), IndexError> {
        let sql = self.sql_owned();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let keyed_to: Option<i64> = tx
            .query_row("SELECT keyed_to FROM days WHERE day = ?1", [day], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&sql)?;
        // Another process may have closed it since the marks were read.
        if keyed_to == Some(to_i64(from)) {
            super::segment::close(&tx, day, from, to).map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
    }
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
    earliest_ms: Option<i64>,
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
        let mut put = Put::new(self.tx);
        let mut earliest_ms: Option<i64> = None;
        let day = codes::day_number(self.day);
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
            if let Some(summary) = rows::summary_of(&line[..n - 1]) {
                let place = day.and_then(|d| codes::place_in(d, pos)).ok_or_else(|| {
                    let e = format!(
                        "{}@{pos}: not a day and offset the index can hold",
                        self.day
                    );
                    LinesError::Io(std::io::Error::other(e))
                })?;
                let at = put.line(place, &summary).map_err(LinesError::Sql)?;
                if let Some(t) = at {
                    earliest_ms = Some(earliest_ms.map_or(t, |e| e.min(t)));
                }
                added += 1;
            }
            std::mem::swap(&mut line, &mut last);
            last_at = Some(pos);
            pos += n as u64;
        }
        put.flush().map_err(LinesError::Sql)?;
        let last = last_at.map(|at| (at, crate::audit::chain::line_hash(&last[..last.len() - 1])));
        Ok(Indexed {
            added,
            to: pos,
            last,
            earliest_ms,
        })
    }
}
