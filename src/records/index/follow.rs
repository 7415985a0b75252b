//! Keeping the index current while callgate runs: a thread of its own reads the log past the
//! last line indexed, every interval, in one batch per day. The SIP path and the audit writer
//! never wait on it; a crash between a log write and the index loses nothing, as the next pass
//! (or the next start) reads from the last position indexed.

use super::{CatchUp, Index, Until, FILE_NAME};
use crate::metrics::counter;
use prometheus::{IntCounter, Registry};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct FollowerMetrics {
    lines: IntCounter,
    failures: IntCounter,
}

impl FollowerMetrics {
    pub(crate) fn register(r: &Registry) -> FollowerMetrics {
        FollowerMetrics {
            lines: counter(
                r,
                "callgate_records_indexed_lines_total",
                "Audit log lines added to the records index.",
            ),
            failures: counter(
                r,
                "callgate_records_index_failures_total",
                "Passes of the records index that failed (the log is complete; the index lags).",
            ),
        }
    }
}

/// How far the follower's first pass (the build of a missing index) has come: the admin API
/// answers from the index only once it has caught up.
#[derive(Default)]
pub struct Progress {
    built: AtomicBool,
    files_done: AtomicUsize,
    files: AtomicUsize,
}

impl Progress {
    /// None once the index has caught up with the log; else files done and files in all.
    pub fn building(&self) -> Option<(usize, usize)> {
        match self.built.load(Ordering::Acquire) {
            true => None,
            false => Some((
                self.files_done.load(Ordering::Relaxed),
                self.files.load(Ordering::Relaxed),
            )),
        }
    }
}

/// Index the log in `dir` now, then every `every`, while `running()` says so. The index file
/// is reopened when it was removed or replaced.
pub(crate) fn spawn_follower(
    dir: PathBuf,
    every: Duration,
    metrics: FollowerMetrics,
    progress: Arc<Progress>,
    running: impl Fn() -> bool + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("records-index".into())
        .spawn(move || {
            let mut follower = Follower {
                dir,
                index: None,
                metrics,
                progress,
                last_error: None,
            };
            while running() {
                follower.pass();
                std::thread::sleep(every);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "records index: cannot start its thread; `callgate records reindex` builds it");
    }
}

struct Follower {
    dir: PathBuf,
    /// The index, and the file (inode) it was opened on.
    index: Option<(Index, u64)>,
    metrics: FollowerMetrics,
    progress: Arc<Progress>,
    last_error: Option<String>,
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Follower {
    fn pass(&mut self) {
        let problem = match self.catch_up() {
            Ok(done) => {
                self.metrics.lines.inc_by(done.added);
                for day in &done.redone {
                    tracing::warn!(day = %day, "records index: the log no longer holds what the index had read of this day (cut after a power loss?): indexed again from its start");
                }
                self.progress.built.store(true, Ordering::Release);
                let failed: Vec<String> = done.failed.iter().map(|e| e.to_string()).collect();
                (!failed.is_empty()).then(|| failed.join("; "))
            }
            Err(e) => {
                self.index = None;
                Some(e)
            }
        };
        match problem {
            Some(e) => {
                self.metrics.failures.inc();
                // Once per new error: a pass that keeps failing does not fill the log.
                if self.last_error.as_deref() != Some(&e) {
                    tracing::error!(error = %e, "records index: cannot catch up with the audit log; look-ups miss what it could not read");
                    self.last_error = Some(e);
                }
            }
            None => {
                if self.last_error.take().is_some() {
                    tracing::info!("records index: caught up with the audit log again");
                }
            }
        }
    }

    fn catch_up(&mut self) -> Result<CatchUp, String> {
        let path = self.dir.join(FILE_NAME);
        let now = inode(&path);
        if self.index.as_ref().map(|(_, ino)| Some(*ino)) != Some(now) || now.is_none() {
            self.index = None;
        }
        let (index, _) = match &mut self.index {
            Some(i) => i,
            None => {
                let index = Index::open(&self.dir).map_err(|e| e.to_string())?;
                let ino = inode(&path).unwrap_or(0);
                self.index.insert((index, ino))
            }
        };
        let files = crate::audit::chain::audit_files(&self.dir)
            .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let progress = &self.progress;
        if progress.building().is_some() {
            progress.files.store(files.len(), Ordering::Relaxed);
        }
        index
            .catch_up_each(&files, Until::End, |done, _| {
                progress.files_done.store(done, Ordering::Relaxed)
            })
            .map_err(|e| e.to_string())
    }
}
