//! Keeping the index current while callgate runs: a thread of its own reads the log past the
//! last line indexed, every interval, in one batch per day. The SIP path and the audit writer
//! never wait on it; a crash between a log write and the index loses nothing, as the next pass
//! (or the next start) reads from the last position indexed.

use super::{Index, FILE_NAME};
use crate::metrics::counter;
use prometheus::{IntCounter, Registry};
use std::path::{Path, PathBuf};
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

/// Index the log in `dir` now, then every `every`, while `running()` says so. The index file
/// is reopened (rebuilt) when it was removed.
pub(crate) fn spawn_follower(
    dir: PathBuf,
    every: Duration,
    metrics: FollowerMetrics,
    running: impl Fn() -> bool + Send + 'static,
) {
    let spawned = std::thread::Builder::new()
        .name("records-index".into())
        .spawn(move || {
            let mut follower = Follower {
                dir,
                index: None,
                metrics,
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
    index: Option<Index>,
    metrics: FollowerMetrics,
    last_error: Option<String>,
}

impl Follower {
    fn pass(&mut self) {
        match self.catch_up() {
            Ok(0) => {}
            Ok(n) => self.metrics.lines.inc_by(n),
            Err(e) => {
                self.metrics.failures.inc();
                self.index = None;
                // Once per new error: a pass that keeps failing does not fill the log.
                if self.last_error.as_deref() != Some(&e) {
                    tracing::error!(error = %e, "records index: cannot catch up with the audit log; records find falls back to reading the log");
                    self.last_error = Some(e);
                }
                return;
            }
        }
        if self.last_error.take().is_some() {
            tracing::info!("records index: caught up with the audit log again");
        }
    }

    fn catch_up(&mut self) -> Result<u64, String> {
        if !self.dir.join(FILE_NAME).exists() {
            self.index = None;
        }
        let index = match &mut self.index {
            Some(i) => i,
            None => self.index.insert(open(&self.dir)?),
        };
        let files = crate::audit::chain::audit_files(&self.dir)
            .map_err(|e| format!("{}: {e}", self.dir.display()))?;
        index.catch_up(&files).map_err(|e| e.to_string())
    }
}

fn open(dir: &Path) -> Result<Index, String> {
    Index::open(dir).map_err(|e| e.to_string())
}
