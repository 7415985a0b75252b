//! Rolling-window call counters per called number (and per campaign subject), for frequency
//! caps. Counted at decision time for calls that were forwarded; journaled so that a restart
//! does not reset anyone's count; entries older than the longest window are swept.

use anyhow::Context;
use dashmap::DashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

/// The largest `calls` a cap may have: each key keeps its last MAX_CAP call times.
pub(crate) const MAX_CAP: usize = 8;

/// The most `kind = "cap"` rules a rule book may have (checked at load): a decision keeps
/// the caps it consulted in this much fixed room.
pub(crate) const MAX_CAP_RULES: usize = 8;
const RECORD: usize = 24;

/// (called number as E.164 digits, subject hash or 0 for per-number caps).
pub(crate) type CapKey = (u64, u64);

/// A cap a call must be counted against in the shared database (`[shared]`), where every
/// instance's calls are counted: the check that asked, so its outcome can be settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapDue {
    pub key: CapKey,
    pub calls: u8,
    pub window_secs: u32,
    pub check: super::Check,
}

/// The caps a decision left to the shared count (fixed capacity: deciding does not allocate).
#[derive(Clone, Copy, Debug, Default)]
pub struct CapsDue {
    items: [Option<CapDue>; MAX_CAP_RULES],
    /// The call goes ahead whatever the count says (a shadow campaign's would-block): it is
    /// counted even past a cap, as it is placed.
    pub counted_anyway: bool,
}

impl CapsDue {
    /// False when full (cannot happen within `MAX_CAP_RULES`): the caller fails the cap
    /// closed rather than leave it uncounted.
    pub(crate) fn push(&mut self, due: CapDue) -> bool {
        match self.items.iter_mut().find(|i| i.is_none()) {
            Some(slot) => {
                *slot = Some(due);
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = CapDue> + '_ {
        self.items.iter().map_while(|i| *i)
    }

    pub fn is_empty(&self) -> bool {
        self.items[0].is_none()
    }
}

/// The shared count of a call could not be made (database unreachable, slow, or too many
/// counts waiting): the call's caps are unknown.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CapsUnknown(pub String);

/// The index (in `CapsDue` order) of the first cap already reached, or None: counted.
pub type CapAnswer = Result<Option<usize>, CapsUnknown>;

/// Counts kept outside this process, shared by every instance: the shared database.
pub trait CapCounter: Send + Sync {
    /// Count a call made at `at` (Unix seconds) against every cap in `due`, unless one of
    /// them is already reached (and `due.counted_anyway` is not set); `done` gets the answer,
    /// once, within the configured timeout. Never blocks the caller.
    fn count(&self, due: CapsDue, at: i64, done: Box<dyn FnOnce(CapAnswer) + Send>);
}

#[derive(Clone, Copy, Default)]
struct Ring {
    /// Unix seconds of the latest calls, newest at `(next - 1) % MAX_CAP`.
    ts: [u32; MAX_CAP],
    len: u8,
    next: u8,
}

impl Ring {
    fn push(&mut self, t: u32) {
        self.ts[self.next as usize] = t;
        self.next = ((self.next as usize + 1) % MAX_CAP) as u8;
        self.len = (self.len + 1).min(MAX_CAP as u8);
    }
    fn count_since(&self, after: u32) -> u8 {
        self.ts[..self.len as usize]
            .iter()
            .filter(|t| **t > after)
            .count() as u8
    }
    fn newest(&self) -> u32 {
        self.ts[..self.len as usize]
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// How many locks the called numbers are spread over (`CapStore::hold`).
const STRIPES: usize = 64;

pub struct CapStore {
    map: DashMap<CapKey, Ring>,
    /// A committing decision holds its called number's stripe from the first count to the
    /// last record, so two SIP workers deciding calls to one number cannot both see room
    /// under a cap and both take it.
    stripes: [Mutex<()>; STRIPES],
    journal: Mutex<Option<mpsc::Sender<[u8; RECORD]>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Longest window of the rules in force: older entries are dropped.
    retain_secs: AtomicU32,
    path: Option<PathBuf>,
}

impl CapStore {
    /// Counters only in memory (tests, `callgate check`).
    pub fn in_memory() -> CapStore {
        CapStore {
            map: DashMap::new(),
            stripes: std::array::from_fn(|_| Mutex::new(())),
            journal: Mutex::new(None),
            writer: Mutex::new(None),
            retain_secs: AtomicU32::new(366 * 86_400),
            path: None,
        }
    }

    /// Replay the journal (entries younger than 366 days), rewrite it compacted, and start the
    /// writer that appends new counts and fsyncs them every `flush`.
    pub fn open(path: &Path, now: i64, flush: Duration) -> anyhow::Result<CapStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create directory", dir.display()))?;
        }
        let store = CapStore {
            path: Some(path.to_path_buf()),
            ..CapStore::in_memory()
        };
        let mut bytes = Vec::new();
        if let Ok(mut f) = File::open(path) {
            f.read_to_end(&mut bytes)
                .with_context(|| format!("{}: read error", path.display()))?;
        }
        // A torn final record (crash mid-write) is cut: it was never counted anywhere else.
        let whole = bytes.len() / RECORD * RECORD;
        let horizon = (now - 366 * 86_400).max(0) as u32;
        let mut kept = Vec::with_capacity(whole);
        for r in bytes[..whole].chunks_exact(RECORD) {
            let (n, s, t) = decode(r);
            if t > horizon {
                store.map.entry((n, s)).or_default().push(t);
                kept.extend_from_slice(r);
            }
        }
        crate::journal::replace_file(path, &[&kept])
            .with_context(|| format!("{}", path.display()))?;
        let file = OpenOptions::new().append(true).open(path)?;
        let (tx, rx) = mpsc::channel::<[u8; RECORD]>();
        let handle = std::thread::Builder::new()
            .name("caps-journal".into())
            .spawn(move || run_writer(file, rx, flush))?;
        *store.journal.lock().unwrap() = Some(tx);
        *store.writer.lock().unwrap() = Some(handle);
        tracing::info!(file = %path.display(), keys = store.map.len(), "frequency-cap counters replayed");
        Ok(store)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub(crate) fn set_retain_secs(&self, secs: u32) {
        self.retain_secs.store(secs.max(1), Ordering::Relaxed);
    }

    /// Hold the counters of calls to `number` (every subject) until the guard drops: a
    /// count and the record that follows it are then one step.
    pub(crate) fn hold(&self, number: u64) -> std::sync::MutexGuard<'_, ()> {
        // Fibonacci hashing: consecutive numbers land on different stripes.
        let i = (number.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % STRIPES;
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls to `key` counted within the `window_secs` before `now`.
    pub fn count(&self, key: CapKey, window_secs: u32, now: i64) -> u8 {
        let after = (now - window_secs as i64).max(0) as u32;
        self.map.get(&key).map_or(0, |r| r.count_since(after))
    }

    /// Count one call now.
    pub fn record(&self, key: CapKey, now: i64) {
        let t = now.max(0) as u32;
        self.map.entry(key).or_default().push(t);
        if let Some(tx) = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            let _ = tx.send(encode(key, t));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drop keys whose newest call is older than the longest window. Returns how many.
    pub(crate) fn sweep(&self, now: i64) -> usize {
        let before = self.map.len();
        let after = (now - self.retain_secs.load(Ordering::Relaxed) as i64).max(0) as u32;
        self.map.retain(|_, r| r.newest() > after);
        before - self.map.len()
    }

    /// Flush and stop the journal writer.
    pub fn shutdown(&self) {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

fn encode(k: CapKey, t: u32) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..8].copy_from_slice(&k.0.to_le_bytes());
    r[8..16].copy_from_slice(&k.1.to_le_bytes());
    r[16..20].copy_from_slice(&t.to_le_bytes());
    r
}

fn decode(r: &[u8]) -> (u64, u64, u32) {
    (
        u64::from_le_bytes(r[..8].try_into().unwrap()),
        u64::from_le_bytes(r[8..16].try_into().unwrap()),
        u32::from_le_bytes(r[16..20].try_into().unwrap()),
    )
}

fn run_writer(mut file: File, rx: mpsc::Receiver<[u8; RECORD]>, flush: Duration) {
    let mut buf = Vec::new();
    loop {
        let first = match rx.recv_timeout(flush) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        buf.extend(first.iter().flatten());
        while let Ok(r) = rx.try_recv() {
            buf.extend_from_slice(&r);
        }
        if !buf.is_empty() {
            if let Err(e) = file.write_all(&buf).and_then(|_| file.sync_data()) {
                tracing::error!(error = %e, "frequency-cap journal write failed");
            }
            buf.clear();
        }
    }
    while let Ok(r) = rx.try_recv() {
        buf.extend_from_slice(&r);
    }
    let _ = file.write_all(&buf).and_then(|_| file.sync_data());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_the_window() {
        let c = CapStore::in_memory();
        let k = (12125550100, 0);
        c.record(k, 1_000);
        c.record(k, 50_000);
        assert_eq!(c.count(k, 86_400, 60_000), 2);
        assert_eq!(
            c.count(k, 86_400, 1_000 + 86_400),
            1,
            "the first call left the window"
        );
    }

    #[test]
    fn counters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("caps.bin");
        let now = 1_800_000_000;
        let c = CapStore::open(&p, now, Duration::from_millis(5)).unwrap();
        c.record((1, 2), now);
        c.record((1, 2), now + 1);
        c.shutdown();
        let c = CapStore::open(&p, now + 10, Duration::from_millis(5)).unwrap();
        assert_eq!(c.count((1, 2), 3600, now + 10), 2);
    }

    #[test]
    fn sweep_drops_expired_keys() {
        let c = CapStore::in_memory();
        c.set_retain_secs(100);
        c.record((1, 0), 1_000);
        c.record((2, 0), 1_950);
        assert_eq!(c.sweep(2_000), 1);
        assert_eq!(c.len(), 1);
    }
}
