//! Every other instance's log, copied from the cluster's records table into this instance's
//! audit directory (`cluster/<instance>/`, see `records::cluster`): the same lines, in the
//! same day's files, at the same offsets, so the console and reports of any instance read the
//! whole cluster through the same records index, and `callgate audit verify` checks each copy
//! as it checks a log. A day is copied past the end of its copy, a batch at a time, only as far
//! as its instance has shipped it, each batch fsynced. Each line must start where the copy
//! ends and name the hash of the line before it: a table that does not continue the copy
//! stops that day's copy, loudly, rather than mix lines. Days past `records.retention_days`
//! are not copied (a pruned copy is not fetched again).

use super::{Shared, SharedError};
use crate::audit::chain::line_hash;
use crate::clock::SharedClock;
use crate::records::cluster::mirror_dir;
use crate::records::index::Index;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// Rows per fetch at most.
const BATCH_ROWS: i64 = 2_000;
/// How far back from a copy's end its last whole line is looked for when the copy is first
/// seen (a line is far shorter: the SIP core bounds what a record holds).
const TAIL: u64 = 1 << 20;

/// What the mirror needs of the running instance.
pub(crate) struct MirrorParts {
    /// The audit directory (the copies go under `cluster/`).
    pub dir: PathBuf,
    pub clock: SharedClock,
    pub retention_days: u32,
}

/// Start copying the other instances' logs on a thread of its own (it runs as long as the
/// process).
pub(crate) fn spawn_mirror(shared: Arc<Shared>, parts: MirrorParts) -> std::io::Result<()> {
    super::spawn_thread("shared-mirror", mirror_forever(shared, parts))
}

/// A copied day: how long the copy is and the hash of its last line.
struct Copy {
    len: u64,
    last_hash: Option<String>,
}

async fn mirror_forever(shared: Arc<Shared>, parts: MirrorParts) {
    let pause = Duration::from_millis(shared.cfg.poll_ms);
    let mut m = Mirror {
        shared,
        parts,
        client: None,
        copies: HashMap::new(),
        stopped: HashSet::new(),
        indexes: HashMap::new(),
    };
    loop {
        if let Err(e) = m.pass().await {
            m.client = None;
            m.shared.metrics.mirror_errors.inc();
            tracing::warn!(error = %e, "shared database: other instances' records not copied; trying again");
        }
        tokio::time::sleep(pause).await;
    }
}

/// An instance and one of its days (`audit-YYYY-MM-DD`).
type Day = (String, String);

struct Mirror {
    shared: Arc<Shared>,
    parts: MirrorParts,
    client: Option<Client>,
    copies: HashMap<Day, Copy>,
    /// Days whose table does not continue the copy: not copied again until a restart.
    stopped: HashSet<Day>,
    /// Each copy's records index, brought up to the copy after it grows (so the console never
    /// indexes a whole copy while someone waits).
    indexes: HashMap<String, Index>,
}

impl Mirror {
    /// Copy every day shipped past its copy, as far as it was shipped when the pass began.
    /// The database's failures end the pass; a day's own (its file, its lines) end that day's
    /// part of it only, so one day never holds up the others.
    async fn pass(&mut self) -> Result<(), SharedError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.shared.connect().await?);
        }
        let oldest = self.oldest_day();
        let shared = self.shared.clone();
        let client = self.client.as_ref().ok_or(SharedError::Closed)?;
        let days = shared
            .bounded(shipped_days(client, &shared.instance, &oldest))
            .await?;
        let mut grown = HashSet::new();
        for (key, shipped) in days {
            if self.stopped.contains(&key) {
                continue;
            }
            match self.copy_day(&key, shipped).await {
                Ok(0) => {}
                Ok(_) => {
                    grown.insert(key.0.clone());
                }
                Err(Failed::Db(e)) => return Err(e),
                Err(Failed::Day(e)) => self.day_failed(key, e),
            }
        }
        for instance in grown {
            self.index(&instance);
        }
        Ok(())
    }

    /// Copy one day up to `shipped`, a batch at a time: how many lines were copied.
    async fn copy_day(&mut self, key: &Day, shipped: u64) -> Result<u64, Failed> {
        let file = day_file(&self.parts.dir, &key.0, &key.1);
        let mut copied = 0;
        loop {
            let copy = match self.copies.remove(key) {
                Some(c) => c,
                None => open_copy(&file).map_err(|e| Failed::Day(e.to_string()))?,
            };
            let from = copy.len;
            self.copies.insert(key.clone(), copy);
            if from >= shipped {
                return Ok(copied);
            }
            let client = self
                .client
                .as_ref()
                .ok_or(Failed::Db(SharedError::Closed))?;
            let rows = self
                .shared
                .bounded(lines_from(client, &key.0, &key.1, from))
                .await
                .map_err(Failed::Db)?;
            let copy = self.copies.get_mut(key).expect("inserted above");
            let n = append(&file, copy, &rows).inspect_err(|_| {
                // Read again from the file: what it holds is the truth.
                self.copies.remove(key);
            })?;
            if n == 0 {
                // Shipped further than the table holds yet (a batch being committed).
                return Ok(copied);
            }
            self.shared.metrics.records_mirrored.inc_by(n);
            copied += n;
        }
    }

    fn day_failed(&mut self, key: Day, why: String) {
        self.shared.metrics.mirror_errors.inc();
        let (instance, day) = (&key.0, &key.1);
        match why.starts_with(DIFFERS) {
            true => {
                tracing::error!(%instance, %day, %why, "the cluster's records do not continue this instance's copy of them: the day is not copied further");
                self.stopped.insert(key);
            }
            false => {
                tracing::warn!(%instance, %day, %why, "a day of another instance's records not copied; trying again")
            }
        }
    }

    /// Bring the records index of `instance`'s copy up to it.
    fn index(&mut self, instance: &str) {
        let dir = mirror_dir(&self.parts.dir, instance);
        let caught_up = (|| -> Result<(), String> {
            let index = match self.indexes.entry(instance.to_string()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Index::open(&dir).map_err(|e| e.to_string())?)
                }
            };
            let files = crate::audit::chain::audit_files(&dir).map_err(|e| e.to_string())?;
            index.catch_up(&files).map_err(|e| e.to_string())?;
            Ok(())
        })();
        if let Err(e) = caught_up {
            self.indexes.remove(instance);
            tracing::warn!(%instance, error = %e, "the records index of another instance's copy is behind it (the console catches it up)");
        }
    }

    /// The oldest day's file name still within the retention.
    fn oldest_day(&self) -> String {
        let days = chrono::Duration::days(i64::from(self.parts.retention_days));
        let day = self.parts.clock.now().date_naive() - days;
        format!("audit-{}", day.format("%Y-%m-%d"))
    }
}

/// Why a day was not copied: the database (ends the pass) or the day itself.
enum Failed {
    Db(SharedError),
    Day(String),
}

/// How a day whose table does not continue its copy is told apart (it is not tried again).
const DIFFERS: &str = "differs: ";

fn day_file(dir: &Path, instance: &str, day: &str) -> PathBuf {
    mirror_dir(dir, instance).join(format!("{day}.jsonl"))
}

/// Each other instance's days within the retention, and how far each has been shipped.
async fn shipped_days(
    client: &Client,
    me: &str,
    oldest: &str,
) -> Result<Vec<(Day, u64)>, SharedError> {
    let rows = client
        .query(
            "SELECT instance, day, shipped FROM callgate_record_positions
             WHERE instance <> $1 AND day >= $2 ORDER BY day, instance",
            &[&me, &oldest],
        )
        .await?;
    let mut days = Vec::with_capacity(rows.len());
    for r in &rows {
        let (instance, day): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        let shipped: i64 = r.try_get(2)?;
        // The names become paths here: only a log's own day names are taken.
        match is_day_name(&day) && !instance.is_empty() {
            true => days.push(((instance, day), shipped.max(0) as u64)),
            false => {
                tracing::warn!(%instance, %day, "callgate_record_positions: a row that names no day of a log is not copied")
            }
        }
    }
    Ok(days)
}

/// `audit-YYYY-MM-DD`, a real day.
fn is_day_name(day: &str) -> bool {
    day.len() == "audit-YYYY-MM-DD".len()
        && crate::audit::chain::day_of(Path::new(&format!("{day}.jsonl"))).is_some()
}

/// A day's lines from byte `from` on, in order, a batch at most.
async fn lines_from(
    client: &Client,
    instance: &str,
    day: &str,
    from: u64,
) -> Result<Vec<(u64, String)>, SharedError> {
    let rows = client
        .query(
            "SELECT at_byte, line FROM callgate_records
             WHERE instance = $1 AND day = $2 AND at_byte >= $3 ORDER BY at_byte LIMIT $4",
            &[&instance, &day, &(from as i64), &BATCH_ROWS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let at: i64 = r.try_get(0)?;
            Ok((at.max(0) as u64, r.try_get(1)?))
        })
        .collect()
}

/// The copy of a day as this instance holds it: a line cut short by a crash while it was
/// written is cut off, so the copy ends at a whole line.
fn open_copy(file: &Path) -> std::io::Result<Copy> {
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Copy {
                len: 0,
                last_hash: None,
            })
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut tail)?;
    let Some(end) = tail.iter().rposition(|b| *b == b'\n') else {
        if start > 0 {
            return Err(std::io::Error::other(format!(
                "{}: no whole line in its last {TAIL} bytes",
                file.display()
            )));
        }
        f.set_len(0)?;
        return Ok(Copy {
            len: 0,
            last_hash: None,
        });
    };
    if start + end as u64 + 1 < len {
        f.set_len(start + end as u64 + 1)?;
        f.sync_data()?;
    }
    let line_start = tail[..end].iter().rposition(|b| *b == b'\n').map(|i| i + 1);
    let last_hash = line_start
        .or((start == 0).then_some(0))
        .map(|s| line_hash(&tail[s..end]));
    Ok(Copy {
        len: start + end as u64 + 1,
        last_hash,
    })
}

/// Append `rows` to the copy, checked to continue it (each where the last ended, naming its
/// hash) and the file to be as long as the copy is known to be, and fsync it: how many lines
/// were appended. A write that fails is cut off again.
fn append(file: &Path, copy: &mut Copy, rows: &[(u64, String)]) -> Result<u64, Failed> {
    let mut out = Vec::new();
    let mut at = copy.len;
    let mut last = copy.last_hash.clone();
    for (row_at, line) in rows {
        let differs = |why: String| Failed::Day(format!("{DIFFERS}byte {at}: {why}"));
        if *row_at != at {
            return Err(differs(format!("the next line starts at byte {row_at}")));
        }
        match (&last, super::ship::prev_of(line)) {
            (_, None) => return Err(differs("a line without `prev`".into())),
            (Some(last), Some(prev)) if last != prev => {
                return Err(differs(
                    "the line does not name the hash of the line before it".into(),
                ))
            }
            _ => {}
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        at += line.len() as u64 + 1;
        last = Some(line_hash(line.as_bytes()));
    }
    if out.is_empty() {
        return Ok(0);
    }
    let io = |e: std::io::Error| Failed::Day(format!("{}: {e}", file.display()));
    // Not while a prune removes files.
    let _moving = crate::audit::chain::FILES_MOVING
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len != copy.len {
        let why = format!("is {len} bytes long, not {} as copied", copy.len);
        return Err(io(std::io::Error::other(why)));
    }
    if let Err(e) = f.write_all(&out).and_then(|()| f.sync_data()) {
        let _ = f.set_len(copy.len);
        return Err(io(e));
    }
    copy.len = at;
    copy.last_hash = last;
    Ok(rows.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(prev: &str, n: u32) -> String {
        format!("{{\"n\":{n},\"prev\":\"{prev}\"}}")
    }

    #[test]
    fn a_copy_grows_only_by_lines_that_continue_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit-2026-12-07.jsonl");
        let zero = "0".repeat(64);
        let first = line(&zero, 1);
        let second = line(&line_hash(first.as_bytes()), 2);
        let mut copy = open_copy(&file).unwrap();
        let rows = vec![(0, first.clone()), (first.len() as u64 + 1, second.clone())];
        assert_eq!(append(&file, &mut copy, &rows).ok(), Some(2));
        let forged = line(&zero, 3);
        let at = copy.len;
        assert!(matches!(
            append(&file, &mut copy, &[(at, forged)]),
            Err(Failed::Day(..))
        ));
        assert!(matches!(
            append(&file, &mut copy, &[(at + 1, line(&zero, 4))]),
            Err(Failed::Day(..))
        ));
        // A copy changed under the mirror (removed, cut) is not written past.
        std::fs::write(&file, "").unwrap();
        let rows = [(copy.len, line(copy.last_hash.as_deref().unwrap(), 5))];
        assert!(matches!(
            append(&file, &mut copy, &rows),
            Err(Failed::Day(..))
        ));
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
        std::fs::write(&file, format!("{first}\n{second}\n")).unwrap();
        let again = open_copy(&file).unwrap();
        assert_eq!(again.len, copy.len);
        assert_eq!(again.last_hash, copy.last_hash);
    }

    #[test]
    fn only_a_logs_day_names_become_file_names() {
        assert!(is_day_name("audit-2026-12-07"));
        for bad in [
            "audit-2026-12-07/../../x",
            "audit-2026-13-01",
            "../audit",
            "audit-2026-12-7",
        ] {
            assert!(!is_day_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_line_cut_short_in_a_copy_is_cut_off_when_it_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit-2026-12-07.jsonl");
        std::fs::write(&file, "{\"a\":1}\n{\"b\":").unwrap();
        let copy = open_copy(&file).unwrap();
        assert_eq!(copy.len, 8);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 8);
    }
}
