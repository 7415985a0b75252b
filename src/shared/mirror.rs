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
use crate::clock::SharedClock;
use crate::records::cluster::mirror_dir;
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
    };
    loop {
        match m.pass().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => {
                m.client = None;
                m.shared.metrics.mirror_errors.inc();
                tracing::warn!(error = %e, "shared database: other instances' records not copied; trying again");
            }
        }
        tokio::time::sleep(pause).await;
    }
}

struct Mirror {
    shared: Arc<Shared>,
    parts: MirrorParts,
    client: Option<Client>,
    copies: HashMap<(String, String), Copy>,
    /// Days whose table does not continue the copy: not copied again until a restart.
    stopped: HashSet<(String, String)>,
}

impl Mirror {
    /// One batch of the first day with lines shipped and not copied: whether one was copied.
    async fn pass(&mut self) -> Result<bool, SharedError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(self.shared.connect().await?);
        }
        let client = self.client.as_ref().ok_or(SharedError::Closed)?;
        let oldest = self.oldest_day();
        let shared = self.shared.clone();
        let days = shared
            .bounded(shipped_days(client, &shared.instance, &oldest))
            .await?;
        for (instance, day, shipped) in days {
            let key = (instance, day);
            if self.stopped.contains(&key) {
                continue;
            }
            let file = day_file(&self.parts.dir, &key.0, &key.1);
            if !self.copies.contains_key(&key) {
                let copy = open_copy(&file).map_err(SharedError::Journal)?;
                self.copies.insert(key.clone(), copy);
            }
            let from = self.copies[&key].len;
            if from >= shipped {
                continue;
            }
            let rows = shared
                .bounded(lines_from(client, &key.0, &key.1, from))
                .await?;
            let copy = self.copies.get_mut(&key).expect("inserted above");
            match append(&file, copy, &rows) {
                Ok(n) => {
                    shared.metrics.records_mirrored.inc_by(n);
                    return Ok(true);
                }
                Err(Append::Io(e)) => return Err(SharedError::Journal(e)),
                Err(Append::Differs(at, why)) => {
                    shared.metrics.mirror_errors.inc();
                    tracing::error!(instance = %key.0, day = %key.1, at, why, "the cluster's records do not continue this instance's copy of them: the day is not copied further");
                    self.stopped.insert(key);
                }
            }
        }
        Ok(false)
    }

    /// The oldest day's file name still within the retention.
    fn oldest_day(&self) -> String {
        let days = chrono::Duration::days(i64::from(self.parts.retention_days));
        let day = self.parts.clock.now().date_naive() - days;
        format!("audit-{}", day.format("%Y-%m-%d"))
    }
}

fn day_file(dir: &Path, instance: &str, day: &str) -> PathBuf {
    mirror_dir(dir, instance).join(format!("{day}.jsonl"))
}

/// Each other instance's days within the retention, and how far each has been shipped.
async fn shipped_days(
    client: &Client,
    me: &str,
    oldest: &str,
) -> Result<Vec<(String, String, u64)>, SharedError> {
    let rows = client
        .query(
            "SELECT instance, day, shipped FROM callgate_record_positions
             WHERE instance <> $1 AND day >= $2 ORDER BY day, instance",
            &[&me, &oldest],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let shipped: i64 = r.try_get(2)?;
            Ok((r.try_get(0)?, r.try_get(1)?, shipped.max(0) as u64))
        })
        .collect()
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
        .map(|s| super::ship::line_hash(&String::from_utf8_lossy(&tail[s..end])));
    Ok(Copy {
        len: start + end as u64 + 1,
        last_hash,
    })
}

enum Append {
    Io(std::io::Error),
    /// The table does not continue the copy: where, and why.
    Differs(u64, String),
}

/// Append `rows` to the copy, checked to continue it (each where the last ended, naming its
/// hash), and fsync it: how many lines were appended.
fn append(file: &Path, copy: &mut Copy, rows: &[(u64, String)]) -> Result<u64, Append> {
    let mut out = Vec::new();
    let mut at = copy.len;
    let mut last = copy.last_hash.clone();
    for (row_at, line) in rows {
        if *row_at != at {
            return Err(Append::Differs(
                at,
                format!("the next line starts at byte {row_at}"),
            ));
        }
        let prev = super::ship::prev_of(line);
        if let (Some(last), Some(prev)) = (&last, prev) {
            if last != prev {
                return Err(Append::Differs(
                    at,
                    "the line does not name the hash of the line before it".into(),
                ));
            }
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        at += line.len() as u64 + 1;
        last = Some(super::ship::line_hash(line));
    }
    if out.is_empty() {
        return Ok(0);
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(Append::Io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(Append::Io)?;
    f.write_all(&out).map_err(Append::Io)?;
    f.sync_data().map_err(Append::Io)?;
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
        let second = line(&super::super::ship::line_hash(&first), 2);
        let mut copy = open_copy(&file).unwrap();
        let rows = vec![(0, first.clone()), (first.len() as u64 + 1, second.clone())];
        assert_eq!(append(&file, &mut copy, &rows).ok(), Some(2));
        let forged = line(&zero, 3);
        let at = copy.len;
        assert!(matches!(
            append(&file, &mut copy, &[(at, forged)]),
            Err(Append::Differs(..))
        ));
        assert!(matches!(
            append(&file, &mut copy, &[(at + 1, line(&zero, 4))]),
            Err(Append::Differs(..))
        ));
        let again = open_copy(&file).unwrap();
        assert_eq!(again.len, copy.len);
        assert_eq!(again.last_hash, copy.last_hash);
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
