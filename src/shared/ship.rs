//! This instance's records, shipped to the cluster's records table (`callgate_records`, schema
//! step 4) from its own log: every line (decisions, calls, admin records) past the position
//! the database holds for each day's file, a batch at a time, the lines and the new position
//! in one transaction. At least once (a crash between the commit and nothing else loses
//! nothing) and kept once (a line's key is its place in the log), so a database outage only
//! delays it: shipping catches up from the log when the database is back. Each batch must
//! continue the hash chain where the last one shipped ended (its first line's `prev`): a log
//! that does not (another instance shipping under the same `shared.instance_name`, a log that
//! lost its tail) stops shipping, loudly, rather than skip or mix lines. The log stays the
//! tamper-evident truth; the table is what `callgate records export --shared` reads.
//!
//! The thread reads the files itself and waits on the database only for its queries (each
//! bounded by `timeout_ms`), so a long compressed day never counts against the timeout; its
//! reader is kept from one batch to the next, so a day is decompressed once.

use super::{Shared, SharedError};
use crate::records::index::{day_of, open_at, summary_of};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

/// Lines per transaction at most (and bytes, about).
const BATCH_LINES: usize = 500;
const BATCH_BYTES: usize = 4 << 20;

const INSERT: &str =
    "INSERT INTO callgate_records (instance, day, at_byte, kind, ts_ms, number, line)
    SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[])
    ON CONFLICT DO NOTHING";
const POSITION: &str = "INSERT INTO callgate_record_positions (instance, day, shipped, last_hash)
    VALUES ($1, $2, $3, $4) ON CONFLICT (instance, day)
    DO UPDATE SET shipped = excluded.shipped, last_hash = excluded.last_hash";

/// Start shipping the log in `dir` on a thread of its own (it runs as long as the process).
pub(crate) fn spawn_shipper(shared: Arc<Shared>, dir: PathBuf) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Made on its thread: its reader of a day's file stays there.
    std::thread::Builder::new()
        .name("shared-records".into())
        .spawn(move || {
            let shipper = Shipper {
                shared,
                dir,
                client: None,
                known: HashMap::new(),
                reading: None,
            };
            shipper.run(&rt)
        })?;
    Ok(())
}

/// Where a day's file has been shipped to, as the database holds it.
#[derive(Clone, Default, PartialEq)]
struct Position {
    shipped: u64,
    /// The SHA-256 of the last line shipped: the next line's `prev`.
    last_hash: Option<String>,
    /// A compressed day shipped whole: never read again.
    sealed: bool,
}

/// A day's file open where the last batch ended.
struct Reading {
    day: String,
    reader: Box<dyn BufRead>,
    at: u64,
}

struct Shipper {
    shared: Arc<Shared>,
    dir: PathBuf,
    client: Option<Client>,
    /// Positions as last read from the database: what waits is measured from them, also while
    /// the database is away.
    known: HashMap<String, Position>,
    reading: Option<Reading>,
}

impl Shipper {
    fn run(mut self, rt: &Runtime) {
        let pause = Duration::from_millis(self.shared.cfg.poll_ms);
        loop {
            match self.pass(rt) {
                // More may wait: go on at once.
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.client = None;
                    self.reading = None;
                    self.shared.metrics.ship_errors.inc();
                    tracing::warn!(error = %e, "shared database: records not shipped; trying again");
                }
            }
            std::thread::sleep(pause);
        }
    }

    /// One batch of the first day's file with lines not shipped (or a compressed day found
    /// wholly shipped, marked so): whether anything was done.
    fn pass(&mut self, rt: &Runtime) -> Result<bool, SharedError> {
        let files = crate::audit::chain::audit_files(&self.dir).map_err(SharedError::Journal)?;
        self.measure_waiting(&files);
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(rt.block_on(self.shared.connect())?);
        }
        let client = self.client.as_mut().ok_or(SharedError::Closed)?;
        let shared = self.shared.clone();
        let instance = shared.instance.as_str();
        self.known = rt.block_on(shared.bounded(positions(client, instance)))?;
        let Some((file, day)) = first_unshipped(&files, &self.known) else {
            return Ok(false);
        };
        let at = self.known.get(&day).cloned().unwrap_or_default();
        let batch = self.read(&file, &day, at.shipped)?;
        let client = self.client.as_mut().ok_or(SharedError::Closed)?;
        if batch.lines.is_empty() {
            if !crate::audit::chain::is_compressed(&file) {
                return Ok(false); // only a line being written
            }
            rt.block_on(shared.bounded(seal(client, instance, &day, at.shipped)))?;
            return Ok(true);
        }
        let n = batch.lines.len() as u64;
        rt.block_on(shared.bounded(ship(client, instance, &day, &at, &batch)))?;
        if let Some(r) = self.reading.as_mut() {
            r.at = batch.end;
        }
        shared.metrics.records_shipped.inc_by(n);
        Ok(true)
    }

    /// Bytes of the plain days' files past what was last known shipped.
    fn measure_waiting(&self, files: &[PathBuf]) {
        let waiting: u64 = files
            .iter()
            .filter(|f| !crate::audit::chain::is_compressed(f))
            .map(|f| {
                let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                let shipped = self.known.get(&day_of(f)).map_or(0, |p| p.shipped);
                len.saturating_sub(shipped)
            })
            .sum();
        self.shared.metrics.records_waiting.set(waiting as i64);
    }

    /// The next whole lines of `day` from byte `from`: from the reader kept where the last
    /// batch ended, else from the file opened there.
    fn read(&mut self, file: &Path, day: &str, from: u64) -> Result<Batch, SharedError> {
        let kept = self.reading.take().filter(|r| r.day == day && r.at == from);
        let mut reading = match kept {
            Some(r) => r,
            None => {
                let (reader, at) = open_at(file, from).map_err(SharedError::Journal)?;
                Reading {
                    day: day.to_string(),
                    reader,
                    at,
                }
            }
        };
        let batch = read_batch(&mut reading.reader, reading.at).map_err(SharedError::Journal)?;
        // A line cut short stays in the reader's buffer: only a batch of whole lines keeps it.
        if !batch.partial {
            self.reading = Some(reading);
        }
        Ok(batch)
    }
}

/// The first day's file with lines not shipped: a plain file longer than its position, or a
/// compressed day not yet marked shipped whole.
fn first_unshipped(
    files: &[PathBuf],
    known: &HashMap<String, Position>,
) -> Option<(PathBuf, String)> {
    files.iter().find_map(|f| {
        let day = day_of(f);
        let at = known.get(&day);
        let unread = if crate::audit::chain::is_compressed(f) {
            !at.is_some_and(|p| p.sealed)
        } else {
            let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            len > at.map_or(0, |p| p.shipped)
        };
        unread.then(|| (f.clone(), day))
    })
}

async fn positions(
    client: &Client,
    instance: &str,
) -> Result<HashMap<String, Position>, SharedError> {
    let rows = client
        .query(
            "SELECT day, shipped, last_hash, sealed FROM callgate_record_positions WHERE instance = $1",
            &[&instance],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let shipped: i64 = r.try_get(1)?;
            let p = Position {
                shipped: shipped.max(0) as u64,
                last_hash: r.try_get(2)?,
                sealed: r.try_get(3)?,
            };
            Ok((r.try_get(0)?, p))
        })
        .collect()
}

/// The batch and the new position in one transaction, under a lock on this instance's day,
/// after checking that the position is still the one the batch was read from and that the
/// batch continues the chain shipped so far.
async fn ship(
    client: &mut Client,
    instance: &str,
    day: &str,
    at: &Position,
    batch: &Batch,
) -> Result<(), SharedError> {
    let differs = |why: &str| SharedError::LogDiffers {
        day: day.to_string(),
        at: at.shipped,
        why: why.to_string(),
    };
    if let (Some(expected), Some((_, first))) = (&at.last_hash, batch.lines.first()) {
        if prev_of(first) != Some(expected.as_str()) {
            return Err(differs(
                "its line there does not follow the last line shipped",
            ));
        }
    }
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 2))",
        &[&instance, &day],
    )
    .await?;
    let now = tx
        .query_opt(
            "SELECT shipped, last_hash FROM callgate_record_positions WHERE instance = $1 AND day = $2",
            &[&instance, &day],
        )
        .await?
        .map(|r| Ok::<_, SharedError>((r.try_get::<_, i64>(0)?, r.try_get::<_, Option<String>>(1)?)))
        .transpose()?;
    if now.unwrap_or((0, None)) != (at.shipped as i64, at.last_hash.clone()) {
        return Err(differs(
            "another shipper moved the position (two instances with one shared.instance_name?)",
        ));
    }
    let (offsets, kind, ts, number, text) = batch.columns();
    tx.execute(
        INSERT,
        &[&instance, &day, &offsets, &kind, &ts, &number, &text],
    )
    .await?;
    let last = batch
        .lines
        .last()
        .map(|(_, l)| crate::audit::chain::line_hash(l.as_bytes()));
    tx.execute(POSITION, &[&instance, &day, &(batch.end as i64), &last])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A compressed day read through to its end: shipped whole, never read again.
async fn seal(client: &Client, instance: &str, day: &str, shipped: u64) -> Result<(), SharedError> {
    client
        .execute(
            "UPDATE callgate_record_positions SET sealed = true WHERE instance = $1 AND day = $2 AND shipped = $3",
            &[&instance, &day, &(shipped as i64)],
        )
        .await?;
    Ok(())
}

/// The `prev` a log line ends with (the hash of the line before it).
pub(super) fn prev_of(line: &str) -> Option<&str> {
    let at = line.rfind("\"prev\":\"")? + 8;
    line.get(at..at + 64)
}

/// Whole lines of one day's file from byte `from`, and where they end.
struct Batch {
    lines: Vec<(u64, String)>,
    end: u64,
    /// The read stopped at a line not yet whole (the writer is on it).
    partial: bool,
}

fn read_batch(reader: &mut dyn BufRead, from: u64) -> std::io::Result<Batch> {
    let mut batch = Batch {
        lines: Vec::new(),
        end: from,
        partial: false,
    };
    let mut bytes = 0;
    let mut line = Vec::with_capacity(4096);
    while batch.lines.len() < BATCH_LINES && bytes < BATCH_BYTES {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        // A line the writer has not finished: shipped once it is whole, read again then.
        if line.last() != Some(&b'\n') {
            batch.partial = true;
            break;
        }
        let text = String::from_utf8_lossy(&line[..n - 1]).into_owned();
        batch.lines.push((batch.end, text));
        batch.end += n as u64;
        bytes += n;
    }
    Ok(batch)
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

/// `callgate records find|export --shared URL`: the call records of every instance sharing
/// the database at `url` that `filter` keeps, as the export or find of one log writes them.
pub fn export(
    url: &str,
    filter: &crate::records::export::CallFilter,
    form: crate::records::export::Form,
    out: &mut dyn std::io::Write,
) -> Result<u64, SharedError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SharedError::Journal)?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        form.start(out).map_err(SharedError::Journal)?;
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
            form.write(out, c)
        })
        .await?;
        Ok(kept)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_shipped_only_once_it_is_whole() {
        let log = b"{\"a\":1}\n{\"a\":2}\n{\"a\":";
        let batch = read_batch(&mut &log[..], 100).unwrap();
        assert_eq!(batch.lines.len(), 2);
        assert_eq!(batch.lines[1], (108, "{\"a\":2}".to_string()));
        assert_eq!(batch.end, 116, "up to the end of the last whole line");
        assert!(batch.partial);
    }

    #[test]
    fn the_next_batch_must_follow_the_hash_of_the_last_line_shipped() {
        let first = format!("{{\"a\":1,\"prev\":\"{}\"}}", "0".repeat(64));
        let next = format!(
            "{{\"a\":2,\"prev\":\"{}\"}}",
            crate::audit::chain::line_hash(first.as_bytes())
        );
        assert_eq!(
            prev_of(&next),
            Some(crate::audit::chain::line_hash(first.as_bytes()).as_str())
        );
        assert_eq!(prev_of("{\"a\":3}"), None);
    }
}
