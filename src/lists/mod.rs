//! Do-Not-Call lists: what is loaded (`ListSet`, an immutable snapshot), where it came from
//! (`ListMeta`), and how a new snapshot replaces the old one (`ListStore::reload`, one atomic
//! pointer swap: a call sees the old lists or the new ones, never a mix).

pub mod compact;
pub mod compile;
pub mod ftc;
pub mod load;
pub mod mem;
pub mod optouts;
pub mod set;
pub mod snapshot;
pub mod synth;
pub mod tools;

use crate::clock::SharedClock;
use crate::config::ListsConfig;
use crate::number::E164;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use load::{ListError, Manifest, ManifestEntry};
pub use optouts::OptOuts;
use set::BlockedBloom;
pub use set::NumberSet;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct ListId(pub Arc<str>);

impl std::fmt::Display for ListId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// The FTC National Do-Not-Call Registry (subject to the 31-day rule).
    National,
    /// A state's own do-not-call list.
    State,
    /// The seller's entity-specific list (opt-outs).
    Internal,
    /// Anything else: litigators, partner suppression lists.
    Custom,
    /// Not a do-not-call list: wireless numbers (line type for the PEWC and wireless no-call
    /// rules).
    Wireless,
}

/// Where a loaded list came from, for decision records and `/readyz`.
#[derive(Clone, Debug, Serialize)]
pub struct ListMeta {
    pub id: ListId,
    pub kind: ListKind,
    pub file: PathBuf,
    pub sha256: String,
    pub entries: usize,
    pub source_date: Option<String>,
    /// When the list was downloaded from its source (the 31-day rule counts from here).
    pub downloaded: Option<DateTime<Utc>>,
    /// Shipped sample data: treated as downloaded when loaded. Never compliance evidence.
    pub sample: bool,
    pub loaded_at: DateTime<Utc>,
    pub state: Option<String>,
    /// The country whose numbers a national list concerns (US unless the manifest says).
    #[serde(skip_serializing_if = "crate::number::geo::Country::is_us")]
    pub country: crate::number::geo::Country,
    #[serde(skip)]
    pub state_code: Option<crate::number::geo::State>,
    pub max_age_days: Option<u32>,
    /// Entries take effect this many days after they first appear (MA, WY: 60).
    pub effective_after_days: Option<u32>,
    /// First-appearance dates of entries (from the manifest's `first_seen` file).
    #[serde(skip)]
    pub first_seen: Option<Arc<std::collections::HashMap<u64, chrono::NaiveDate>>>,
    /// The snapshot's own metadata, when the list was loaded from one.
    #[serde(skip)]
    pub snapshot: Option<snapshot::SnapshotMeta>,
    #[serde(skip)]
    pub stamp: load::FileStamp,
}

impl ListMeta {
    /// Short version string: content hash prefix.
    pub fn version(&self) -> String {
        format!("sha256:{}", &self.sha256[..16.min(self.sha256.len())])
    }

    /// Age counted from the download date (or the load time for sample data).
    pub fn age(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let from = if self.sample {
            Some(self.loaded_at)
        } else {
            self.downloaded
        };
        from.map(|d| now - d)
    }
}

pub struct LoadedList {
    pub meta: ListMeta,
    pub set: Arc<compact::CompactSet>,
}

impl LoadedList {
    /// A list with no file behind it (benchmarks, tests, `callgate lists` tools).
    pub fn in_memory(id: &str, kind: ListKind, set: compact::CompactSet) -> LoadedList {
        let now = Utc::now();
        LoadedList {
            meta: ListMeta {
                id: ListId(id.into()),
                kind,
                file: PathBuf::new(),
                sha256: String::new(),
                entries: set.len(),
                source_date: None,
                downloaded: Some(now),
                sample: false,
                loaded_at: now,
                state: None,
                country: crate::number::geo::Country::US,
                state_code: None,
                max_age_days: None,
                effective_after_days: None,
                first_seen: None,
                snapshot: None,
                stamp: load::FileStamp {
                    len: 0,
                    modified_ns: -1,
                    inode: 0,
                },
            },
            set: Arc::new(set),
        }
    }
}

impl LoadedList {
    /// An entry not yet in force: it first appeared less than `effective_after_days` ago.
    /// Entries without a known first appearance are in force (the safe side).
    pub(crate) fn pending(&self, n: E164, now: DateTime<Utc>) -> bool {
        match (self.meta.effective_after_days, &self.meta.first_seen) {
            (Some(days), Some(seen)) => seen
                .get(&n.as_u64())
                .is_some_and(|d| now.date_naive() < *d + chrono::Duration::days(days as i64)),
            _ => false,
        }
    }
}

/// A configured list that could not be loaded and has no earlier version in service.
#[derive(Clone, Debug, Serialize)]
pub struct Unavailable {
    pub id: ListId,
    pub kind: ListKind,
    pub country: crate::number::geo::Country,
    pub error: String,
}

/// One immutable generation of all lists.
pub struct ListSet {
    pub generation: u64,
    pub lists: Vec<LoadedList>,
    pub unavailable: Vec<Unavailable>,
    prefilter: Prefilter,
    /// Bit i set: `lists[i]` is a wireless (line-type) list; 0: line type unknown.
    pub wireless_mask: u64,
    /// When lists go stale, worked out once per generation by the policy (keyed by its default
    /// maximum age) rather than per call.
    pub stale_cache: std::sync::OnceLock<(u32, StaleTimes)>,
    /// The audit record's `lists` array when no list matched (nearly every call), rendered
    /// once per generation by the audit writer instead of once per record.
    pub audit_lists: std::sync::OnceLock<Option<Box<serde_json::value::RawValue>>>,
}

/// The instants at which the lists stop being fresh.
#[derive(Clone, Copy, Debug)]
pub struct StaleTimes {
    /// `None`: no national list (always stale).
    pub national: Option<DateTime<Utc>>,
    /// The earliest over the other lists with a download date; `None`: none can go stale.
    pub others: Option<DateTime<Utc>>,
}

/// The one probe every call pays: a blocked bloom filter over the union of all lists (one
/// cache line, ~1% false positives), so a number on no list costs the same however many lists
/// are loaded. Only on a "maybe" are the lists asked, and only those holding anything in the
/// number's NPA-NXX block (`masks`, 2.5 MB); their exact containers decide and say which lists
/// matched.
struct Prefilter {
    bloom: BlockedBloom,
    masks: Box<[u32]>,
    /// Lists holding numbers outside the NANP block space (probed for such numbers only).
    other: u64,
}

/// Lists beyond this are probed whenever bit 31 (`OVERFLOW`) is set in the block's mask.
pub(crate) const PREFILTERED_LISTS: usize = 31;
const OVERFLOW: u32 = 1 << 31;
pub(crate) const MAX_LISTS: usize = 64;

impl Prefilter {
    fn build(lists: &[LoadedList]) -> Prefilter {
        let mut masks = vec![0u32; compact::BLOCKS].into_boxed_slice();
        let mut other = 0u64;
        let keys: usize = lists.iter().map(|l| l.set.len_in_blocks()).sum();
        let mut bloom = BlockedBloom::with_capacity(keys);
        let mut ins = bloom.inserter();
        for (i, l) in lists.iter().enumerate().take(MAX_LISTS) {
            let bit = if i >= PREFILTERED_LISTS {
                OVERFLOW
            } else {
                1 << i
            };
            for (b, m) in masks.iter_mut().enumerate() {
                if !l.set.block_is_empty(b) {
                    *m |= bit;
                }
            }
            if l.set.has_other() {
                other |= 1 << i;
            }
            l.set.for_each_in_blocks(|n| ins.push(n));
        }
        drop(ins);
        Prefilter {
            bloom,
            masks,
            other,
        }
    }

    fn memory_bytes(&self) -> usize {
        self.bloom.memory_bytes() + self.masks.len() * 4
    }
}

impl ListSet {
    pub fn new(generation: u64, lists: Vec<LoadedList>, unavailable: Vec<Unavailable>) -> ListSet {
        let prefilter = Prefilter::build(&lists);
        let wireless_mask = lists
            .iter()
            .enumerate()
            .filter(|(_, l)| l.meta.kind == ListKind::Wireless)
            .fold(0, |m, (i, _)| m | 1 << i);
        ListSet {
            generation,
            lists,
            unavailable,
            prefilter,
            wireless_mask,
            stale_cache: std::sync::OnceLock::new(),
            audit_lists: std::sync::OnceLock::new(),
        }
    }

    /// Whether the prefilter alone would send `n` on to the exact lists (diagnostics: the
    /// benchmark reports the false-positive rate with it).
    pub fn prefilter_maybe(&self, n: E164) -> bool {
        self.prefilter.bloom.may_contain(n.as_u64())
    }

    /// Bytes held by the prefilter (the lists' own structures are counted per list).
    pub fn prefilter_bytes(&self) -> usize {
        self.prefilter.memory_bytes()
    }

    /// Bit i set = `lists[i]` contains the number. The common case, a number on no list, costs
    /// one probe of the prefilter; otherwise only the lists holding numbers in the number's
    /// block are asked, each with one exact container probe.
    #[inline]
    pub fn lookup(&self, n: E164) -> u64 {
        let key = n.as_u64();
        // The bloom holds only numbers in the NANP block space, so a "no" settles those; the
        // rare others (international numbers on a custom list) go to the lists holding any.
        if !self.prefilter.bloom.may_contain(key) {
            return if self.prefilter.other != 0 && compact::split(key).is_none() {
                self.lookup_other(n)
            } else {
                0
            };
        }
        let Some((block, suffix)) = compact::split(key) else {
            return self.lookup_other(n);
        };
        let mask = self.prefilter.masks[block];
        let mut m = (mask & !OVERFLOW) as u64;
        if mask & OVERFLOW != 0 {
            m |= u64::MAX << PREFILTERED_LISTS;
        }
        let mut hits = 0u64;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            match self.lists.get(i) {
                Some(l) if l.set.block_contains(block, suffix) => hits |= 1 << i,
                _ => {}
            }
        }
        hits
    }

    #[cold]
    fn lookup_other(&self, n: E164) -> u64 {
        let mut hits = 0u64;
        let mut m = self.prefilter.other;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            if self.lists[i].set.contains(n) {
                hits |= 1 << i;
            }
        }
        hits
    }

    /// The US national registry.
    pub fn national(&self) -> Option<&LoadedList> {
        self.national_of(crate::number::geo::Country::US)
    }

    /// The national list of `country`'s numbers.
    pub fn national_of(&self, country: crate::number::geo::Country) -> Option<&LoadedList> {
        self.lists
            .iter()
            .find(|l| l.meta.kind == ListKind::National && l.meta.country == country)
    }

    pub(crate) fn national_unavailable(&self) -> bool {
        self.unavailable
            .iter()
            .any(|u| u.kind == ListKind::National && u.country == crate::number::geo::Country::US)
    }
}

/// Nice 10 for the calling thread only (Linux: `setpriority` on a thread id).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// Outcome of a reload, for the API and the log.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    pub generation: u64,
    pub loaded: Vec<String>,
    pub kept: Vec<String>,
    pub failed: Vec<String>,
}

/// Owns the current `ListSet` and the opt-out journal; reloads by atomic swap.
pub struct ListStore {
    current: ArcSwap<ListSet>,
    pub optouts: OptOuts,
    manifest_path: PathBuf,
    data_dir: PathBuf,
    clock: SharedClock,
    generation: AtomicU64,
    reload_lock: Mutex<()>,
    /// The files as they were when the lists in service were read (`lists.watch` compares).
    applied: Mutex<Stamps>,
}

/// The manifest and the files it names, each with its stamp (`None`: missing).
pub type Stamps = Vec<(PathBuf, Option<load::FileStamp>)>;

/// Every problem a start or a reload would meet in the lists: the manifest, then each list
/// file (`callgate config check`). Reads the files and writes nothing.
/// With `files = false`, only the manifest: what stops a start (a bad list file does not: its
/// list is unavailable and its calls fail closed).
pub fn check(cfg: &ListsConfig, now: DateTime<Utc>, files: bool) -> Vec<String> {
    let manifest = match Manifest::load(&cfg.data_dir.join(&cfg.manifest)) {
        Ok(m) => m,
        Err(e) => return vec![e.to_string()],
    };
    if !files {
        return vec![];
    }
    manifest
        .entries
        .iter()
        .filter_map(|e| load::load_entry(&cfg.data_dir, e, now).err())
        .map(|e| e.to_string())
        .collect()
}

impl ListStore {
    /// Load the manifest and every list. A list that fails to load is recorded as unavailable
    /// (and fails calls closed, by policy) rather than stopping the proxy; a manifest or opt-out
    /// journal that cannot be read is an error.
    pub fn open(cfg: &ListsConfig, clock: SharedClock) -> anyhow::Result<ListStore> {
        let manifest_path = cfg.data_dir.join(&cfg.manifest);
        let optouts = OptOuts::open(&cfg.optout_journal, clock.clone())?;
        let store = ListStore {
            current: ArcSwap::from_pointee(ListSet::new(0, vec![], vec![])),
            optouts,
            manifest_path,
            data_dir: cfg.data_dir.clone(),
            clock,
            generation: AtomicU64::new(0),
            reload_lock: Mutex::new(()),
            applied: Mutex::new(vec![]),
        };
        store.note_applied();
        let manifest = Manifest::load(&store.manifest_path)?;
        store.apply(manifest);
        Ok(store)
    }

    /// The lists in service. Cheap: an atomic load, no lock.
    #[inline]
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<ListSet>> {
        self.current.load()
    }

    pub fn snapshot(&self) -> Arc<ListSet> {
        self.current.load_full()
    }

    fn note_applied(&self) {
        let stamps = self.watched_stamps();
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = stamps;
    }

    /// The files as they were when the lists in service were last read (by any reload: a
    /// signal, the API or the watch), whether the reload was accepted or refused.
    pub fn applied_stamps(&self) -> Stamps {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What `lists.watch` compares between two looks: the manifest's stamp and the stamp of
    /// every file it names (a missing file is `None`). Journals are not in it: they change
    /// with every opt-out and are never reloaded.
    pub fn watched_stamps(&self) -> Stamps {
        let mut paths = vec![self.manifest_path.clone()];
        if let Ok(m) = Manifest::load(&self.manifest_path) {
            for e in m.entries {
                paths.push(self.data_dir.join(&e.file));
                if let Some(f) = &e.first_seen {
                    paths.push(self.data_dir.join(f));
                }
            }
        }
        paths
            .into_iter()
            .map(|p| {
                let stamp = load::FileStamp::of(&p).ok();
                (p, stamp)
            })
            .collect()
    }

    /// Re-read the manifest and every list file; swap in the result. A list whose new file is
    /// bad keeps its version in service. A bad manifest changes nothing.
    pub fn reload(&self) -> Result<ReloadReport, ListError> {
        // Noted first: a file that changes while it is read is seen as changed again.
        self.note_applied();
        let manifest = Manifest::load(&self.manifest_path)?;
        // Loading a 250 M snapshot and rebuilding the prefilter is seconds of CPU; on a small
        // box it competes with the SIP thread. A short-lived thread at low priority does it,
        // so calls keep the CPU they need (the measured tail is in docs/contributors/benchmarks.md).
        Ok(std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("list-reload".into())
                .spawn_scoped(s, || {
                    lower_priority();
                    self.apply(manifest)
                })
                .expect("spawn list-reload thread")
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }))
    }

    fn apply(&self, manifest: Manifest) -> ReloadReport {
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load_full();
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.clock.now();
        let mut report = ReloadReport {
            generation,
            loaded: vec![],
            kept: vec![],
            failed: vec![],
        };
        let mut lists = Vec::new();
        let mut unavailable = Vec::new();
        for entry in &manifest.entries {
            if let Some(same) = self.unchanged(&old, entry) {
                report.kept.push(format!(
                    "{} (unchanged, {})",
                    same.meta.id,
                    same.meta.version()
                ));
                lists.push(same);
                continue;
            }
            match load::load_entry(&self.data_dir, entry, now) {
                Ok(l) => {
                    if l.meta.sample {
                        tracing::warn!(list = %l.meta.id, file = %l.meta.file.display(),
                            "SAMPLE DATA: list is marked downloaded = \"sample-data\"; its age counts from load time. Not valid compliance evidence.");
                    }
                    tracing::info!(list = %l.meta.id, kind = ?l.meta.kind, entries = l.meta.entries,
                        version = %l.meta.version(), "list loaded");
                    report.loaded.push(format!(
                        "{} ({} entries, {})",
                        l.meta.id,
                        l.meta.entries,
                        l.meta.version()
                    ));
                    lists.push(l);
                }
                Err(e) => {
                    let id = ListId(entry.id.as_str().into());
                    report.failed.push(e.to_string());
                    match old.lists.iter().find(|l| l.meta.id == id) {
                        Some(prev) => {
                            tracing::error!(list = %id, error = %e, kept = %prev.meta.version(),
                                "list rejected; the version in service stays in service");
                            report
                                .kept
                                .push(format!("{} ({})", id, prev.meta.version()));
                            lists.push(LoadedList {
                                meta: prev.meta.clone(),
                                set: prev.set.clone(),
                            });
                        }
                        None => {
                            tracing::error!(list = %id, error = %e, "list rejected and no earlier version: unavailable");
                            unavailable.push(Unavailable {
                                id,
                                kind: entry.kind,
                                country: entry.country(),
                                error: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
        self.current
            .store(Arc::new(ListSet::new(generation, lists, unavailable)));
        report
    }

    /// The list in service, if its file is the very file the manifest names now (same inode,
    /// size and mtime): reused without reading it again, with the manifest's current metadata.
    fn unchanged(&self, old: &ListSet, entry: &ManifestEntry) -> Option<LoadedList> {
        let path = self.data_dir.join(&entry.file);
        let stamp = load::FileStamp::of(&path).ok()?;
        let prev = old
            .lists
            .iter()
            .find(|l| *l.meta.id.0 == *entry.id && l.meta.kind == entry.kind)?;
        if prev.meta.stamp != stamp || prev.meta.file != path {
            return None;
        }
        let mut meta = prev.meta.clone();
        meta.downloaded = entry.downloaded.as_deref().and_then(load::parse_date);
        meta.sample = entry.downloaded.as_deref() == Some(load::SAMPLE_MARKER);
        meta.state = entry.state.clone();
        meta.country = entry.country();
        meta.max_age_days = entry.max_age_days;
        if entry.source_date.is_some() {
            meta.source_date = entry.source_date.clone();
        }
        Some(LoadedList {
            meta,
            set: prev.set.clone(),
        })
    }
}
