//! Frequency caps counted across instances. A call the rest of the policy lets through is
//! counted in the shared database in one statement (`callgate_cap_take`, schema step 3): under
//! an advisory lock per number and subject it counts each window and, when every cap has room,
//! inserts the call. Two instances therefore never both let a call past a cap through, and
//! an increment is never lost (the lazily replicated counters of Kamailio's and OpenSIPS's
//! clusters overwrite each other). On a thread of its own: the SIP thread hands a count over
//! and goes on; the answer comes back through the callback, within `timeout_ms` or as unknown.

use super::{Shared, SharedError};
use crate::policy::caps::{CapAnswer, CapCounter, CapsDue, CapsUnknown};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::Client;

/// Counts waiting for the database at most; past it a count is unknown at once (the call
/// fails as `on_stale` says) rather than wait behind a backlog it cannot clear in time.
const QUEUE: usize = 1024;

/// Rows older than this are deleted (no cap window is longer).
const KEEP_SECS: i64 = 366 * 86_400;

const TAKE: &str = "SELECT callgate_cap_take($1, $2, $3, $4, $5, $6)";

struct Job {
    due: CapsDue,
    at: i64,
    done: Box<dyn FnOnce(CapAnswer) + Send>,
    asked: Instant,
}

/// The shared count, as the policy's gate sees it.
pub(crate) struct SharedCaps {
    jobs: mpsc::Sender<Job>,
}

impl CapCounter for SharedCaps {
    fn count(&self, due: CapsDue, at: i64, done: Box<dyn FnOnce(CapAnswer) + Send>) {
        let job = Job {
            due,
            at,
            done,
            asked: Instant::now(),
        };
        if let Err(e) = self.jobs.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            (job.done)(Err(CapsUnknown(format!(
                "{QUEUE} frequency-cap counts already waiting for the shared database"
            ))));
        }
    }
}

/// Start the thread that counts (it runs as long as the process).
pub(crate) fn spawn_counter(shared: Arc<Shared>) -> std::io::Result<Arc<SharedCaps>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (jobs, rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("shared-caps".into())
        .spawn(move || rt.block_on(serve(shared, rx)))?;
    Ok(Arc::new(SharedCaps { jobs }))
}

/// The counting connection: made when needed, not tried again for a poll interval after a
/// failure (meanwhile counts are unknown at once, not each left to wait out a connect).
struct Conn {
    client: Option<Arc<Client>>,
    failed: Option<(Instant, String)>,
    pruned: Option<Instant>,
}

async fn serve(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>) {
    let mut conn = Conn {
        client: None,
        failed: None,
        pruned: None,
    };
    // Connected before the first capped call, which would otherwise wait for it.
    let _ = conn.client(&shared).await;
    while let Some(job) = jobs.recv().await {
        let client = match conn.client(&shared).await {
            Ok(c) => c,
            Err(why) => {
                shared
                    .metrics
                    .cap_counts
                    .with_label_values(&["unknown"])
                    .inc();
                (job.done)(Err(CapsUnknown(why)));
                continue;
            }
        };
        if conn
            .pruned
            .is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
        {
            conn.pruned = Some(Instant::now());
            tokio::spawn(prune(client.clone(), job.at - KEEP_SECS));
        }
        // Counts run side by side, pipelined on the one connection.
        tokio::spawn(count(shared.clone(), client, job));
    }
}

impl Conn {
    async fn client(&mut self, shared: &Shared) -> Result<Arc<Client>, String> {
        if let Some(c) = self.client.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        self.client = None;
        let pause = Duration::from_millis(shared.cfg.poll_ms);
        if let Some((at, why)) = self.failed.as_ref().filter(|(at, _)| at.elapsed() < pause) {
            let ago = at.elapsed().as_millis();
            return Err(format!(
                "no connection to the shared database ({ago} ms ago: {why})"
            ));
        }
        match shared.connect().await {
            Ok(c) => {
                self.failed = None;
                let c = Arc::new(c);
                self.client = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                shared.metrics.reconnects.inc();
                self.failed = Some((Instant::now(), e.to_string()));
                Err(e.to_string())
            }
        }
    }
}

/// One call's count, bounded by what is left of the timeout since it was asked for.
async fn count(shared: Arc<Shared>, client: Arc<Client>, job: Job) {
    let Job {
        due,
        at,
        done,
        asked,
    } = job;
    let left = shared.timeout().saturating_sub(asked.elapsed());
    let taken = take(&client, due, at, &shared.instance);
    let answer = match tokio::time::timeout(left, taken).await {
        Ok(Ok(reached)) => Ok(reached),
        Ok(Err(e)) => Err(CapsUnknown(e.to_string())),
        Err(_) => Err(CapsUnknown(
            SharedError::Timeout(shared.cfg.timeout_ms).to_string(),
        )),
    };
    let outcome = match &answer {
        Ok(None) => "counted",
        Ok(Some(_)) => "reached",
        Err(_) => "unknown",
    };
    shared
        .metrics
        .cap_counts
        .with_label_values(&[outcome])
        .inc();
    shared
        .metrics
        .cap_seconds
        .observe(asked.elapsed().as_secs_f64());
    done(answer)
}

/// The index of the first cap reached (none: the call was counted).
async fn take(
    client: &Client,
    due: CapsDue,
    at: i64,
    instance: &str,
) -> Result<Option<usize>, SharedError> {
    let (mut numbers, mut subjects, mut windows, mut limits) = (vec![], vec![], vec![], vec![]);
    for d in due.iter() {
        // Stored as the bits of the unsigned values (E.164 digits, a subject hash).
        numbers.push(d.key.0 as i64);
        subjects.push(d.key.1 as i64);
        windows.push(i64::from(d.window_secs));
        limits.push(i32::from(d.calls));
    }
    let row = client
        .query_one(
            TAKE,
            &[&numbers, &subjects, &windows, &limits, &at, &instance],
        )
        .await?;
    let reached: i32 = row.try_get(0)?;
    Ok(usize::try_from(reached).ok().and_then(|i| i.checked_sub(1)))
}

/// Delete counted calls older than any window.
async fn prune(client: Arc<Client>, before: i64) {
    let deleted = client
        .execute("DELETE FROM callgate_cap_calls WHERE at < $1", &[&before])
        .await;
    if let Err(e) = deleted {
        tracing::warn!(error = %e, "shared database: old frequency-cap counts not deleted");
    }
}
