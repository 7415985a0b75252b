//! Several instances, one compliance state: opt-outs, consent records and emergency closures
//! recorded as changes in a PostgreSQL database every instance shares (`[shared]`). A change
//! is acknowledged after the database commits it; every instance keeps the whole state in
//! memory and in its journals as before (a call never waits on the database), learns of new
//! changes by LISTEN/NOTIFY, and reads everything past the last one it applied, with a poll as
//! a backstop. The follower is the only one that applies them, on the instance that made the
//! change too, so every instance applies the same changes in the same order. An instance the
//! database has not confirmed current within `max_lag_ms` is stale: marketing calls fail
//! closed (`shared_state_stale`).

mod apply;
mod caps;
pub mod changes;
mod follow;
mod instances;
mod mirror;
mod schema;
pub mod ship;

use crate::clock::SharedClock;
use crate::config::SharedConfig;
use crate::lists::ListStore;
use crate::policy::PolicyState;
use changes::Change;
use chrono::{DateTime, Utc};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

pub(crate) use caps::spawn_counter;
pub(crate) use follow::spawn_follower;
pub(crate) use mirror::{spawn_mirror, MirrorParts};
pub(crate) use ship::spawn_shipper;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("shared database: no answer within {0} ms")]
    Timeout(u64),
    #[error("shared database schema is version {found}, newer than this callgate knows ({known}): upgrade callgate")]
    NewerSchema { found: i32, known: i32 },
    /// The log does not continue what was shipped from it: shipping stops rather than skip
    /// or mix lines.
    #[error("audit log {day} at byte {at}: {why}; records are not shipped past it")]
    LogDiffers { day: String, at: u64, why: String },
    #[error("shared database: a row this callgate cannot read: {0}")]
    BadRow(String),
    #[error("shared database: the connection closed")]
    Closed,
    #[error("applying a change here: {0}")]
    Journal(std::io::Error),
    /// The database holds fewer changes than this instance applied (by its cursor or its
    /// journals): it lost some (restored from a backup, an asynchronous standby promoted) or
    /// is another cluster's, and changes made there would be skipped under numbers already
    /// read.
    #[error("the database's newest change is {newest}, but this instance holds changes up to {applied} (its cursor and journals): it lost changes (restored, or an asynchronous standby promoted) or is not the database this instance followed; fix the database or point the instance at the one it followed")]
    Behind { newest: u64, applied: u64 },
    /// The database's change numbered as the last one applied here is another change.
    #[error("the database's change {seq} is not the change {seq} this instance applied: it lost changes (restored, or an asynchronous standby promoted) or is not the database this instance followed, and changes numbered as ones already read would be skipped; fix the database or point the instance at the one it followed")]
    Diverged { seq: u64 },
}

pub(crate) struct SharedMetrics {
    pub fetch_errors: IntCounter,
    pub reconnects: IntCounter,
    pub applied_seq: IntGauge,
    pub lag_ms: IntGauge,
    pub writes: IntCounterVec,
    pub cap_counts: IntCounterVec,
    pub cap_seconds: prometheus::Histogram,
    pub records_shipped: IntCounter,
    pub records_waiting: IntGauge,
    pub ship_errors: IntCounter,
    pub records_mirrored: IntCounter,
    pub mirror_errors: IntCounter,
}

impl SharedMetrics {
    pub(crate) fn register(r: &Registry) -> SharedMetrics {
        use crate::metrics::{counter, counter_vec, gauge};
        SharedMetrics {
            fetch_errors: counter(
                r,
                "callgate_shared_fetch_errors_total",
                "Reads of the shared database that failed (connection, query or timeout).",
            ),
            reconnects: counter(
                r,
                "callgate_shared_reconnects_total",
                "Connections to the shared database made again after one failed.",
            ),
            applied_seq: gauge(
                r,
                "callgate_shared_applied_seq",
                "The newest shared change (opt-outs, consent, closures) this instance has applied.",
            ),
            lag_ms: gauge(
                r,
                "callgate_shared_lag_milliseconds",
                "Time since the shared database last confirmed this instance current (-1: never).",
            ),
            writes: counter_vec(
                r,
                "callgate_shared_writes_total",
                "Opt-outs written to the shared database, by outcome.",
                &["outcome"],
            ),
            cap_counts: counter_vec(
                r,
                "callgate_shared_cap_counts_total",
                "Calls counted against frequency caps in the shared database, by outcome (counted, reached: a cap was full, unknown: no answer in time).",
                &["outcome"],
            ),
            cap_seconds: crate::metrics::histogram(
                r,
                "callgate_shared_cap_seconds",
                "Time from asking for a call's shared frequency-cap count to its answer.",
                vec![2.5e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 1.0, 5.0],
            ),
            records_shipped: counter(
                r,
                "callgate_shared_records_shipped_total",
                "Lines of this instance's log (decisions, calls, admin records) shipped to the cluster's records table.",
            ),
            records_waiting: gauge(
                r,
                "callgate_shared_records_waiting_bytes",
                "Bytes of this instance's log not yet shipped to the cluster's records table.",
            ),
            ship_errors: counter(
                r,
                "callgate_shared_ship_errors_total",
                "Passes that could not ship records to the shared database (they are shipped later, from the log).",
            ),
            records_mirrored: counter(
                r,
                "callgate_shared_records_mirrored_total",
                "Lines of other instances' logs copied here from the cluster's records table.",
            ),
            mirror_errors: counter(
                r,
                "callgate_shared_mirror_errors_total",
                "Passes that could not copy other instances' records, and days whose copy was stopped because the table did not continue it.",
            ),
        }
    }
}

/// This instance's side of the shared database.
pub struct Shared {
    cfg: SharedConfig,
    pg: tokio_postgres::Config,
    /// The connection writes go through; made again after it fails.
    writer: tokio::sync::Mutex<Option<Client>>,
    instance: String,
    pub(crate) metrics: SharedMetrics,
    /// Why the last read failed, until one succeeds.
    last_error: Mutex<Option<String>>,
    /// The newest change applied here.
    applied: tokio::sync::watch::Sender<u64>,
    /// The schema was brought up to date by this process (once is enough).
    migrated: std::sync::atomic::AtomicBool,
    /// When this process started, as the cluster's list of instances says.
    started_at: DateTime<Utc>,
}

/// An instance of the cluster, as it last reported itself.
#[derive(Debug, Clone)]
pub struct Instance {
    pub name: String,
    pub started_at: DateTime<Utc>,
    /// Since it last reported (it does at every poll while it follows the database).
    pub seen_ago: Duration,
    /// The changes the database holds that it had not applied when it last reported.
    pub behind: u64,
    pub version: String,
}

impl Shared {
    /// None without `shared.url`.
    pub fn new(cfg: &SharedConfig, instance: &str, registry: &Registry) -> Option<Arc<Shared>> {
        let url = cfg.url.as_deref()?;
        // Checked with the configuration: a URL that does not parse never gets here.
        let mut pg: tokio_postgres::Config = url.parse().ok()?;
        pg.connect_timeout(Duration::from_millis(cfg.timeout_ms));
        // A connection whose peer vanished (a network cut, a server killed) is noticed and
        // closed, not left waiting for ever.
        pg.keepalives_idle(Duration::from_secs(10));
        pg.tcp_user_timeout(Duration::from_millis(cfg.timeout_ms));
        pg.application_name(format!("callgate {instance}"));
        Some(Arc::new(Shared {
            cfg: cfg.clone(),
            pg,
            writer: tokio::sync::Mutex::new(None),
            instance: instance.to_string(),
            metrics: SharedMetrics::register(registry),
            last_error: Mutex::new(None),
            applied: tokio::sync::watch::Sender::new(0),
            migrated: Default::default(),
            started_at: Utc::now(),
        }))
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.timeout_ms)
    }

    /// `f` within the configured timeout.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, SharedError>>,
    ) -> Result<T, SharedError> {
        tokio::time::timeout(self.timeout(), f)
            .await
            .unwrap_or(Err(SharedError::Timeout(self.cfg.timeout_ms)))
    }

    /// A connection, its schema current; its driver runs on the calling runtime.
    async fn connect(&self) -> Result<Client, SharedError> {
        self.bounded(async {
            let (mut client, conn) = self.pg.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "shared database connection ended");
                }
            });
            self.migrate(&mut client).await?;
            Ok(client)
        })
        .await
    }

    /// The writer's connection, made (again) when there is none or it closed.
    async fn writer_client<'a>(
        &self,
        writer: &'a mut Option<Client>,
    ) -> Result<&'a mut Client, SharedError> {
        if writer.as_ref().is_none_or(Client::is_closed) {
            *writer = Some(self.connect().await?);
        }
        writer.as_mut().ok_or(SharedError::Closed)
    }

    /// Bring the schema up to date, the first time a connection of this process is made.
    async fn migrate(&self, client: &mut Client) -> Result<(), SharedError> {
        use std::sync::atomic::Ordering;
        if !self.migrated.load(Ordering::Acquire) {
            schema::migrate(client).await?;
            self.migrated.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Record `change` in the shared database, stamped `at`: its sequence number once
    /// committed. A connection that failed is made again at the next write.
    pub async fn commit(
        &self,
        change: &Change,
        at: DateTime<Utc>,
        who: &str,
    ) -> Result<u64, SharedError> {
        let mut writer = self.writer.lock().await;
        let result = self
            .bounded(async {
                let client = self.writer_client(&mut writer).await?;
                changes::insert(client, change, at, who, &self.instance).await
            })
            .await;
        let outcome = match &result {
            Ok(_) => "committed",
            Err(_) => {
                // A write cut off mid-way leaves the connection in an unknown state.
                *writer = None;
                "failed"
            }
        };
        self.metrics.writes.with_label_values(&[outcome]).inc();
        result
    }

    /// Wait (at most the configured timeout) until change `seq` is applied here: what the
    /// instance that made a change answers after, so the change is in force where it was made
    /// when the answer says so. False when it was not in time.
    pub async fn in_force(&self, seq: u64) -> bool {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(self.timeout(), applied.wait_for(|a| *a >= seq)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Every instance that reported in the last week, by name: the console's view of the
    /// cluster. Read through the writer's connection.
    pub async fn instances(&self) -> Result<Vec<Instance>, SharedError> {
        let mut writer = self.writer.lock().await;
        let rows = self
            .bounded(async {
                let client = self.writer_client(&mut writer).await?;
                Ok(client.query(instances::LIST, &[]).await?)
            })
            .await
            .inspect_err(|_| *writer = None)?;
        rows.iter().map(instances::row).collect()
    }

    /// Why this instance is not current, for `/readyz` (None: it is).
    pub fn not_current(&self, state: &PolicyState) -> Option<String> {
        state.currency.stale()?;
        let since = match state.currency.since_confirmed() {
            Some(ago) => format!("last confirmed {} ms ago", ago.as_millis()),
            None => "never confirmed since the start".to_string(),
        };
        let error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        Some(format!(
            "shared_state_stale: the shared database has not confirmed this instance current \
             ({since}; allowed {} ms){}",
            self.cfg.max_lag_ms,
            error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))
    }

    /// The lag gauge, at a scrape.
    pub fn refresh_metrics(&self, state: &PolicyState) {
        let lag = state
            .currency
            .since_confirmed()
            .map_or(-1, |ago| ago.as_millis() as i64);
        self.metrics.lag_ms.set(lag);
    }
}

/// Run `work` on a thread of its own, named `name`, with a runtime of its own: the database
/// work of an instance never shares a thread with the SIP loop or the admin API, nor with
/// another kind of database work.
fn spawn_thread(
    name: &str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rt.block_on(work))?;
    Ok(())
}

/// What the follower needs of the running instance.
pub(crate) struct Parts {
    pub lists: Arc<ListStore>,
    pub state: Arc<PolicyState>,
    pub clock: SharedClock,
    pub audit: crate::audit::AuditSink,
    /// Where following resumes after a restart.
    pub cursor: std::path::PathBuf,
}
