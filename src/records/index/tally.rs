//! Counts over a period: how many lines of each facet (kind, verdict, reasons, disposition,
//! admin action), for the console's overview and the reports. One grouped read of the
//! period's rows; no line of the log is read.

use super::query::{where_clause, Args};
use super::{codes, Index, IndexError, Kind, Query};
use rusqlite::types::Type;

/// Lines of one facet in the period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    pub kind: Kind,
    /// "" for none, as in the index.
    pub verdict: String,
    /// Reason codes, separated by spaces.
    pub reasons: String,
    pub disposition: String,
    pub action: String,
    pub count: u64,
}

impl Index {
    /// How many lines of each facet `q` keeps (its number and page are not used: a tally is
    /// of a period, maybe of one campaign).
    pub fn tally(&self, q: &Query) -> Result<Vec<Tally>, IndexError> {
        let q = Query {
            number: None,
            after: None,
            limit: None,
            ..q.clone()
        };
        let mut args = Args::default();
        let clause = where_clause(&q, &mut args);
        let sql = format!(
            "SELECT f.kind, f.verdict, f.reasons, f.disposition, f.action, count(*)
             FROM entries e CROSS JOIN facets f ON f.id = e.facet {clause} GROUP BY e.facet"
        );
        let mut stmt = self.db.prepare(&sql).map_err(self.sql())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.0), |r| {
                let kind: i64 = r.get(0)?;
                Ok(Tally {
                    kind: codes::kind_of(kind).ok_or_else(|| {
                        let e = format!("kind {kind}: not a kind of record");
                        rusqlite::Error::FromSqlConversionFailure(0, Type::Integer, e.into())
                    })?,
                    verdict: r.get(1)?,
                    reasons: r.get(2)?,
                    disposition: r.get(3)?,
                    action: r.get(4)?,
                    count: r.get::<_, i64>(5)?.max(0) as u64,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}
