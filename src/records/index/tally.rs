//! Counts over a period: how many lines of each facet (kind, verdict, reasons, disposition,
//! consent used, admin action), for the console's overview and the reports. One grouped read of the
//! period's rows; no line of the log is read.

use super::query::{where_clause, Args};
use super::{codes, Found, Index, IndexError, Kind, Query};
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
    /// The type of consent that exempted a decision ("" for none).
    pub consent: String,
    /// The campaign of the lines counted (None: lines without one).
    pub campaign: Option<String>,
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
            "SELECT f.kind, f.verdict, f.reasons, f.disposition, f.action, f.consent, c.name,
                    count(*)
             FROM entries e CROSS JOIN facets f ON f.id = e.facet
             LEFT JOIN names c ON c.id = e.campaign {clause} GROUP BY e.facet, e.campaign"
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
                    consent: r.get(5)?,
                    campaign: r.get(6)?,
                    count: r.get::<_, i64>(7)?.max(0) as u64,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}

impl Index {
    /// The first and the last line of `kind` that `q` keeps in each day of the log (its
    /// number, kinds and page are not used), in log order: what was in force when a day's
    /// calls began and ended.
    pub fn day_ends(&self, q: &Query, kind: Kind) -> Result<Vec<(Found, Found)>, IndexError> {
        let q = Query {
            number: None,
            after: None,
            limit: None,
            newest_first: false,
            kinds: vec![kind],
            ..q.clone()
        };
        let mut args = Args::default();
        let clause = where_clause(&q, &mut args);
        let sql = format!(
            "SELECT min(e.place), max(e.place) FROM entries e
             CROSS JOIN facets f ON f.id = e.facet {clause}
             GROUP BY e.place >> {bits} ORDER BY 1",
            bits = codes::OFFSET_BITS
        );
        let mut stmt = self.db.prepare(&sql).map_err(self.sql())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.0), |r| {
                let (first, last): (i64, i64) = (r.get(0)?, r.get(1)?);
                let found = |place| Found {
                    pos: codes::pos_of(place),
                    kind,
                };
                Ok((found(first), found(last)))
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}
