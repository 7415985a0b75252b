//! The records index: decisions, call records and admin records by number, time, campaign,
//! verdict, disposition, Call-ID and decision id, in a SQLite file beside the audit log. A row
//! is a pointer (the day's file and the byte offset of the line), so a record is always read
//! from the log itself, never from the index. The index is a cache of the log: it catches up
//! by reading the log past the last line it indexed, a day the log no longer holds (pruned)
//! leaves it, and a file of another layout is rebuilt from the log.

mod catch_up;
mod check;
mod codes;
mod feed;
mod follow;
mod names;
mod put;
mod query;
mod read;
mod rows;
mod segment;
mod tally;

pub use catch_up::CatchUp;
pub(crate) use catch_up::Until;
pub use check::{check, Checked, Difference};
pub use follow::Progress;
pub(crate) use follow::{spawn_follower, FollowerMetrics};
pub use query::{Found, Pos, Query};
pub(crate) use read::{compressed_since, each_line, open_at};
pub(crate) use rows::summary_of;
pub use rows::Kind;
pub use tally::Tally;

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
const LAYOUT: i64 = 10;

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

/// A row is a line, keyed by its place (day and offset as one integer, see `codes`): the
/// table only ever grows at its end. A line naming several numbers (a batch of consents) has
/// its first in `entries` and the others in `more_numbers`.
///
/// A row is seven integers, written by every call twice: what is text in the log is a
/// reference here. Kind, verdict, reasons, disposition, the type of consent a decision used,
/// and an admin record's action and who did it are one `facets` row (a few hundred combinations); a campaign and a deciding
/// instance are `names`; a Call-ID is kept as its 64-bit hash (`codes::call_key`), a decision
/// id as its instance's name and its sequence number. Both tables only grow (a reindex
/// keeps them), so an id once given names the same thing for as long as the file lives.
///
/// A number is found through `numbers`, written a segment at a time: a segment is a run of a
/// day's rows, closed when it reaches `SEGMENT_ROWS` or its day is over, and its numbers go
/// in sorted, in blocks (`segment`). (An index kept row by row takes each call at a random
/// page of today's part, and every commit writes all the pages it touched again.) The rows
/// not yet in a closed segment (`days.keyed_to` on) are read directly. Everything else (a
/// period, a campaign, a verdict, a Call-ID, a decision) is read from the rows of the days it
/// can be in: every index is paid for by every call.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS days (
        day TEXT PRIMARY KEY, day_number INTEGER NOT NULL, indexed_to INTEGER NOT NULL,
        file TEXT, file_len INTEGER, last_at INTEGER, last_hash TEXT,
        keyed_to INTEGER NOT NULL DEFAULT 0, open_rows INTEGER NOT NULL DEFAULT 0,
        earliest_ms INTEGER);
    CREATE TABLE IF NOT EXISTS entries (
        place INTEGER PRIMARY KEY, number INTEGER NOT NULL, ts_ms INTEGER,
        facet INTEGER NOT NULL, campaign INTEGER, call_key INTEGER, decision INTEGER);
    CREATE TABLE IF NOT EXISTS facets (
        id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, verdict TEXT NOT NULL,
        reasons TEXT NOT NULL, disposition TEXT NOT NULL, action TEXT NOT NULL,
        who TEXT NOT NULL, consent TEXT NOT NULL,
        UNIQUE (kind, verdict, reasons, disposition, action, who, consent));
    CREATE TABLE IF NOT EXISTS names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE IF NOT EXISTS more_numbers (
        place INTEGER NOT NULL, number INTEGER NOT NULL,
        PRIMARY KEY (place, number)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS segments (
        seg INTEGER PRIMARY KEY, day INTEGER NOT NULL, end INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS numbers (
        seg INTEGER NOT NULL, last INTEGER NOT NULL, first INTEGER NOT NULL,
        pairs BLOB NOT NULL, PRIMARY KEY (seg, last)) WITHOUT ROWID;
";

/// Rows in a segment before it is closed: the rows a number query reads directly, at most.
const SEGMENT_ROWS: i64 = 65_536;

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
        // No automatic index: one SQLite builds for a query reads every row of five years.
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;
             PRAGMA automatic_index = OFF;",
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
                 DROP TABLE IF EXISTS more_numbers; DROP TABLE IF EXISTS segments;
                 DROP TABLE IF EXISTS numbers; DROP TABLE IF EXISTS days;
                 DROP TABLE IF EXISTS facets; DROP TABLE IF EXISTS names;
                 {SCHEMA} PRAGMA user_version = {LAYOUT};"
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
            .execute_batch(
                "BEGIN IMMEDIATE; DELETE FROM entries; DELETE FROM more_numbers;
                 DELETE FROM segments; DELETE FROM numbers; DELETE FROM days; COMMIT;",
            )
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
            if let Some(places) = codes::day_places(gone) {
                drop_rows(&tx, places).map_err(&sql)?;
            }
            tx.execute("DELETE FROM days WHERE day = ?1", [gone])
                .map_err(&sql)?;
        }
        tx.commit().map_err(&sql)
    }
}

/// Drop the rows at places `lo..hi` (a day's), with their numbers and segments.
fn drop_rows(tx: &rusqlite::Transaction, (lo, hi): (i64, i64)) -> rusqlite::Result<()> {
    for table in ["entries", "more_numbers"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE place >= ?1 AND place < ?2"),
            [lo, hi],
        )?;
    }
    for table in ["numbers", "segments"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE seg >= ?1 AND seg < ?2"),
            [lo, hi],
        )?;
    }
    Ok(())
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

    fn segments(index: &Index) -> i64 {
        index
            .db
            .query_row("SELECT count(*) FROM segments", [], |r| r.get(0))
            .unwrap()
    }

    fn calls_to(index: &Index, number: &str) -> usize {
        let f = CallFilter {
            number: Some(number.to_string()),
            ..CallFilter::default()
        };
        numbers(index, &f)
    }

    /// Today's rows are found by reading them (its segment is open); once the day is over its
    /// segment closes, and they are found through `numbers`, together with the new day's.
    #[test]
    fn a_number_is_found_in_closed_and_open_segments() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("audit-2026-01-01.jsonl");
        let second = dir.path().join("audit-2026-01-02.jsonl");
        std::fs::write(
            &first,
            call_line("+14155550100", "2026-01-01T10:00:00.000Z"),
        )
        .unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        index.catch_up(std::slice::from_ref(&first)).unwrap();
        assert_eq!((segments(&index), calls_to(&index, "+14155550100")), (0, 1));
        std::fs::write(
            &second,
            call_line("+14155550100", "2026-01-02T10:00:00.000Z"),
        )
        .unwrap();
        index.catch_up(&[first, second]).unwrap();
        assert_eq!((segments(&index), calls_to(&index, "+14155550100")), (1, 2));
        assert_eq!(calls_to(&index, "+14155550199"), 0);
    }

    /// A call's record is written when it ends: one that began before midnight is in the next
    /// day's file, and a period ending before midnight still finds it.
    #[test]
    fn a_period_finds_a_call_recorded_the_day_after() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("audit-2026-01-02.jsonl");
        let line = call_line("+14155550100", "2026-01-01T23:59:00.000Z");
        std::fs::write(&day, line).unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        index.catch_up(std::slice::from_ref(&day)).unwrap();
        let at = |s: &str| Some(s.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        let f = CallFilter {
            from: at("2026-01-01T00:00:00Z"),
            to: at("2026-01-02T00:00:00Z"),
            ..CallFilter::default()
        };
        assert_eq!(numbers(&index, &f), 1);
        let later = CallFilter {
            from: at("2026-01-02T00:00:00Z"),
            ..CallFilter::default()
        };
        assert_eq!(numbers(&index, &later), 0);
    }

    /// A closed segment's numbers are kept in blocks of about 256 pairs; a number's pairs are
    /// never split between two, so a number called more often than that is found whole.
    #[test]
    fn a_number_is_found_whole_across_the_blocks_of_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("audit-2026-01-01.jsonl");
        let second = dir.path().join("audit-2026-01-02.jsonl");
        let lines: String = (0..600)
            .map(|i| call_line(&format!("+1415555010{}", i % 3), "2026-01-01T10:00:00.000Z"))
            .collect();
        std::fs::write(&first, lines).unwrap();
        std::fs::write(
            &second,
            call_line("+14155550100", "2026-01-02T10:00:00.000Z"),
        )
        .unwrap();
        let mut index = Index::open(dir.path()).unwrap();
        let files = [first, second];
        index.catch_up(&files).unwrap();
        assert_eq!(segments(&index), 1);
        let found: Vec<usize> = (0..3)
            .map(|n| calls_to(&index, &format!("+1415555010{n}")))
            .collect();
        assert_eq!(found, [201, 200, 200]);
        let checked = check(dir.path(), &files).unwrap();
        assert_eq!(checked.differences, 0, "{:?}", checked.first);
    }

    /// The writer's batches, fed in runs of one day that end mid-chunk and cross into the next
    /// day, leave the index as reading the files does: every line, no other.
    #[test]
    fn batches_fed_across_chunks_and_days_index_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut batches = Vec::new();
        let mut files = Vec::new();
        for (day, count) in [("2026-01-01", 75u64), ("2026-01-02", 5)] {
            let file = dir.path().join(format!("audit-{day}.jsonl"));
            let mut text = String::new();
            let mut lines = Vec::new();
            for i in 0..count {
                let line = call_line(&format!("+1415555{i:04}"), &format!("{day}T10:00:00.000Z"));
                let summary = rows::summary_of(line.trim_end().as_bytes()).unwrap();
                lines.push((text.len() as u64, summary));
                text.push_str(&line);
            }
            std::fs::write(&file, &text).unwrap();
            // Batches of 25 lines: a run of four, then the next day's.
            let ends: Vec<u64> = lines
                .iter()
                .skip(1)
                .map(|l| l.0)
                .chain([text.len() as u64])
                .collect();
            let mut from = 0;
            for (n, part) in lines.chunks(25).enumerate() {
                let end = ends[n * 25 + part.len() - 1];
                batches.push(crate::audit::summary::Batch {
                    file: file.clone(),
                    from,
                    end,
                    lines: part.iter().map(|(o, s)| (*o, s.clone())).collect(),
                    last: None,
                });
                from = end;
            }
            files.push(file);
        }
        let mut index = Index::open(dir.path()).unwrap();
        assert_eq!(index.apply(&batches).unwrap(), (80, false));
        assert_eq!(numbers(&index, &CallFilter::default()), 80);
        assert_eq!(calls_to(&index, "+14155550074"), 1);
        let checked = check(dir.path(), &files).unwrap();
        assert_eq!(
            (checked.rows, checked.differences),
            (80, 0),
            "{:?}",
            checked.first
        );
    }
}
