//! The records index: decisions, call records and admin records by number, time, campaign,
//! verdict, disposition, Call-ID and decision id, in a SQLite file beside the audit log. A row
//! is a pointer (the day's file and the byte offset of the line), so a record is always read
//! from the log itself, never from the index. The index is a cache of the log: it catches up
//! by reading the log past the last line it indexed, a day the log no longer holds (pruned)
//! leaves it, and a file of another layout is rebuilt from the log.

mod catch_up;
mod check;
mod codes;
mod follow;
mod query;
mod read;
mod rows;

pub use catch_up::CatchUp;
pub(crate) use catch_up::Until;
pub use check::{check, Checked, Difference};
pub use follow::Progress;
pub(crate) use follow::{spawn_follower, FollowerMetrics};
pub use query::{Found, Pos, Query};
pub(crate) use read::{compressed_since, each_line};
pub use rows::Kind;

pub(crate) use read::day_of;

/// Whether the index can hold a line at `pos` (a day `audit-YYYY-MM-DD`, an offset under
/// 1 TiB).
pub fn holds(pos: &Pos) -> bool {
    codes::place(&pos.day, pos.offset).is_some()
}

use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};

/// The index's file name in the audit directory.
pub const FILE_NAME: &str = "records-index.sqlite";

/// The layout of the tables; an index file of another layout is dropped and rebuilt.
const LAYOUT: i64 = 6;

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

/// Rows are keyed by place (day and offset as one integer, see `codes`) and number (digits;
/// 0 for none). Searched by number within each day (a number's history is one seek per day
/// of the log, and a call's row goes into today's part of that index, which stays in the
/// cache, where an index by number alone takes each call at a random page), by time (a
/// period, a campaign's month) and by decision id (a call's decision). Campaign, verdict,
/// disposition and Call-ID are read from the rows of what else was asked: every index is paid
/// for by every call.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS days (
        day TEXT PRIMARY KEY, day_number INTEGER NOT NULL, indexed_to INTEGER NOT NULL,
        file TEXT, file_len INTEGER, last_at INTEGER, last_hash TEXT);
    CREATE TABLE IF NOT EXISTS entries (
        place INTEGER NOT NULL, number INTEGER NOT NULL, day INTEGER NOT NULL,
        kind INTEGER NOT NULL, ts_ms INTEGER,
        campaign TEXT, verdict TEXT, reasons TEXT, disposition TEXT, call_id TEXT,
        decision_id TEXT, instance TEXT, action TEXT, who TEXT,
        PRIMARY KEY (place, number)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS entries_by_day_number ON entries (day, number);
    CREATE INDEX IF NOT EXISTS entries_by_time ON entries (ts_ms);
    CREATE INDEX IF NOT EXISTS entries_by_decision ON entries (decision_id);
";

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
        // 64 MiB of page cache: the by-number index takes inserts all over (called numbers
        // come in no order), and past the cache each one is a page read.
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;",
        )
        .map_err(sql)?;
        // Checked inside the transaction: two processes opening an old file rebuild it once.
        db.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
        let layout: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if layout != LAYOUT {
            db.execute_batch(&format!(
                "DROP TABLE IF EXISTS calls; DROP TABLE IF EXISTS entries;
                 DROP TABLE IF EXISTS days; {SCHEMA} PRAGMA user_version = {LAYOUT};"
            ))
            .map_err(sql)?;
        }
        db.execute_batch("COMMIT").map_err(sql)?;
        Ok(Index { db, name })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        |source| IndexError::Sql {
            file: self.name.clone(),
            source,
        }
    }

    /// `sql`, not borrowing the index (for use beside a transaction).
    fn sql_owned(&self) -> impl Fn(rusqlite::Error) -> IndexError {
        let file = self.name.clone();
        move |source| IndexError::Sql {
            file: file.clone(),
            source,
        }
    }

    /// Empty the index, in one transaction (`records reindex` then fills it from the log): a
    /// callgate indexing beside it goes on with the same file.
    pub fn clear(&mut self) -> Result<(), IndexError> {
        self.db
            .execute_batch("BEGIN IMMEDIATE; DELETE FROM entries; DELETE FROM days; COMMIT;")
            .map_err(self.sql())
    }

    /// Drop the rows of `days` (pruned from the log).
    pub fn forget(&mut self, days: &[String]) -> Result<(), IndexError> {
        if days.is_empty() {
            return Ok(());
        }
        let sql = self.sql_owned();
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        for gone in days {
            if let Some((lo, hi)) = codes::day_places(gone) {
                tx.execute(
                    "DELETE FROM entries WHERE place >= ?1 AND place < ?2",
                    [lo, hi],
                )
                .map_err(&sql)?;
            }
            tx.execute("DELETE FROM days WHERE day = ?1", [gone])
                .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::export::CallFilter;

    fn call_line(number: &str, at: &str) -> String {
        format!(
            "{{\"ts\":\"{at}\",\"call\":{{\"called\":\"{number}\",\"invite_at\":\"{at}\",\"campaign\":\"c\",\"disposition\":\"answered\"}},\"prev\":\"00\"}}\n"
        )
    }

    fn numbers(index: &Index, filter: &CallFilter) -> usize {
        index.query(&Query::from(filter)).unwrap().len()
    }

    #[test]
    fn a_day_the_log_no_longer_holds_leaves_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("audit-2026-01-01.jsonl");
        let new = dir.path().join("audit-2026-01-02.jsonl");
        std::fs::write(&old, call_line("+14155550100", "2026-01-01T10:00:00.000Z")).unwrap();
        std::fs::write(&new, call_line("+14155550100", "2026-01-02T10:00:00.000Z")).unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        assert_eq!(
            index.catch_up(&[old.clone(), new.clone()]).unwrap().added,
            2
        );
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
        assert_eq!(index.catch_up(std::slice::from_ref(&day)).unwrap().added, 1);
        std::fs::write(&day, format!("{whole}{next}")).unwrap();
        assert_eq!(index.catch_up(std::slice::from_ref(&day)).unwrap().added, 1);
        assert_eq!(numbers(&index, &CallFilter::default()), 2);
    }

    /// After a power loss the day's file may hold less than the index had read, then grow
    /// past that again with other lines: the day is indexed again from its start, so every
    /// row points at the line the file holds now.
    #[test]
    fn a_day_cut_short_and_written_again_is_indexed_anew() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("audit-2026-01-01.jsonl");
        let a = call_line("+14155550100", "2026-01-01T10:00:00.000Z");
        let lost = call_line("+14155550101", "2026-01-01T10:00:01.000Z");
        std::fs::write(&day, format!("{a}{lost}")).unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        index.catch_up(std::slice::from_ref(&day)).unwrap();
        let after = call_line("+14155550199", "2026-01-01T10:00:02.000Z");
        let longer = call_line("+14155550198", "2026-01-01T10:00:03.000Z");
        std::fs::write(&day, format!("{a}{after}{longer}")).unwrap();
        let done = index.catch_up(std::slice::from_ref(&day)).unwrap();
        assert_eq!(done.redone, ["audit-2026-01-01"]);
        let called: Vec<String> = ["+14155550101", "+14155550199", "+14155550198"]
            .iter()
            .map(|n| {
                let f = CallFilter {
                    number: Some(n.to_string()),
                    ..CallFilter::default()
                };
                format!("{n}:{}", numbers(&index, &f))
            })
            .collect();
        assert_eq!(
            called,
            ["+14155550101:0", "+14155550199:1", "+14155550198:1"]
        );
    }

    /// A day that cannot be read is named; the days after it are indexed all the same.
    #[test]
    fn an_unreadable_day_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("audit-2026-01-01.jsonl.gz");
        let good = dir.path().join("audit-2026-01-02.jsonl");
        std::fs::write(&bad, "not gzip").unwrap();
        std::fs::write(&good, call_line("+14155550100", "2026-01-02T10:00:00.000Z")).unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        let done = index.catch_up(&[bad, good]).unwrap();
        assert_eq!(done.added, 1);
        assert_eq!(done.failed.len(), 1);
        assert!(done.failed[0]
            .to_string()
            .contains("audit-2026-01-01.jsonl.gz"));
    }
}
