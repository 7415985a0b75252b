//! `callgate records find` and `callgate records export`: the call records of the log that a
//! filter keeps, read by a scan of the files (the log is the truth).

use crate::audit::verify::{csv_field, VerifyError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// The export's columns, one per field of a call record, in the record's order. The table in
/// docs/compliance/call-records.md maps each TSR 310.5(a)(2) item to one of them.
pub const CSV_COLUMNS: &[&str] = &[
    "decision",
    "call_id",
    "direction",
    "verdict",
    "telemarketer",
    "seller",
    "campaign",
    "subject",
    "audience",
    "purpose",
    "method",
    "prerecorded",
    "script",
    "called",
    "caller_id",
    "caller_name",
    "caller_id_evidence",
    "caller_id_authorized_from",
    "caller_id_authorized_to",
    "invite_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "setup_ms",
    "duration_ms",
    "disposition",
    "reasons",
    "ended_by",
    "sip_status",
    "q850_cause",
    "transfer_to",
    "transfer_by",
];

/// What `find` and `export` keep. Times compare with the call's INVITE.
#[derive(Default)]
pub struct CallFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// E.164 with `+`, compared with `called`.
    pub number: Option<String>,
    pub campaign: Option<String>,
    pub disposition: Option<super::Disposition>,
}

impl CallFilter {
    pub(crate) fn keeps(&self, c: &Value) -> bool {
        let s = |k: &str| c.get(k).and_then(Value::as_str);
        let at = s("invite_at").and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        self.from.is_none_or(|f| at.is_some_and(|t| t >= f))
            && self.to.is_none_or(|to| at.is_some_and(|t| t < to))
            && self
                .number
                .as_deref()
                .is_none_or(|n| s("called") == Some(n))
            && self
                .campaign
                .as_deref()
                .is_none_or(|k| s("campaign") == Some(k))
            && self
                .disposition
                .is_none_or(|d| s("disposition") == Some(d.as_str()))
    }
}

/// A field of a call record as text ("" when it has none; a list's items separated by spaces).
pub(crate) fn cell(c: &Value, k: &str) -> String {
    match c.get(k) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Some(v) => v.to_string(),
    }
}

/// Every call record of `files` (oldest first) that `filter` keeps, handed to `each`.
pub fn scan(
    files: &[PathBuf],
    filter: &CallFilter,
    mut each: impl FnMut(&Value) -> std::io::Result<()>,
) -> Result<u64, VerifyError> {
    let io = |file: &Path| {
        let file = file.display().to_string();
        move |source| VerifyError::Io { file, source }
    };
    let mut n = 0;
    for path in files {
        let f = crate::audit::chain::open_lines(path).map_err(io(path))?;
        for line in f.lines() {
            let line = line.map_err(io(path))?;
            // Only call lines are parsed; decisions and seals are passed over.
            if !super::line::is_call_line(line.as_bytes()) {
                continue;
            }
            let Ok(r) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(c) = r.get("call") else { continue };
            if filter.keeps(c) {
                each(c).map_err(io(Path::new("<stdout>")))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Where `find` and `export` read the call records from.
pub enum Source<'a> {
    /// Every line of the log.
    Scan,
    /// The records index of the log's directory, already brought up to the log
    /// (`Index::catch_up`).
    Index(&'a super::index::Index),
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(transparent)]
    Log(#[from] VerifyError),
    #[error(transparent)]
    Index(#[from] super::index::IndexError),
    #[error("{file}@{offset}: {why}: run `callgate records reindex`")]
    Differs {
        file: String,
        offset: u64,
        why: String,
    },
    #[error("<stdout>: {0}")]
    Write(std::io::Error),
    #[error("more than {max} records: ask for a shorter period (--from, --to)")]
    TooMany { max: usize },
}

/// Every call record `filter` keeps, from `source`, in log order, handed to `each`.
pub fn calls(
    files: &[PathBuf],
    filter: &CallFilter,
    source: &Source,
    mut each: impl FnMut(&Value) -> std::io::Result<()>,
) -> Result<u64, FindError> {
    let index = match source {
        Source::Scan => return Ok(scan(files, filter, each)?),
        Source::Index(index) => index,
    };
    let found = index.query(&super::index::Query::from(filter))?;
    let mut n = 0;
    super::index::each_line(files, &found, |file, f, line| {
        // Read from the log itself: what the index pointed at must be what was asked for.
        let record: Option<Value> = serde_json::from_slice(line).ok();
        match record.as_ref().and_then(|r| r.get("call")) {
            Some(c) if filter.keeps(c) => {
                n += 1;
                each(c).map_err(FindError::Write)?;
                Ok(std::ops::ControlFlow::Continue(()))
            }
            _ => Err(FindError::Differs {
                file: file.display().to_string(),
                offset: f.pos.offset,
                why: "not the call record the index names".into(),
            }),
        }
    })?;
    Ok(n)
}

/// How a call record is written: a CSV row, a JSON line, or one line for a person (`find`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Csv,
    Json,
    Summary,
}

impl Form {
    /// What comes before the records (the CSV's header).
    pub fn start(self, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Form::Csv => out.write_all(csv_header().as_bytes()),
            _ => Ok(()),
        }
    }

    /// One call record (the object under `call`).
    pub fn write(self, out: &mut dyn Write, c: &Value) -> std::io::Result<()> {
        match self {
            Form::Csv => out.write_all(csv_row(c).as_bytes()),
            Form::Json => writeln!(out, "{c}"),
            Form::Summary => writeln!(out, "{}", summary(c)),
        }
    }
}

/// Write the kept call records as CSV (a header, then one row per call) or JSON lines (the
/// `call` object of each). Returns the count written.
pub fn export(
    files: &[PathBuf],
    filter: &CallFilter,
    source: &Source,
    csv: bool,
    out: &mut dyn Write,
) -> Result<u64, FindError> {
    let form = if csv { Form::Csv } else { Form::Json };
    form.start(out).map_err(FindError::Write)?;
    calls(files, filter, source, |c| form.write(out, c))
}

/// The CSV's first line: its columns.
pub(crate) fn csv_header() -> String {
    format!("{}\n", CSV_COLUMNS.join(","))
}

/// A call record (the object under `call`) as one line of the CSV.
pub(crate) fn csv_row(c: &Value) -> String {
    let row: Vec<String> = CSV_COLUMNS.iter().map(|k| csv_field(&cell(c, k))).collect();
    format!("{}\n", row.join(","))
}

/// One line per call for a person: when, what happened, for how long, under which decision.
pub fn summary(c: &Value) -> String {
    let duration = c
        .get("duration_ms")
        .and_then(Value::as_u64)
        .map(|ms| format!("{}.{:03}s", ms / 1000, ms % 1000))
        .unwrap_or_else(|| "-".into());
    let reasons = cell(c, "reasons");
    format!(
        "{}  {}  {:<11} {:>9}  ended by {:<16} campaign {}  decision {}{}",
        cell(c, "invite_at"),
        cell(c, "called"),
        cell(c, "disposition"),
        duration,
        cell(c, "ended_by"),
        cell(c, "campaign"),
        cell(c, "decision"),
        if reasons.is_empty() {
            String::new()
        } else {
            format!("  reasons {reasons}")
        }
    )
}
