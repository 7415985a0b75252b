//! The records index: call records by called number, time, campaign and disposition, in a
//! SQLite file beside the audit log. A row is a pointer (the day's file and the byte offset of
//! the line), so a record is always read from the log itself, never from the index. Before it
//! answers, the index reads the log past the last line it indexed, so it is never behind what
//! it answers from; a day the log no longer holds (pruned) leaves the index too.

use super::export::CallFilter;
use crate::audit::chain::open_lines;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

/// The index's file name in the audit directory.
pub const FILE_NAME: &str = "records-index.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{file}: {source}")]
    Sql {
        file: String,
        source: rusqlite::Error,
    },
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

pub struct Index {
    db: Connection,
    name: String,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = NORMAL;
    CREATE TABLE IF NOT EXISTS days (day TEXT PRIMARY KEY, indexed_to INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS calls (
        day TEXT NOT NULL, offset INTEGER NOT NULL,
        called TEXT, invite_ms INTEGER, campaign TEXT, disposition TEXT,
        PRIMARY KEY (day, offset)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS calls_by_number ON calls (called, invite_ms);
    CREATE INDEX IF NOT EXISTS calls_by_campaign ON calls (campaign, invite_ms);
    CREATE INDEX IF NOT EXISTS calls_by_time ON calls (invite_ms);
";

/// `audit-2026-12-01.jsonl` and its compressed form are the same day.
fn day_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.trim_end_matches(".gz")
        .trim_end_matches(".jsonl")
        .to_string()
}

impl Index {
    /// The index in `dir` (the audit directory), created when missing.
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        let path = dir.join(FILE_NAME);
        let name = path.display().to_string();
        let sql = |source| IndexError::Sql {
            file: name.clone(),
            source,
        };
        let db = Connection::open(&path).map_err(sql)?;
        db.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Index { db, name })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        |source| IndexError::Sql {
            file: self.name.clone(),
            source,
        }
    }

    /// Bring the index up to the log `files` (oldest first): the lines past each day's last
    /// indexed position, and no day the log no longer holds. Returns the call lines added.
    pub fn catch_up(&mut self, files: &[PathBuf]) -> Result<u64, IndexError> {
        let days: Vec<String> = files.iter().map(|f| day_of(f)).collect();
        self.forget_days_not_in(&days)?;
        let mut added = 0;
        for (file, day) in files.iter().zip(&days) {
            added += self.catch_up_day(file, day)?;
        }
        Ok(added)
    }

    fn forget_days_not_in(&mut self, days: &[String]) -> Result<(), IndexError> {
        let known: Vec<String> = {
            let mut q = self
                .db
                .prepare("SELECT day FROM days")
                .map_err(self.sql())?;
            let rows = q.query_map([], |r| r.get(0)).map_err(self.sql())?;
            rows.collect::<Result<_, _>>().map_err(self.sql())?
        };
        for gone in known.iter().filter(|d| !days.contains(d)) {
            self.db
                .execute("DELETE FROM calls WHERE day = ?1", [gone])
                .map_err(self.sql())?;
            self.db
                .execute("DELETE FROM days WHERE day = ?1", [gone])
                .map_err(self.sql())?;
        }
        Ok(())
    }

    /// One day's new lines, in one transaction with the day's new position: a crash leaves
    /// either both or neither, and the next catch-up reads from where this one started.
    fn catch_up_day(&mut self, file: &Path, day: &str) -> Result<u64, IndexError> {
        let io = |source| IndexError::Io {
            file: file.display().to_string(),
            source,
        };
        let from: i64 = self
            .db
            .query_row("SELECT indexed_to FROM days WHERE day = ?1", [day], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql())?
            .unwrap_or(0);
        let from = u64::try_from(from).unwrap_or(0);
        let (mut reader, skipped) = open_at(file, from).map_err(io)?;
        if skipped < from {
            return Err(io(std::io::Error::other(format!(
                "shorter than its index ({skipped} < {from} bytes): run `callgate records reindex`"
            ))));
        }
        let name = self.name.clone();
        let sql = |source| IndexError::Sql {
            file: name.clone(),
            source,
        };
        let tx = self.db.transaction().map_err(sql)?;
        let (added, to) = index_lines(&tx, &mut reader, day, from).map_err(|e| match e {
            LinesError::Sql(source) => sql(source),
            LinesError::Io(source) => io(source),
        })?;
        tx.execute(
            "INSERT OR REPLACE INTO days (day, indexed_to) VALUES (?1, ?2)",
            params![day, to as i64],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(added)
    }

    /// Where the call records `filter` keeps are: (day, offset), in log order.
    pub fn find(&self, filter: &CallFilter) -> Result<Vec<(String, u64)>, IndexError> {
        let mut wheres = vec![];
        let mut args: Vec<rusqlite::types::Value> = vec![];
        let mut arg = |w: &str, v: rusqlite::types::Value| {
            args.push(v);
            wheres.push(w.replace('?', &format!("?{}", args.len())));
        };
        if let Some(n) = &filter.number {
            arg("called = ?", n.clone().into());
        }
        if let Some(c) = &filter.campaign {
            arg("campaign = ?", c.clone().into());
        }
        if let Some(d) = filter.disposition {
            arg("disposition = ?", d.as_str().to_string().into());
        }
        if let Some(f) = filter.from {
            arg("invite_ms >= ?", f.timestamp_millis().into());
        }
        if let Some(t) = filter.to {
            arg("invite_ms < ?", t.timestamp_millis().into());
        }
        let clause = match wheres.is_empty() {
            true => String::new(),
            false => format!("WHERE {}", wheres.join(" AND ")),
        };
        let q = format!("SELECT day, offset FROM calls {clause} ORDER BY day, offset");
        let mut stmt = self.db.prepare(&q).map_err(self.sql())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(self.sql())?;
        rows.map(|r| r.map(|(day, at)| (day, u64::try_from(at).unwrap_or(0))))
            .collect::<Result<_, _>>()
            .map_err(self.sql())
    }
}

enum LinesError {
    Sql(rusqlite::Error),
    Io(std::io::Error),
}

/// The call lines of `reader` from byte `from` on, as rows of `day`: how many, and the
/// position after the last whole line (a line still being written is indexed next time).
fn index_lines(
    tx: &rusqlite::Transaction,
    reader: &mut dyn BufRead,
    day: &str,
    from: u64,
) -> Result<(u64, u64), LinesError> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO calls (day, offset, called, invite_ms, campaign, disposition)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(LinesError::Sql)?;
    let (mut added, mut pos) = (0, from);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(LinesError::Io)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((added, pos));
        }
        let call = super::line::is_call_line(&line)
            .then(|| serde_json::from_slice::<Value>(&line).ok())
            .flatten()
            .and_then(|mut r| r.get_mut("call").map(Value::take));
        if let Some(c) = call {
            let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
            let at = s("invite_at")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.timestamp_millis());
            let row = params![
                day,
                pos as i64,
                s("called"),
                at,
                s("campaign"),
                s("disposition")
            ];
            insert.execute(row).map_err(LinesError::Sql)?;
            added += 1;
        }
        pos += n as u64;
    }
}

/// The day's lines from byte `at`, and how far it got (short of `at`: the file is shorter).
/// A plain file seeks there; a compressed day is read through to it.
fn open_at(file: &Path, at: u64) -> std::io::Result<(Box<dyn BufRead>, u64)> {
    use std::io::Seek;
    if !crate::audit::chain::is_compressed(file) {
        let mut f = std::fs::File::open(file)?;
        let len = f.metadata()?.len();
        let at = at.min(len);
        f.seek(std::io::SeekFrom::Start(at))?;
        return Ok((Box::new(std::io::BufReader::with_capacity(1 << 16, f)), at));
    }
    let mut reader = open_lines(file)?;
    let skipped = std::io::copy(&mut (&mut reader).take(at), &mut std::io::sink())?;
    Ok((reader, skipped))
}

/// Reads lines at given offsets of one day's file, in increasing order: a plain file seeks to
/// each line, a compressed day is read through.
pub(crate) enum LineAt {
    Plain(std::io::BufReader<std::fs::File>),
    Compressed { reader: Box<dyn BufRead>, pos: u64 },
}

impl LineAt {
    pub(crate) fn open(file: &Path) -> std::io::Result<LineAt> {
        Ok(match crate::audit::chain::is_compressed(file) {
            false => LineAt::Plain(std::io::BufReader::new(std::fs::File::open(file)?)),
            true => LineAt::Compressed {
                reader: open_lines(file)?,
                pos: 0,
            },
        })
    }

    /// The line at `offset` (not before the last one read, for a compressed day).
    pub(crate) fn read(&mut self, offset: u64, line: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Seek;
        line.clear();
        let n = match self {
            LineAt::Plain(f) => {
                f.seek(std::io::SeekFrom::Start(offset))?;
                f.read_until(b'\n', line)?
            }
            LineAt::Compressed { reader, pos } => {
                let gap = offset.checked_sub(*pos).ok_or_else(|| {
                    std::io::Error::other(format!("offset {offset} is behind {pos}"))
                })?;
                let skipped = std::io::copy(&mut reader.take(gap), &mut std::io::sink())?;
                let n = if skipped == gap {
                    reader.read_until(b'\n', line)?
                } else {
                    0
                };
                *pos = offset + n as u64;
                n
            }
        };
        match n {
            0 => Err(std::io::Error::other(format!(
                "no line at offset {offset}: the log is shorter than its index"
            ))),
            _ => Ok(()),
        }
    }
}

/// The file of `day` among the log's files.
pub(crate) fn file_of<'a>(files: &'a [PathBuf], day: &str) -> Option<&'a PathBuf> {
    files.iter().find(|f| day_of(f) == day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_line(number: &str, at: &str) -> String {
        format!(
            "{{\"ts\":\"{at}\",\"call\":{{\"called\":\"{number}\",\"invite_at\":\"{at}\",\"campaign\":\"c\",\"disposition\":\"answered\"}},\"prev\":\"00\"}}\n"
        )
    }

    fn numbers(index: &Index, filter: &CallFilter) -> usize {
        index.find(filter).unwrap().len()
    }

    #[test]
    fn a_day_the_log_no_longer_holds_leaves_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("audit-2026-01-01.jsonl");
        let new = dir.path().join("audit-2026-01-02.jsonl");
        std::fs::write(&old, call_line("+14155550100", "2026-01-01T10:00:00.000Z")).unwrap();
        std::fs::write(&new, call_line("+14155550100", "2026-01-02T10:00:00.000Z")).unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        assert_eq!(index.catch_up(&[old.clone(), new.clone()]).unwrap(), 2);
        std::fs::remove_file(&old).unwrap();
        index.catch_up(&[new]).unwrap();
        assert_eq!(numbers(&index, &CallFilter::default()), 1);
    }

    /// A line still being written (no newline yet) is indexed once it is whole, not before.
    #[test]
    fn a_line_without_its_newline_waits_for_the_next_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("audit-2026-01-01.jsonl");
        let whole = call_line("+14155550100", "2026-01-01T10:00:00.000Z");
        let next = call_line("+14155550101", "2026-01-01T10:00:01.000Z");
        std::fs::write(&day, format!("{whole}{}", next.trim_end())).unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        assert_eq!(index.catch_up(std::slice::from_ref(&day)).unwrap(), 1);
        std::fs::write(&day, format!("{whole}{next}")).unwrap();
        assert_eq!(index.catch_up(std::slice::from_ref(&day)).unwrap(), 1);
        assert_eq!(numbers(&index, &CallFilter::default()), 2);
    }
}
