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

impl Index {
    /// The lines `q` keeps, in log order, at most `q.limit`.
    pub fn query(&self, q: &Query) -> Result<Vec<Found>, IndexError> {
        let (clause, args) = where_clause(q);
        let limit = q.limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
        // A number is sought day by day (see the schema): the days the index holds, first.
        let from = match &q.number {
            Some(_) => "days CROSS JOIN entries ON entries.day = days.day_number",
            None => "entries",
        };
        let sql = format!("SELECT DISTINCT place, kind FROM {from} {clause} ORDER BY place{limit}");
        let mut stmt = self.db.prepare(&sql).map_err(self.sql())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
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
        (
            "number = ?",
            q.number.as_deref().map(|n| V::Integer(codes::number(n))),
        ),
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
    // A record is in the file of its day or a later one (a call's, of the day it ended), never
    // an earlier one: the days before `from` hold none.
    if let (Some(_), Some(from)) = (&q.number, q.from) {
        let day = from
            .date_naive()
            .signed_duration_since(chrono::NaiveDate::default());
        arg("days.day_number >= ?", V::Integer(day.num_days()));
    }
    if let Some(p) = &q.after {
        // A place past every line when the page's `after` names none the index can hold.
        let after = codes::place(&p.day, p.offset).unwrap_or(i64::MAX);
        arg("place > ?", V::Integer(after));
    }
    if !q.kinds.is_empty() {
        let kinds: Vec<String> = q
            .kinds
            .iter()
            .map(|k| codes::kind(*k).to_string())
            .collect();
        wheres.push(format!("kind IN ({})", kinds.join(",")));
    }
    let clause = match wheres.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", wheres.join(" AND ")),
    };
    (clause, args)
}
