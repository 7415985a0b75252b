//! `callgate records check-index`: the index against the log. A scratch index is built from
//! the log beside the real one and the two are compared row by row, in log order, without
//! holding either in memory.

use super::{Index, IndexError, Pos, Until, FILE_NAME};
use rusqlite::types::Value;
use std::path::{Path, PathBuf};

/// A place where the index and the log disagree.
#[derive(Debug, serde::Serialize)]
pub struct Difference {
    pub pos: Pos,
    /// The row the index holds there (None: the index misses it).
    pub index: Option<String>,
    /// The row the log gives there (None: the log has no such record).
    pub log: Option<String>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Checked {
    pub rows: u64,
    pub differences: u64,
    /// The first differences (at most `SHOWN`).
    pub first: Vec<Difference>,
    /// Days of the log the index has not started on (the next catch-up reads them).
    pub not_indexed_yet: Vec<String>,
    /// Days of the log that could not be read.
    pub unreadable: Vec<String>,
}

const SHOWN: usize = 20;

/// Every row as (place, number, the rest, ids as what they stand for): a line of several
/// numbers gives one per number.
const ROWS: &str = "SELECT place, r.number, kind, ts_ms, c.name, verdict, reasons, disposition,
        call_key, i.name, decision & ((1 << 40) - 1), action, who, consent
    FROM (SELECT place, number FROM entries
          UNION ALL SELECT place, number FROM more_numbers) AS r
    JOIN entries e USING (place) JOIN facets f ON f.id = e.facet
    LEFT JOIN names c ON c.id = e.campaign LEFT JOIN names i ON i.id = e.decision >> 40
    ORDER BY 1, 2";

/// A row: its place and number (a line may have several) and its columns as text.
type Row = ((i64, i64), String);

fn row(r: &rusqlite::Row) -> rusqlite::Result<Row> {
    let mut cols = Vec::with_capacity(12);
    for i in 2..14 {
        cols.push(match r.get::<_, Value>(i)? {
            Value::Null => "-".to_string(),
            Value::Integer(n) => n.to_string(),
            Value::Text(t) => t,
            other => format!("{other:?}"),
        });
    }
    Ok(((r.get(0)?, r.get(1)?), cols.join(" ")))
}

/// Compare the index in `dir`, as it is, with one built from `files` to the same positions
/// (lines the index has not reached yet are not differences; days it has not started are
/// named apart).
pub fn check(dir: &Path, files: &[PathBuf]) -> Result<Checked, IndexError> {
    let index = Index::open(dir)?;
    // One snapshot of the index for its positions and its rows: a callgate indexing beside
    // this check does not make the rows it adds meanwhile look like differences.
    index.db.execute_batch("BEGIN").map_err(index.sql())?;
    let positions = index.positions()?;
    let scratch_path = dir.join(format!("{FILE_NAME}.check-{}", std::process::id()));
    let remove_scratch = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", scratch_path.display()));
        }
    };
    remove_scratch();
    let result = Index::at(&scratch_path).and_then(|mut scratch| {
        let built = scratch.catch_up_each(files, Until::Positions(&positions), |_, _| {})?;
        let mut checked = compare(&index, &scratch)?;
        unfound(&index, &mut checked)?;
        checked.unreadable = built.failed.iter().map(|e| e.to_string()).collect();
        checked.not_indexed_yet = files
            .iter()
            .map(|f| super::read::day_of(f))
            .filter(|d| !positions.contains_key(d))
            .collect();
        Ok(checked)
    });
    remove_scratch();
    let _ = index.db.execute_batch("COMMIT");
    result
}

fn compare(index: &Index, log: &Index) -> Result<Checked, IndexError> {
    let mut a = index.db.prepare(ROWS).map_err(index.sql())?;
    let mut b = log.db.prepare(ROWS).map_err(log.sql())?;
    let mut a = a.query_map([], row).map_err(index.sql())?;
    let mut b = b.query_map([], row).map_err(log.sql())?;
    let mut checked = Checked::default();
    let mut x = a.next().transpose().map_err(index.sql())?;
    let mut y = b.next().transpose().map_err(log.sql())?;
    loop {
        // Both sides in log order: a row of one side before the other's is missing there.
        let (take_a, take_b) = match (&x, &y) {
            (None, None) => return Ok(checked),
            (Some(i), Some(l)) if i.0 == l.0 => (true, true),
            (Some(i), Some(l)) => (i.0 < l.0, i.0 > l.0),
            (Some(_), None) => (true, false),
            (None, Some(_)) => (false, true),
        };
        checked.rows += 1;
        let i = x.as_ref().filter(|_| take_a);
        let l = y.as_ref().filter(|_| take_b);
        if i.map(|r| &r.1) != l.map(|r| &r.1) {
            checked.note(i, l);
        }
        if take_a {
            x = a.next().transpose().map_err(index.sql())?;
        }
        if take_b {
            y = b.next().transpose().map_err(log.sql())?;
        }
    }
}

/// Note each row of a closed segment its number does not find (or that its blocks hold
/// and the rows do not).
fn unfound(index: &Index, checked: &mut Checked) -> Result<(), IndexError> {
    for (place, number) in super::segment::unfound(&index.db).map_err(index.sql())? {
        let row: Row = ((place, number), format!("+{number}: not in `numbers`"));
        checked.note(Some(&row), None);
    }
    Ok(())
}

impl Checked {
    fn note(&mut self, index: Option<&Row>, log: Option<&Row>) {
        self.differences += 1;
        if self.first.len() < SHOWN {
            let pos = index
                .or(log)
                .map_or(super::codes::pos_of(0), |r| super::codes::pos_of(r.0 .0));
            self.first.push(Difference {
                pos,
                index: index.map(|r| r.1.clone()),
                log: log.map(|r| r.1.clone()),
            });
        }
    }
}
