//! This instance's records, shipped to the cluster's records table (`callgate_records`, schema
//! step 4) from its own log: every line (decisions, calls, admin records) past the position
//! the database holds for each day's file, a batch at a time, the lines and the new position
//! in one transaction. At least once (a crash between the commit and nothing else loses
//! nothing) and kept once (a line's key is its place in the log), so a database outage only
//! delays it: shipping catches up from the log when the database is back. The log stays the
//! tamper-evident truth; the table is what `callgate records export --shared` reads.

use super::{Shared, SharedError};
use crate::records::index::{day_of, open_at, summary_of};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// Lines per transaction at most (and bytes, about).
const BATCH_LINES: usize = 500;
const BATCH_BYTES: usize = 4 << 20;

const INSERT: &str =
    "INSERT INTO callgate_records (instance, day, at_byte, kind, ts_ms, number, line)
    SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[])
    ON CONFLICT DO NOTHING";
const POSITION: &str = "INSERT INTO callgate_record_positions (instance, day, shipped)
    VALUES ($1, $2, $3) ON CONFLICT (instance, day) DO UPDATE SET shipped = excluded.shipped";

/// Start shipping the log in `dir` on a thread of its own (it runs as long as the process).
pub(crate) fn spawn_shipper(shared: Arc<Shared>, dir: PathBuf) -> std::io::Result<()> {
    super::spawn_thread("shared-records", ship_forever(shared, dir))
}

async fn ship_forever(shared: Arc<Shared>, dir: PathBuf) {
    let pause = Duration::from_millis(shared.cfg.poll_ms);
    let mut client: Option<Client> = None;
    let mut complete = HashSet::new();
    loop {
        let some = ship_some(&shared, &dir, &mut client, &mut complete);
        match shared.bounded(some).await {
            // More may wait: go on at once.
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => {
                client = None;
                shared.metrics.ship_errors.inc();
                tracing::warn!(error = %e, "shared database: records not shipped; trying again");
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// One batch of the first day's file with lines not shipped: how many lines it shipped.
/// `complete`: compressed days found wholly shipped (not read through again).
async fn ship_some(
    shared: &Shared,
    dir: &Path,
    client: &mut Option<Client>,
    complete: &mut HashSet<String>,
) -> Result<usize, SharedError> {
    if client.as_ref().is_none_or(Client::is_closed) {
        *client = Some(shared.connect().await?);
    }
    let client = client.as_mut().ok_or(SharedError::Closed)?;
    let shipped: HashMap<String, i64> = client
        .query(
            "SELECT day, shipped FROM callgate_record_positions WHERE instance = $1",
            &[&shared.instance],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, SharedError>>()?;
    let files = crate::audit::chain::audit_files(dir).map_err(SharedError::Journal)?;
    let mut waiting = 0u64;
    let mut batch = None;
    for file in &files {
        let day = day_of(file);
        let from = shipped.get(&day).copied().unwrap_or(0).max(0) as u64;
        // A plain file's size says what waits; a compressed day is read through (rarely:
        // once a day is over it was shipped already, unless the database was away).
        let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let compressed = crate::audit::chain::is_compressed(file);
        waiting += len.saturating_sub(from) * u64::from(!compressed);
        let unread = if compressed {
            !complete.contains(&day)
        } else {
            len > from
        };
        if batch.is_none() && unread {
            let lines = read_batch(file, from).map_err(SharedError::Journal)?;
            if !lines.lines.is_empty() {
                batch = Some((day, lines));
            } else if compressed {
                complete.insert(day);
            }
        }
    }
    shared.metrics.records_waiting.set(waiting as i64);
    let Some((day, lines)) = batch else {
        return Ok(0);
    };
    let n = lines.lines.len();
    let tx = client.transaction().await?;
    let (at, kind, ts, number, text) = lines.columns();
    tx.execute(
        INSERT,
        &[&shared.instance, &day, &at, &kind, &ts, &number, &text],
    )
    .await?;
    tx.execute(POSITION, &[&shared.instance, &day, &(lines.end as i64)])
        .await?;
    tx.commit().await?;
    shared.metrics.records_shipped.inc_by(n as u64);
    Ok(n)
}

/// Whole lines of one day's file from byte `from`, and where they end.
struct Batch {
    lines: Vec<(u64, String)>,
    end: u64,
}

fn read_batch(file: &Path, from: u64) -> std::io::Result<Batch> {
    let (mut reader, mut at) = open_at(file, from)?;
    let (mut lines, mut bytes) = (Vec::new(), 0);
    let mut line = Vec::with_capacity(4096);
    while lines.len() < BATCH_LINES && bytes < BATCH_BYTES {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        // The end, or a line the writer has not finished: it is shipped once it is whole.
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        let text = String::from_utf8_lossy(&line[..n - 1]).into_owned();
        lines.push((at, text));
        at += n as u64;
        bytes += n;
    }
    Ok(Batch { lines, end: at })
}

impl Batch {
    /// The columns of `callgate_records` past instance and day, as arrays.
    #[allow(clippy::type_complexity)]
    fn columns(
        &self,
    ) -> (
        Vec<i64>,
        Vec<String>,
        Vec<Option<i64>>,
        Vec<Option<i64>>,
        Vec<&str>,
    ) {
        let mut cols = (vec![], vec![], vec![], vec![], vec![]);
        for (at, text) in &self.lines {
            let summary = summary_of(text.as_bytes());
            cols.0.push(*at as i64);
            cols.1.push(
                summary
                    .as_ref()
                    .map_or("other", |s| s.kind.as_str())
                    .to_string(),
            );
            cols.2.push(summary.as_ref().and_then(|s| s.ts_ms));
            cols.3
                .push(summary.as_ref().map(|s| s.number).filter(|n| *n != 0));
            cols.4.push(text.as_str());
        }
        cols
    }
}

/// The call records of every instance, oldest first, from `from` up to `to` (Unix ms), to
/// `number` (E.164 digits) when given: each line as its instance wrote it, to `each`.
pub async fn call_lines(
    client: &Client,
    from: Option<i64>,
    to: Option<i64>,
    number: Option<i64>,
    mut each: impl FnMut(&str) -> std::io::Result<()>,
) -> Result<u64, SharedError> {
    use futures_util::TryStreamExt;
    let sql = "SELECT line FROM callgate_records WHERE kind = 'call'
        AND ($1::bigint IS NULL OR ts_ms >= $1) AND ($2::bigint IS NULL OR ts_ms < $2)
        AND ($3::bigint IS NULL OR number = $3)
        ORDER BY ts_ms, instance, day, at_byte";
    let params: [Option<i64>; 3] = [from, to, number];
    let rows = client.query_raw(sql, params).await?;
    let mut rows = std::pin::pin!(rows);
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        let line: &str = row.try_get(0)?;
        each(line).map_err(SharedError::Journal)?;
        n += 1;
    }
    Ok(n)
}

/// `callgate records export --shared URL`: the call records of every instance sharing the
/// database at `url` that `filter` keeps, as CSV or JSON lines (as the export of one log).
pub fn export(
    url: &str,
    filter: &crate::records::export::CallFilter,
    csv: bool,
    out: &mut dyn std::io::Write,
) -> Result<u64, SharedError> {
    use crate::records::export::{csv_header, csv_row};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SharedError::Journal)?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        if csv {
            out.write_all(csv_header().as_bytes())
                .map_err(SharedError::Journal)?;
        }
        let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
        let number = filter
            .number
            .as_deref()
            .and_then(|n| n.trim_start_matches('+').parse::<i64>().ok());
        let mut kept = 0;
        call_lines(&client, ms(filter.from), ms(filter.to), number, |line| {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                return Ok(());
            };
            let Some(c) = record.get("call").filter(|c| filter.keeps(c)) else {
                return Ok(());
            };
            kept += 1;
            match csv {
                true => out.write_all(csv_row(c).as_bytes()),
                false => writeln!(out, "{c}"),
            }
        })
        .await?;
        Ok(kept)
    })
}
