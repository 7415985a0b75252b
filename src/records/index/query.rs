//! Questions to the index: which lines a query keeps, in log order, a page at a time.

use super::{codes, Index, IndexError, Kind};
use crate::records::export::CallFilter;
use chrono::{DateTime, Utc};
use rusqlite::types::Type;

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
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub number: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub campaign: Option<String>,
    pub kinds: Vec<Kind>,
    pub verdict: Option<String>,
    /// One reason code among the line's.
    pub reason: Option<String>,
    /// An admin record's action (`optout_add`, `lists_reload`...).
    pub action: Option<String>,
    pub disposition: Option<String>,
    pub call_id: Option<String>,
    pub decision_id: Option<String>,
    /// Only lines after this one (the previous page's last).
    pub after: Option<Pos>,
    pub limit: Option<u32>,
    /// The newest lines first (with `limit`: the last ones), instead of log order.
    pub newest_first: bool,
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

impl Index {
    /// The lines `q` keeps, in log order, at most `q.limit`: read in one snapshot (a number's
    /// closed and open segments are read apart, and a segment closing between the two reads
    /// would fall in neither).
    pub fn query(&self, q: &Query) -> Result<Vec<Found>, IndexError> {
        let own = self.db.is_autocommit();
        if own {
            self.db.execute_batch("BEGIN").map_err(self.sql())?;
        }
        let found = self.query_now(q);
        if own {
            let _ = self.db.execute_batch("COMMIT");
        }
        found
    }

    fn query_now(&self, q: &Query) -> Result<Vec<Found>, IndexError> {
        let mut args = Args::default();
        let rows = match &q.number {
            Some(n) => {
                self.hits(codes::number(n), q.from).map_err(self.sql())?;
                "temp.hits h CROSS JOIN entries e ON e.place = h.place"
            }
            None => "entries e",
        };
        let clause = where_clause(q, &mut args);
        let limit = q.limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
        let order = if q.newest_first { " DESC" } else { "" };
        let sql = format!(
            "SELECT e.place, f.kind FROM {rows} CROSS JOIN facets f ON f.id = e.facet
             {clause} ORDER BY e.place{order}{limit}"
        );
        let mut stmt = self.db.prepare(&sql).map_err(self.sql())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.0), |r| {
                let kind: i64 = r.get(1)?;
                Ok(Found {
                    pos: codes::pos_of(r.get(0)?),
                    kind: codes::kind_of(kind).ok_or_else(|| {
                        let e = format!("kind {kind}: not a kind of record");
                        rusqlite::Error::FromSqlConversionFailure(1, Type::Integer, e.into())
                    })?,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }
}

/// The arguments of a query, numbered as they are added.
#[derive(Default)]
pub(super) struct Args(pub(super) Vec<rusqlite::types::Value>);

impl Args {
    /// `?` in `sql` as the next argument, `v`.
    pub(super) fn add(&mut self, sql: &str, v: rusqlite::types::Value) -> String {
        self.0.push(v);
        sql.replace('?', &format!("?{}", self.0.len()))
    }
}

impl Index {
    /// `temp.hits`: the places of the lines naming `number`, none in a day before `from`'s (a
    /// record is in the file of its day or a later one): from the closed segments' blocks, and
    /// read directly in each day's open segment.
    fn hits(&self, number: i64, from: Option<DateTime<Utc>>) -> rusqlite::Result<()> {
        let first_day = from.map_or(i64::MIN, codes::day_number_of);
        let mut places = super::segment::places_of(&self.db, number, first_day)?;
        let open = |table: &str| {
            format!(
                "SELECT t.place FROM days d CROSS JOIN {table} t
                   ON t.place >= ((d.day_number << 40) | d.keyed_to)
                  AND t.place < ((d.day_number + 1) << 40)
                 WHERE d.keyed_to < d.indexed_to AND d.day_number >= ?2 AND +t.number = ?1"
            )
        };
        for table in ["entries", "more_numbers"] {
            let mut q = self.db.prepare_cached(&open(table))?;
            let rows = q.query_map([number, first_day], |r| r.get::<_, i64>(0))?;
            for p in rows {
                places.push(p?);
            }
        }
        self.db.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS hits (place INTEGER PRIMARY KEY);
             DELETE FROM temp.hits;",
        )?;
        let mut insert = self
            .db
            .prepare_cached("INSERT OR IGNORE INTO temp.hits (place) VALUES (?1)")?;
        for p in places {
            insert.execute([p])?;
        }
        Ok(())
    }
}

pub(super) fn where_clause(q: &Query, args: &mut Args) -> String {
    use rusqlite::types::Value as V;
    let mut wheres: Vec<String> = vec![];
    let text = |s: &Option<String>| s.clone().map(V::Text);
    for (col, v) in [
        (
            "e.campaign = (SELECT id FROM names WHERE name = ?)",
            text(&q.campaign),
        ),
        // A facet holds "" for none: an empty value asked matches nothing, as before.
        ("f.verdict = ? AND f.verdict != ''", text(&q.verdict)),
        ("f.action = ? AND f.action != ''", text(&q.action)),
        // Reasons are codes separated by spaces.
        (
            "instr(' ' || f.reasons || ' ', ' ' || ? || ' ') > 0",
            text(&q.reason),
        ),
        (
            "f.disposition = ? AND f.disposition != ''",
            text(&q.disposition),
        ),
        (
            "e.call_key = ?",
            q.call_id.as_deref().map(|c| V::Integer(codes::call_key(c))),
        ),
        (
            "e.ts_ms >= ?",
            q.from.map(|t| V::Integer(t.timestamp_millis())),
        ),
        (
            "e.ts_ms < ?",
            q.to.map(|t| V::Integer(t.timestamp_millis())),
        ),
    ] {
        if let Some(v) = v {
            wheres.push(args.add(col, v));
        }
    }
    if let Some(id) = &q.decision_id {
        wheres.push(match codes::decision_parts(id) {
            Some((instance, seq)) => {
                let i = args.add("?", V::Text(instance.to_string()));
                let s = args.add("?", V::Integer(seq));
                format!(
                    "e.decision = (((SELECT id FROM names WHERE name = {i}) << {}) | {s})",
                    codes::SEQ_BITS
                )
            }
            // Not a decision id the index can hold: no line has it.
            None => "0".to_string(),
        });
    }
    wheres.extend(period(q, args));
    if let Some(p) = &q.after {
        // A place past every line when the page's `after` names none the index can hold.
        let after = codes::place(&p.day, p.offset).unwrap_or(i64::MAX);
        wheres.push(args.add("e.place > ?", V::Integer(after)));
    }
    if !q.kinds.is_empty() {
        let kinds: Vec<String> = q
            .kinds
            .iter()
            .map(|k| codes::kind(*k).to_string())
            .collect();
        wheres.push(format!("f.kind IN ({})", kinds.join(",")));
    }
    match wheres.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", wheres.join(" AND ")),
    }
}

/// The days a period's rows can be in, as places: from `from`'s day (a record is in the file
/// of its day or a later one) to the last day holding a row before `to` (a call's record is
/// written when it ends, maybe days after its INVITE).
fn period(q: &Query, args: &mut Args) -> Vec<String> {
    use rusqlite::types::Value as V;
    let mut wheres = vec![];
    if let Some(from) = q.from {
        let day = codes::day_number_of(from);
        wheres.push(args.add("e.place >= (? << 40)", V::Integer(day)));
    }
    if let Some(to) = q.to {
        wheres.push(args.add(
            "e.place < ((SELECT max(day_number) FROM days WHERE earliest_ms < ?) + 1) << 40",
            V::Integer(to.timestamp_millis()),
        ));
    }
    wheres
}
