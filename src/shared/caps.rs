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
use tokio::sync::{mpsc, Semaphore};
use tokio_postgres::{Client, Statement};

/// Counts waiting for the database, and counts being made, at most (each); past it a count
/// is unknown at once (the call fails as `on_stale` says) rather than wait behind a backlog
/// it cannot clear in time.
const QUEUE: usize = 1024;

/// Rows past their windows are deleted this many at a time, on a connection of their own.
const PRUNE_BATCH: i64 = 10_000;

const TAKE: &str = "SELECT callgate_cap_take($1, $2, $3, $4, $5, $6, $7)";

struct Job {
    due: CapsDue,
    at: i64,
    done: Answer,
    asked: Instant,
}

/// The caller's callback, answered exactly once: a count dropped unanswered (its task gone,
/// the thread stopping) answers "unknown", so no call is held for ever.
struct Answer(Option<Box<dyn FnOnce(CapAnswer) + Send>>);

impl Answer {
    fn give(mut self, answer: CapAnswer) {
        if let Some(done) = self.0.take() {
            done(answer)
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(CapsUnknown("the count was lost".into())))
        }
    }
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
            done: Answer(Some(done)),
            asked: Instant::now(),
        };
        if let Err(e) = self.jobs.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            job.done.give(Err(busy()));
        }
    }
}

/// Start the thread that counts (it runs as long as the process).
pub(crate) fn spawn_counter(shared: Arc<Shared>) -> std::io::Result<Arc<SharedCaps>> {
    let (jobs, rx) = mpsc::channel(QUEUE);
    super::spawn_thread("shared-caps", serve(shared, rx))?;
    Ok(Arc::new(SharedCaps { jobs }))
}

fn busy() -> CapsUnknown {
    CapsUnknown(format!(
        "{QUEUE} frequency-cap counts already waiting for the shared database"
    ))
}

/// The counting connection and its prepared count: made when needed, not tried again for a
/// poll interval after a failure (meanwhile counts are unknown at once, not each left to wait
/// out a connect).
struct Conn {
    client: Option<(Arc<Client>, Statement)>,
    failed: Option<(Instant, String)>,
    pruned: Option<Instant>,
}

async fn serve(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>) {
    let mut conn = Conn {
        client: None,
        failed: None,
        pruned: None,
    };
    let making = Arc::new(Semaphore::new(QUEUE));
    // Connected before the first capped call, which would otherwise wait for it.
    let _ = conn.client(&shared).await;
    while let Some(job) = jobs.recv().await {
        let (client, take) = match conn.client(&shared).await {
            Ok(c) => c,
            Err(why) => {
                shared
                    .metrics
                    .cap_counts
                    .with_label_values(&["unknown"])
                    .inc();
                job.done.give(Err(CapsUnknown(why)));
                continue;
            }
        };
        let Ok(permit) = making.clone().try_acquire_owned() else {
            shared
                .metrics
                .cap_counts
                .with_label_values(&["unknown"])
                .inc();
            job.done.give(Err(busy()));
            continue;
        };
        if conn
            .pruned
            .is_none_or(|t| t.elapsed() > Duration::from_secs(3600))
        {
            conn.pruned = Some(Instant::now());
            tokio::spawn(prune(shared.clone(), job.at));
        }
        // Counts run side by side, pipelined on the one connection.
        let shared = shared.clone();
        tokio::spawn(async move {
            count(shared, &client, &take, job).await;
            drop(permit);
        });
    }
}

impl Conn {
    async fn client(&mut self, shared: &Shared) -> Result<(Arc<Client>, Statement), String> {
        if let Some(c) = self.client.as_ref().filter(|(c, _)| !c.is_closed()) {
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
        match shared.bounded(counting(shared)).await {
            Ok(c) => {
                self.failed = None;
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

/// A connection for counting: the server gives up on a count (a lock held, a slow disk)
/// before callgate stops waiting for it, so a count callgate called unknown is, as a rule,
/// not recorded either; and the count's statement prepared once.
async fn counting(shared: &Shared) -> Result<(Arc<Client>, Statement), SharedError> {
    let client = shared.connect().await?;
    let limit = shared.cfg.timeout_ms * 3 / 4;
    client
        .batch_execute(&format!(
            "SET statement_timeout = {limit}; SET lock_timeout = {limit}"
        ))
        .await?;
    let take = client.prepare(TAKE).await?;
    Ok((Arc::new(client), take))
}

/// One call's count, bounded by what is left of the timeout since it was asked for.
async fn count(shared: Arc<Shared>, client: &Client, take_stmt: &Statement, job: Job) {
    let Job {
        due,
        at,
        done,
        asked,
    } = job;
    let left = shared.timeout().saturating_sub(asked.elapsed());
    let taken = take(client, take_stmt, due, at, &shared.instance);
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
    done.give(answer)
}

/// The index of the first cap reached (none: the call was counted).
async fn take(
    client: &Client,
    stmt: &Statement,
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
    let force = due.counted_anyway;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &numbers, &subjects, &windows, &limits, &at, &instance, &force,
    ];
    let row = client.query_one(stmt, &params).await?;
    let reached: i32 = row.try_get(0)?;
    Ok(usize::try_from(reached).ok().and_then(|i| i.checked_sub(1)))
}

/// Delete the counted calls past every window they were counted for, a batch at a time on
/// a connection of its own, so counts never wait behind it.
async fn prune(shared: Arc<Shared>, now: i64) {
    let client = match shared.connect().await {
        Ok(c) => c,
        Err(e) => {
            return tracing::warn!(error = %e, "shared database: old frequency-cap counts not deleted")
        }
    };
    let delete = "DELETE FROM callgate_cap_calls WHERE ctid IN \
                  (SELECT ctid FROM callgate_cap_calls WHERE keep_until < $1 LIMIT $2)";
    loop {
        match client.execute(delete, &[&now, &PRUNE_BATCH]).await {
            Ok(n) if (n as i64) < PRUNE_BATCH => return,
            Ok(_) => {}
            Err(e) => {
                return tracing::warn!(error = %e, "shared database: old frequency-cap counts not deleted")
            }
        }
    }
}
