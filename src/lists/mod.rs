//! Do-Not-Call lists: what is loaded (`ListSet`, an immutable snapshot), where it came from
//! (`ListMeta`), and how a new snapshot replaces the old one (`ListStore::reload`, one atomic
//! pointer swap: a call sees the old lists or the new ones, never a mix).

pub mod load;
pub mod optouts;
pub mod set;

use crate::clock::SharedClock;
use crate::config::ListsConfig;
use crate::policy::normalize::E164;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use load::{ListError, Manifest, ManifestEntry};
pub use optouts::OptOuts;
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
    pub set: Arc<dyn NumberSet>,
}

/// A configured list that could not be loaded and has no earlier version in service.
#[derive(Clone, Debug, Serialize)]
pub struct Unavailable {
    pub id: ListId,
    pub kind: ListKind,
    pub error: String,
}

/// One immutable generation of all lists.
pub struct ListSet {
    pub generation: u64,
    pub lists: Vec<LoadedList>,
    pub unavailable: Vec<Unavailable>,
}

impl ListSet {
    /// Bit i set = `lists[i]` contains the number. (At most 64 lists in the core structure.)
    #[inline]
    pub fn lookup(&self, n: E164) -> u64 {
        let mut hits = 0u64;
        for (i, l) in self.lists.iter().enumerate().take(64) {
            if l.set.contains(n) {
                hits |= 1 << i;
            }
        }
        hits
    }

    pub fn national(&self) -> Option<&LoadedList> {
        self.lists
            .iter()
            .find(|l| l.meta.kind == ListKind::National)
    }

    pub fn national_unavailable(&self) -> bool {
        self.unavailable
            .iter()
            .any(|u| u.kind == ListKind::National)
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
}

impl ListStore {
    /// Load the manifest and every list. A list that fails to load is recorded as unavailable
    /// (and fails calls closed, by policy) rather than stopping the proxy; a manifest or opt-out
    /// journal that cannot be read is an error.
    pub fn open(cfg: &ListsConfig, clock: SharedClock) -> anyhow::Result<ListStore> {
        let manifest_path = cfg.data_dir.join(&cfg.manifest);
        let optouts = OptOuts::open(&cfg.optout_journal, clock.clone())?;
        let store = ListStore {
            current: ArcSwap::from_pointee(ListSet {
                generation: 0,
                lists: vec![],
                unavailable: vec![],
            }),
            optouts,
            manifest_path,
            data_dir: cfg.data_dir.clone(),
            clock,
            generation: AtomicU64::new(0),
            reload_lock: Mutex::new(()),
        };
        let manifest = Manifest::load(&store.manifest_path)?;
        store.apply(manifest);
        Ok(store)
    }

    /// The lists in service. Cheap: an atomic load, no lock.
    #[inline]
    pub fn current(&self) -> arc_swap::Guard<Arc<ListSet>> {
        self.current.load()
    }

    pub fn snapshot(&self) -> Arc<ListSet> {
        self.current.load_full()
    }

    /// Re-read the manifest and every list file; swap in the result. A list whose new file is
    /// bad keeps its version in service. A bad manifest changes nothing.
    pub fn reload(&self) -> Result<ReloadReport, ListError> {
        let manifest = Manifest::load(&self.manifest_path)?;
        Ok(self.apply(manifest))
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
                                error: e.to_string(),
                            });
                        }
                    }
                }
            }
        }
        self.current.store(Arc::new(ListSet {
            generation,
            lists,
            unavailable,
        }));
        report
    }
}
