//! Keeping the index current while callgate runs: a thread of its own reads the log past the
//! last line indexed, every interval, in one batch per day. The SIP path and the audit writer
//! never wait on it; a crash between a log write and the index loses nothing, as the next pass
//! (or the next start) reads from the last position indexed.

use super::{CatchUp, Index, Until, FILE_NAME};
use crate::audit::summary::Batch;
use crate::metrics::{counter, counter_vec};
use prometheus::{IntCounter, Registry};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct FollowerMetrics {
    /// Lines the writer's batches gave, and lines read back from the log.
    fed: IntCounter,
    read: IntCounter,
    failures: IntCounter,
}

impl FollowerMetrics {
    pub(crate) fn register(r: &Registry) -> FollowerMetrics {
        let lines = counter_vec(
            r,
            "callgate_records_indexed_lines_total",
            "Audit log lines added to the records index, by where they came from: the writer's \
             batches, or the log read back (at start, after a gap).",
            &["from"],
        );
        FollowerMetrics {
            fed: lines.with_label_values(&["writer"]),
            read: lines.with_label_values(&["log"]),
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

/// Read the whole log (a file pass) this often even while the writer's batches keep the index
/// current: what they cannot tell (a day compressed, a line fed to no one) is found within it.
const FILE_PASS_EVERY: Duration = Duration::from_secs(30);

/// Index the log in `dir` now, then every `every`, while `running()` says so: from the
/// writer's batches (`feed`) when there is one, else by reading what the files gained. The
/// index file is reopened when it was removed or replaced.
pub(crate) fn spawn_follower(
    dir: PathBuf,
    every: Duration,
    metrics: FollowerMetrics,
    progress: Arc<Progress>,
    feed: Option<Receiver<Batch>>,
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
                last_pass: None,
                fed_file: None,
                fed_end: None,
            };
            while running() {
                follower.tick(feed.as_ref());
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
    last_pass: Option<Instant>,
    /// The file the last batch was of: a batch of another starts a file pass (the day before
    /// is over: its seal, its last segment).
    fed_file: Option<PathBuf>,
    /// Where the last batch ended: a file grown past it while no batch came (one dropped, or
    /// lines the writer could not feed) is read at the next tick.
    fed_end: Option<(PathBuf, u64)>,
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

impl Follower {
    /// The writer's batches since the last tick, and a file pass first when one is due or
    /// after them when they left a gap.
    fn tick(&mut self, feed: Option<&Receiver<Batch>>) {
        let batches: Vec<Batch> = feed.map(|rx| rx.try_iter().collect()).unwrap_or_default();
        let new_file = batches
            .iter()
            .any(|b| Some(&b.file) != self.fed_file.as_ref());
        if let Some(b) = batches.last() {
            self.fed_file = Some(b.file.clone());
        }
        // The batches first when the index is open as it was: the file pass after them reads
        // only what they did not hold.
        let first = feed.is_none() || new_file || self.replaced();
        if first {
            self.pass();
        }
        let gap = self.apply(&batches);
        let due = self
            .last_pass
            .is_none_or(|t| t.elapsed() >= FILE_PASS_EVERY);
        let grew = batches.is_empty()
            && self
                .fed_end
                .as_ref()
                .is_some_and(|(file, end)| std::fs::metadata(file).is_ok_and(|m| m.len() > *end));
        if let Some(b) = batches.last() {
            self.fed_end = Some((b.file.clone(), b.end));
        }
        if gap || grew || (due && !first) {
            self.fed_end = None;
            self.pass();
        }
    }

    /// Whether the index is not open, or its file was removed or replaced since.
    fn replaced(&self) -> bool {
        let now = inode(&self.dir.join(FILE_NAME));
        self.index.as_ref().is_none_or(|(_, ino)| now != Some(*ino))
    }

    /// Add the batches; whether one left a gap (or failed) that the file must fill.
    fn apply(&mut self, batches: &[Batch]) -> bool {
        if batches.is_empty() {
            return false;
        }
        let Some((index, _)) = &mut self.index else {
            return true;
        };
        match index.apply(batches) {
            Ok((added, gap)) => {
                self.metrics.fed.inc_by(added);
                gap
            }
            Err(e) => {
                self.index = None;
                self.report(Some(e.to_string()));
                true
            }
        }
    }

    fn pass(&mut self) {
        self.last_pass = Some(Instant::now());
        let problem = match self.catch_up() {
            Ok(done) => {
                self.metrics.read.inc_by(done.added);
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
        self.report(problem);
    }

    fn report(&mut self, problem: Option<String>) {
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
