//! Adding lines to `entries`: rows are held until a chunk is full and go in with one
//! statement, so SQLite runs one statement (and its start and reset) per chunk, not per row:
//! keeping the index current is paid for by every call, and per-statement work was the
//! larger part of a row's cost.

use super::names::Names;
use super::rows;
use rusqlite::{params, Transaction};
use std::sync::LazyLock;

/// Rows per multi-row statement.
const CHUNK: usize = 32;
const COLUMNS: usize = 7;

const INSERT_ONE: &str = "INSERT OR REPLACE INTO entries
    (place, number, ts_ms, facet, campaign, call_key, decision)
    VALUES (?, ?, ?, ?, ?, ?, ?)";

static INSERT_CHUNK: LazyLock<String> = LazyLock::new(|| {
    let row = "(?, ?, ?, ?, ?, ?, ?)";
    let rows = vec![row; CHUNK].join(", ");
    format!(
        "INSERT OR REPLACE INTO entries
            (place, number, ts_ms, facet, campaign, call_key, decision) VALUES {rows}"
    )
});

const INSERT_MORE: &str = "INSERT OR REPLACE INTO more_numbers (place, number) VALUES (?1, ?2)";

/// One row of `entries`, its names already ids.
#[derive(Clone, Copy)]
struct Row {
    place: i64,
    number: i64,
    ts_ms: Option<i64>,
    facet: i64,
    campaign: Option<i64>,
    call_key: Option<i64>,
    decision: Option<i64>,
}

/// The rows being added in one transaction, and the ids given in it. `flush` adds what is
/// held: a statement that reads `entries` in the transaction must follow it.
pub(super) struct Put<'t> {
    tx: &'t Transaction<'t>,
    held: Vec<Row>,
    names: Names,
}

impl<'t> Put<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>) -> Put<'t> {
        Put {
            tx,
            held: Vec::with_capacity(CHUNK),
            names: Names::default(),
        }
    }

    /// Add one line at `place`: its row in `entries` with its first number, its other
    /// numbers in `more_numbers`. Its time, if it has one.
    pub(super) fn line(&mut self, place: i64, s: &rows::Summary) -> rusqlite::Result<Option<i64>> {
        if !s.more.is_empty() {
            let mut more = self.tx.prepare_cached(INSERT_MORE)?;
            for other in &s.more {
                more.execute(params![place, other])?;
            }
        }
        let names = &mut self.names;
        let facet = names.facet(self.tx, s)?;
        let campaign = match s.campaign.as_deref() {
            Some(c) => Some(names.name(self.tx, c)?),
            None => None,
        };
        let decision = match &s.decision {
            Some(d) => names.decision(self.tx, d)?,
            None => None,
        };
        self.held.push(Row {
            place,
            number: s.number,
            ts_ms: s.ts_ms,
            facet,
            campaign,
            call_key: s.call_key,
            decision,
        });
        if self.held.len() == CHUNK {
            let mut st = self.tx.prepare_cached(&INSERT_CHUNK)?;
            insert(&mut st, &self.held)?;
            self.held.clear();
        }
        Ok(s.ts_ms)
    }

    /// Add the rows still held: the transaction's later statements see every line.
    pub(super) fn flush(&mut self) -> rusqlite::Result<()> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut one = self.tx.prepare_cached(INSERT_ONE)?;
        for row in &self.held {
            insert(&mut one, std::slice::from_ref(row))?;
        }
        self.held.clear();
        Ok(())
    }
}

/// Run `st`, whose parameters are `rows`' columns in order.
fn insert(st: &mut rusqlite::CachedStatement, rows: &[Row]) -> rusqlite::Result<()> {
    for (i, r) in rows.iter().enumerate() {
        let at = i * COLUMNS;
        st.raw_bind_parameter(at + 1, r.place)?;
        st.raw_bind_parameter(at + 2, r.number)?;
        st.raw_bind_parameter(at + 3, r.ts_ms)?;
        st.raw_bind_parameter(at + 4, r.facet)?;
        st.raw_bind_parameter(at + 5, r.campaign)?;
        st.raw_bind_parameter(at + 6, r.call_key)?;
        st.raw_bind_parameter(at + 7, r.decision)?;
    }
    st.raw_execute()?;
    Ok(())
}
