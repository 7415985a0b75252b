//! The records index: decisions, call records and admin records by number, time, campaign,
//! verdict, disposition, Call-ID and decision id, in a SQLite file beside the audit log. A row
//! is a pointer (the day's file and the byte offset of the line), so a record is always read
//! from the log itself, never from the index. The index is a cache of the log: it catches up
//! by reading the log past the last line it indexed, a day the log no longer holds (pruned)
//! leaves it, and a file of another layout is rebuilt from the log.

mod check;
mod follow;
mod read;
mod rows;

pub use check::{check, Checked, Difference};
pub(crate) use follow::{spawn_follower, FollowerMetrics};
pub(crate) use read::{compressed_since, each_line};
pub use rows::Kind;

use super::export::CallFilter;
use chrono::{DateTime, Utc};
use read::{day_of, open_at};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The index's file name in the audit directory.
pub const FILE_NAME: &str = "records-index.sqlite";

/// The layout of the tables; an index file of another layout is dropped and rebuilt.
const LAYOUT: i64 = 2;

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
    CREATE TABLE IF NOT EXISTS days (
        day TEXT PRIMARY KEY, indexed_to INTEGER NOT NULL, file TEXT, file_len INTEGER);
    CREATE TABLE IF NOT EXISTS entries (
        day TEXT NOT NULL, offset INTEGER NOT NULL, number TEXT NOT NULL,
        kind TEXT NOT NULL, ts_ms INTEGER, campaign TEXT, verdict TEXT, reasons TEXT,
        disposition TEXT, call_id TEXT, decision_id TEXT, instance TEXT, action TEXT, who TEXT,
        PRIMARY KEY (day, offset, number)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS entries_by_number ON entries (number, ts_ms);
    CREATE INDEX IF NOT EXISTS entries_by_campaign ON entries (campaign, ts_ms);
    CREATE INDEX IF NOT EXISTS entries_by_time ON entries (ts_ms);
    CREATE INDEX IF NOT EXISTS entries_by_call_id ON entries (call_id);
    CREATE INDEX IF NOT EXISTS entries_by_decision ON entries (decision_id);
";

/// A place in the log: the day and the byte offset of a line. Pages of answers continue
/// after one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    pub day: String,
    pub offset: u64,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.day, self.offset)
    }
}

impl std::str::FromStr for Pos {
    type Err = String;
    fn from_str(s: &str) -> Result<Pos, String> {
        let (day, offset) = s
            .split_once('@')
            .ok_or_else(|| format!("`{s}`: expected DAY@OFFSET, as a page's `next` gives"))?;
        let offset = offset
            .parse()
            .map_err(|_| format!("`{s}`: the offset is not a number"))?;
        Ok(Pos {
            day: day.to_string(),
            offset,
        })
    }
}

/// What a query keeps. Times compare with a decision's or an admin record's time and a call's
/// INVITE. Empty `kinds`: every kind.
#[derive(Default)]
pub struct Query {
    pub number: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub campaign: Option<String>,
    pub kinds: Vec<Kind>,
    pub verdict: Option<String>,
    pub disposition: Option<String>,
    pub call_id: Option<String>,
    pub decision_id: Option<String>,
    /// Only lines after this one (the previous page's last).
    pub after: Option<Pos>,
    pub limit: Option<u32>,
}

impl From<&CallFilter> for Query {
    fn from(f: &CallFilter) -> Query {
        Query {
            number: f.number.clone(),
            from: f.from,
            to: f.to,
            campaign: f.campaign.clone(),
            kinds: vec![Kind::Call],
            disposition: f.disposition.map(|d| d.as_str().to_string()),
            ..Query::default()
        }
    }
}

/// One line a query found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    pub pos: Pos,
    pub kind: Kind,
}

/// What the index holds of a day, to tell whether its file changed since.
struct DayMark {
    indexed_to: u64,
    file: String,
    file_len: u64,
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Index {
    /// The index in `dir` (the audit directory), created when missing, emptied when it has
    /// another layout (the next catch-up fills it from the log).
    pub fn open(dir: &Path) -> Result<Index, IndexError> {
        let path = dir.join(FILE_NAME);
        let name = path.display().to_string();
        Index::with(Connection::open(&path), name)
    }

    /// An index in the file `path` (a scratch one: `check` builds one beside the real one).
    pub(crate) fn at(path: &Path) -> Result<Index, IndexError> {
        Index::with(Connection::open(path), path.display().to_string())
    }

    /// An index in memory, gone when dropped: what a scan of the log builds when there is no
    /// index file to use, and what `check` compares the file with.
    pub fn in_memory() -> Result<Index, IndexError> {
        Index::with(Connection::open_in_memory(), "<memory>".into())
    }

    fn with(db: rusqlite::Result<Connection>, name: String) -> Result<Index, IndexError> {
        let sql = |source| IndexError::Sql {
            file: name.clone(),
            source,
        };
        let db = db.map_err(sql)?;
        // Several processes may catch up at once (callgate, a `records find`): wait for the
        // other's transaction instead of failing.
        db.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql)?;
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(sql)?;
        let layout: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if layout != LAYOUT {
            db.execute_batch(&format!(
                "BEGIN IMMEDIATE; DROP TABLE IF EXISTS calls; DROP TABLE IF EXISTS entries;
                 DROP TABLE IF EXISTS days; {SCHEMA} PRAGMA user_version = {LAYOUT}; COMMIT;"
            ))
            .map_err(sql)?;
        }
        Ok(Index { db, name })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        |source| IndexError::Sql {
            file: self.name.clone(),
            source,
        }
    }

    /// Bring the index up to the log `files` (oldest first): the lines past each day's last
    /// indexed position, and no day the log no longer holds. Returns the lines added.
    pub fn catch_up(&mut self, files: &[PathBuf]) -> Result<u64, IndexError> {
        self.catch_up_each(files, |_, _| {})
    }

    /// `catch_up`, telling `progress` how many files of how many are done.
    pub fn catch_up_each(
        &mut self,
        files: &[PathBuf],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<u64, IndexError> {
        let days: Vec<String> = files.iter().map(|f| day_of(f)).collect();
        let marks = self.marks()?;
        let gone: Vec<String> = marks
            .keys()
            .filter(|d| !days.contains(d))
            .cloned()
            .collect();
        self.forget(&gone)?;
        let mut added = 0;
        for (i, (file, day)) in files.iter().zip(&days).enumerate() {
            if let Some(len) = changed_since(file, marks.get(day)) {
                added += self.catch_up_day(file, day, len)?;
            }
            progress(i + 1, files.len());
        }
        Ok(added)
    }

    fn marks(&self) -> Result<HashMap<String, DayMark>, IndexError> {
        let mut q = self
            .db
            .prepare("SELECT day, indexed_to, file, file_len FROM days")
            .map_err(self.sql())?;
        let rows = q
            .query_map([], |r| {
                let n = |i| {
                    r.get::<_, Option<i64>>(i)
                        .map(|v| v.unwrap_or(0).max(0) as u64)
                };
                let mark = DayMark {
                    indexed_to: n(1)?,
                    file: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    file_len: n(3)?,
                };
                Ok((r.get::<_, String>(0)?, mark))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Drop the rows of `days` (pruned from the log).
    pub fn forget(&mut self, days: &[String]) -> Result<(), IndexError> {
        let name = self.name.clone();
        let sql = |source| IndexError::Sql {
            file: name.clone(),
            source,
        };
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        for gone in days {
            tx.execute("DELETE FROM entries WHERE day = ?1", [gone])
                .map_err(sql)?;
            tx.execute("DELETE FROM days WHERE day = ?1", [gone])
                .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// One day's new lines, in one transaction with the day's new position: a crash leaves
    /// either both or neither, and the next catch-up reads from where this one started.
    fn catch_up_day(&mut self, file: &Path, day: &str, len: u64) -> Result<u64, IndexError> {
        let io = |source| IndexError::Io {
            file: file.display().to_string(),
            source,
        };
        let name = self.name.clone();
        let sql = |source| IndexError::Sql {
            file: name.clone(),
            source,
        };
        // Immediate: the position read below is still ours when the transaction commits, even
        // with another process catching up beside this one.
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let from: i64 = tx
            .query_row("SELECT indexed_to FROM days WHERE day = ?1", [day], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?
            .unwrap_or(0);
        let from = u64::try_from(from).unwrap_or(0);
        let (mut reader, skipped) = open_at(file, from).map_err(io)?;
        if skipped < from {
            return Err(io(std::io::Error::other(format!(
                "shorter than its index ({skipped} < {from} bytes): run `callgate records reindex`"
            ))));
        }
        let (added, to) = index_lines(&tx, &mut reader, day, from).map_err(|e| match e {
            LinesError::Sql(source) => sql(source),
            LinesError::Io(source) => io(source),
        })?;
        tx.execute(
            "INSERT OR REPLACE INTO days (day, indexed_to, file, file_len) VALUES (?1, ?2, ?3, ?4)",
            params![day, to as i64, name_of(file), len as i64],
        )
        .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(added)
    }

    /// Where the call records `filter` keeps are, in log order.
    pub fn find(&self, filter: &CallFilter) -> Result<Vec<(String, u64)>, IndexError> {
        let found = self.query(&Query::from(filter))?;
        Ok(found
            .into_iter()
            .map(|f| (f.pos.day, f.pos.offset))
            .collect())
    }

    /// The lines `q` keeps, in log order, at most `q.limit`.
    pub fn query(&self, q: &Query) -> Result<Vec<Found>, IndexError> {
        let (clause, args) = where_clause(q);
        let limit = q.limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
        let sql = format!(
            "SELECT DISTINCT day, offset, kind FROM entries {clause} ORDER BY day, offset{limit}"
        );
        let mut stmt = self.db.prepare(&sql).map_err(self.sql())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                let kind: String = r.get(2)?;
                Ok(Found {
                    pos: Pos {
                        day: r.get(0)?,
                        offset: r.get::<_, i64>(1)?.max(0) as u64,
                    },
                    kind: Kind::parse(&kind).unwrap_or(Kind::Admin),
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}

/// Drop the rows of removed log `files` from the index in `dir`, when there is one: the index
/// never points at a day the log no longer holds. A failure is logged; the next catch-up
/// drops them.
pub(crate) fn forget_files(dir: &Path, files: &[PathBuf]) {
    if !dir.join(FILE_NAME).exists() {
        return;
    }
    let days: Vec<String> = files.iter().map(|f| day_of(f)).collect();
    if let Err(e) = Index::open(dir).and_then(|mut i| i.forget(&days)) {
        tracing::warn!(error = %e, "records index: pruned days stay in it until its next pass");
    }
}

/// The file's length when it may hold lines the index has not read (`mark`: what the index
/// holds of its day); None when it cannot. A compressed day is final once indexed under its
/// compressed name; a plain one, when its length is the one indexed.
fn changed_since(file: &Path, mark: Option<&DayMark>) -> Option<u64> {
    let same_name = mark.is_some_and(|m| m.file == name_of(file));
    if same_name && crate::audit::chain::is_compressed(file) {
        return None;
    }
    // A file that cannot be read is read anyway, to be told why.
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(u64::MAX);
    match mark {
        Some(m) if same_name && m.file_len == len && m.indexed_to <= len => None,
        _ => Some(len),
    }
}

fn where_clause(q: &Query) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let mut wheres: Vec<String> = vec![];
    let mut args: Vec<V> = vec![];
    let mut arg = |w: &str, v: V| {
        args.push(v);
        wheres.push(w.replace('?', &format!("?{}", args.len())));
    };
    let text = |s: &Option<String>| s.clone().map(V::Text);
    for (col, v) in [
        ("number = ?", text(&q.number)),
        ("campaign = ?", text(&q.campaign)),
        ("verdict = ?", text(&q.verdict)),
        ("disposition = ?", text(&q.disposition)),
        ("call_id = ?", text(&q.call_id)),
        ("decision_id = ?", text(&q.decision_id)),
        (
            "ts_ms >= ?",
            q.from.map(|t| V::Integer(t.timestamp_millis())),
        ),
        ("ts_ms < ?", q.to.map(|t| V::Integer(t.timestamp_millis()))),
    ] {
        if let Some(v) = v {
            arg(col, v);
        }
    }
    if let Some(p) = &q.after {
        args.push(V::Text(p.day.clone()));
        args.push(V::Integer(p.offset.min(i64::MAX as u64) as i64));
        let (d, o) = (args.len() - 1, args.len());
        wheres.push(format!("(day > ?{d} OR (day = ?{d} AND offset > ?{o}))"));
    }
    if !q.kinds.is_empty() {
        let kinds: Vec<String> = q
            .kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        wheres.push(format!("kind IN ({})", kinds.join(",")));
    }
    let clause = match wheres.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", wheres.join(" AND ")),
    };
    (clause, args)
}

enum LinesError {
    Sql(rusqlite::Error),
    Io(std::io::Error),
}

/// The records of `reader` from byte `from` on, as rows of `day`: how many lines, and the
/// position after the last whole line (a line still being written is indexed next time).
fn index_lines(
    tx: &rusqlite::Transaction,
    reader: &mut dyn BufRead,
    day: &str,
    from: u64,
) -> Result<(u64, u64), LinesError> {
    let mut insert = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO entries (day, offset, number, kind, ts_ms, campaign, verdict,
                reasons, disposition, call_id, decision_id, instance, action, who)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )
        .map_err(LinesError::Sql)?;
    let (mut added, mut pos) = (0, from);
    let mut line = Vec::with_capacity(2048);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(LinesError::Io)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((added, pos));
        }
        if let Some((kind, rows)) = rows::rows_of(&line[..n - 1]) {
            for r in rows {
                let row = params![
                    day,
                    pos as i64,
                    r.number,
                    kind.as_str(),
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
        pos += n as u64;
    }
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
