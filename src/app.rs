//! The running application as the admin API and the signal handlers see it: the proxy, the
//! compliance gate, the lists, the metrics and the audit sink, and the reloads that change
//! them while calls flow.

use crate::audit::AuditSink;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::gate::{Compliance, Rules};
use crate::lists::ListStore;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::sip::proxy::{Access, Proxy};
use std::sync::Arc;

/// Shared by the SIP thread and the admin API.
/// How long the SIP loop may go without turning before callgate is not alive.
pub const SIP_LOOP_STALL: std::time::Duration = std::time::Duration::from_secs(5);

pub struct App {
    pub cfg: Config,
    pub proxy: Arc<Proxy>,
    pub gate: Arc<Compliance>,
    pub lists: Arc<ListStore>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
    pub clock: SharedClock,
    /// Certificates in service, re-read by `reload_tls`.
    pub tls: crate::tls::TlsSet,
    /// How far the records index has caught up with the log (`records.index`).
    pub records_index: Arc<crate::records::index::Progress>,
    /// The database shared with other instances (`[shared]`), if any.
    pub shared: Option<Arc<crate::shared::Shared>>,
}

impl App {
    /// An admin change (who did what) into the audit chain, stamped now.
    pub(crate) fn record_admin(
        &self,
        action: &'static str,
        who: String,
        detail: serde_json::Value,
    ) {
        self.audit.admin(crate::audit::AdminEvent {
            ts: self.clock.now(),
            action,
            who,
            detail,
        });
    }

    /// What SIGHUP and `POST /v1/reload` re-read besides the configuration file: the lists,
    /// then every TLS certificate (the TLS errors by role).
    pub fn reload_files(
        &self,
        who: String,
    ) -> (
        Result<crate::lists::ReloadReport, crate::lists::ListError>,
        Vec<(&'static str, String)>,
    ) {
        let lists = self.reload(who.clone());
        (lists, self.reload_tls(who))
    }

    /// Reload lists and refresh list metrics; used by SIGHUP and `POST /v1/reload`. `who`
    /// (peer and authorization, or the signal) goes into the audit log with the outcome.
    pub fn reload(
        &self,
        who: String,
    ) -> Result<crate::lists::ReloadReport, crate::lists::ListError> {
        let r = self.lists.reload();
        self.record_admin(
            "lists_reload",
            who,
            match &r {
                Ok(rep) => serde_json::json!({"generation": rep.generation, "loaded": rep.loaded,
                    "kept": rep.kept, "failed": rep.failed}),
                Err(e) => serde_json::json!({"refused": e.to_string()}),
            },
        );
        match &r {
            Ok(rep) if rep.failed.is_empty() => {
                self.metrics.list_reloads.with_label_values(&["ok"]).inc()
            }
            Ok(_) => self
                .metrics
                .list_reloads
                .with_label_values(&["partial"])
                .inc(),
            Err(e) => {
                tracing::error!(error = %e, "reload refused; lists in service unchanged");
                self.metrics
                    .list_reloads
                    .with_label_values(&["error"])
                    .inc();
            }
        }
        self.refresh_metrics();
        r
    }

    /// Re-read the configuration file. The settings that can change while calls flow
    /// (`dialers`, `policy`, `reject`, `sip.drain_retry_after_secs`) are swapped in; sections
    /// whose other settings changed are returned as needing a restart. A file with an error
    /// changes nothing, and the error names the file, line and key.
    pub fn reload_config(
        &self,
        path: &std::path::Path,
        who: String,
    ) -> anyhow::Result<Vec<&'static str>> {
        let result = Config::from_file(path)
            .map_err(anyhow::Error::from)
            .and_then(|c| {
                let live = live_settings(&c)?;
                Ok((c, live))
            });
        let outcome = match &result {
            Ok((new, (access, rules))) => {
                self.proxy.set_access(access.clone());
                warn_if_calendar_runs_out_soon(&rules.policy, self.clock.now());
                self.gate.set_rules(rules.clone());
                let restart = restart_needed(&self.cfg, new);
                if restart.is_empty() {
                    tracing::info!(file = %path.display(), "configuration reloaded");
                } else {
                    tracing::warn!(file = %path.display(), sections = ?restart,
                        "configuration reloaded; changes in these sections take effect only after a restart");
                }
                self.metrics.config_reloads.with_label_values(&["ok"]).inc();
                Ok(restart)
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
                self.metrics
                    .config_reloads
                    .with_label_values(&["error"])
                    .inc();
                Err(anyhow::anyhow!("{e}"))
            }
        };
        self.record_admin(
            "config_reload",
            who,
            match &outcome {
                Ok(r) => serde_json::json!({"file": path.display().to_string(), "restart_needed": r}),
                Err(e) => serde_json::json!({"file": path.display().to_string(), "refused": e.to_string()}),
            },
        );
        outcome
    }

    /// Re-read every certificate and key (SIP listener, upstream client, admin API). New
    /// connections get the new ones; open connections keep theirs. A file that does not load
    /// leaves that role's certificate in service. Returns the errors by role.
    pub fn reload_tls(&self, who: String) -> Vec<(&'static str, String)> {
        let roles = self.tls.roles();
        if roles.is_empty() {
            return vec![];
        }
        let mut errors = Vec::new();
        for (role, t) in roles {
            let r = t.reload();
            let result = if r.is_ok() { "ok" } else { "error" };
            self.metrics
                .tls_reloads
                .with_label_values(&[role, result])
                .inc();
            match r {
                Ok(()) => tracing::info!(role, "TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(role, error = %e, "TLS reload refused; the certificate in service stays");
                    errors.push((role, e.to_string()));
                }
            }
        }
        self.record_admin(
            "tls_reload",
            who,
            serde_json::json!({"refused": errors.iter()
                .map(|(role, e)| serde_json::json!({"role": role, "error": e}))
                .collect::<Vec<_>>()}),
        );
        self.refresh_metrics();
        errors
    }

    /// Gauges that describe state rather than count events: set on scrape and after reloads.
    pub(crate) fn refresh_metrics(&self) {
        let now = self.clock.now();
        let lists = self.lists.current();
        let m = &self.metrics;
        // An upstream client without a certificate of its own has no expiry to report.
        for (role, t) in self.tls.roles() {
            if t.expires() > 0 {
                m.tls_cert_expiry
                    .with_label_values(&[role])
                    .set(t.expires());
            }
        }
        m.list_generation.set(lists.generation as i64);
        let runs_out = self.gate.rules().policy.rules.holidays_run_out(now);
        m.holiday_calendar_end
            .set(runs_out.map_or(0, |t| t.timestamp()));
        if let Some(shared) = &self.shared {
            shared.refresh_metrics(&self.gate.state);
        }
        m.prefilter_memory.set(lists.prefilter_bytes() as i64);
        self.refresh_disk_metrics();
        for (campaign, t) in self.gate.state.abandonment.all(now.date_naive()) {
            if let Some(r) = t.rate() {
                m.abandonment_ratio.with_label_values(&[&campaign]).set(r);
            }
        }
        for l in &lists.lists {
            let id = l.meta.id.0.as_ref();
            m.list_entries
                .with_label_values(&[id])
                .set(l.meta.entries as i64);
            m.list_memory
                .with_label_values(&[id])
                .set(crate::lists::NumberSet::memory_bytes(&*l.set) as i64);
            m.list_sample
                .with_label_values(&[id])
                .set(l.meta.sample as i64);
            m.list_unavailable.with_label_values(&[id]).set(0);
            if let Some(age) = l.meta.age(now) {
                m.list_age_seconds
                    .with_label_values(&[id])
                    .set(age.num_milliseconds() as f64 / 1000.0);
                let limit = self.gate.rules().policy.max_age_days(l);
                m.list_max_age_seconds
                    .with_label_values(&[id])
                    .set(i64::from(limit) * 86_400);
            }
        }
        for u in &lists.unavailable {
            m.list_unavailable
                .with_label_values(&[u.id.0.as_ref()])
                .set(1);
        }
        let policy = &self.gate.rules().policy;
        let (fresh, _, _) = policy.national_status(&lists, now);
        m.national_fresh.set(fresh as i64);
        for l in &lists.lists {
            m.list_fresh
                .with_label_values(&[l.meta.id.0.as_ref()])
                .set(policy.list_fresh(l, now) as i64);
        }
        m.optouts_entries.set(self.lists.optouts.len() as i64);
        m.ready.set(self.not_ready().is_none() as i64);
    }

    /// Why callgate is not ready (`/readyz` 503, `callgate_ready` 0), if it is not: the SIP
    /// loop stalled, the national list missing or past its age, a list unavailable or stale.
    pub fn not_ready(&self) -> Option<String> {
        if let Some(stalled) = self.sip_loop_stalled() {
            return Some(stalled);
        }
        let lists = self.lists.current();
        let now = self.clock.now();
        if let Some(why) = (self.shared.as_ref()).and_then(|s| s.not_current(&self.gate.state)) {
            return Some(why);
        }
        let live = self.gate.rules();
        let policy = &live.policy;
        let (fresh, _, why) = policy.national_status(&lists, now);
        if !fresh {
            return Some(why.to_string());
        }
        if !lists.unavailable.is_empty() {
            return Some("a configured list is unavailable".to_string());
        }
        let stale: Vec<&str> = lists
            .lists
            .iter()
            .filter(|l| !policy.list_fresh(l, now))
            .map(|l| &*l.meta.id.0)
            .collect();
        (!stale.is_empty()).then(|| format!("stale lists: {}", stale.join(", ")))
    }

    /// Why the SIP loop is not alive, if it is not: it turns (sweeps) at least once a second,
    /// and one that has not turned for [`SIP_LOOP_STALL`] has stopped (a panic, a blocked
    /// thread), whatever else still answers. `/healthz` and the systemd watchdog both ask this.
    pub fn sip_loop_stalled(&self) -> Option<String> {
        let idle = self.proxy.since_last_turn();
        (idle > SIP_LOOP_STALL).then(|| {
            format!(
                "the SIP loop has not turned for {} ms (limit {} ms): calls are not being handled",
                idle.as_millis(),
                SIP_LOOP_STALL.as_millis()
            )
        })
    }

    /// Log once, loudly, when marketing calls will fail closed (or open) because of the lists.
    pub fn log_list_health(&self) {
        let lists = self.lists.current();
        let live = self.gate.rules();
        let (fresh, age, why) = live.policy.national_status(&lists, self.clock.now());
        if !fresh {
            let mode = live.policy.config().on_stale_national_list;
            tracing::error!(reason = why, age_seconds = ?age, on_stale = ?mode,
                "national DNC list is not usable: outbound calls are {} with reason stale_list",
                if mode == crate::config::FailMode::Reject { "REJECTED (fail closed)" } else { "ALLOWED (fail open, as configured)" });
        }
        for u in &lists.unavailable {
            tracing::error!(list = %u.id, error = %u.error, "list unavailable");
        }
        let live = self.gate.rules();
        let policy = &live.policy;
        for l in lists
            .lists
            .iter()
            .filter(|l| l.meta.kind != crate::lists::ListKind::National)
        {
            if !policy.list_fresh(l, self.clock.now()) {
                let mode = policy.config().on_stale_list;
                tracing::error!(list = %l.meta.id, age_days = ?l.meta.age(self.clock.now()).map(|a| a.num_days()),
                    max_age_days = policy.max_age_days(l), on_stale = ?mode,
                    "list is older than its max_age_days: outbound calls are {} with reason stale_list",
                    if mode == crate::config::FailMode::Reject { "REJECTED (fail closed)" } else { "ALLOWED (fail open, as configured)" });
            }
        }
    }
}

/// The settings a reload swaps in (`Proxy::set_access`, `Compliance::set_rules`), also the
/// initial ones.
pub(crate) fn live_settings(cfg: &Config) -> anyhow::Result<(Access, Rules)> {
    let access = Access {
        dialers: cfg.dialers.allow.clone(),
        upstream_sources: cfg.upstream.sources.clone(),
        max_calls_per_second: cfg.dialers.max_calls_per_second,
        burst: cfg.dialers.burst,
        drain_retry_after_secs: cfg.sip.drain_retry_after_secs,
        tls_dialer_names: cfg
            .tls
            .dialer_names
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .collect(),
    };
    let rules = Rules {
        reject: cfg.reject.clone(),
        policy: Arc::new(Policy::new(cfg)?),
        calls: cfg.calls.clone(),
        telemarketers: crate::gate::Telemarketers::new(&cfg.dialers.names),
    };
    Ok((access, rules))
}

/// How long before the holiday calendars run out the log starts saying so (the alert rule
/// `CallgateHolidayCalendarEnding` fires as early).
const CALENDAR_WARNING: chrono::Duration = chrono::Duration::days(60);

/// A warning, at start and at each reload, while the holiday calendars some rule needs run
/// out within `CALENDAR_WARNING`: from then, calls under that rule fail as
/// `policy.on_missing_calendar` says (closed by default).
pub(crate) fn warn_if_calendar_runs_out_soon(policy: &Policy, now: chrono::DateTime<chrono::Utc>) {
    let Some(runs_out) = policy.rules.holidays_run_out(now) else {
        return;
    };
    if runs_out - now < CALENDAR_WARNING {
        tracing::warn!(%runs_out,
            "the holiday calendars run out: add config/holidays/<year>.toml (scripts/gen-holidays.py, then review it); from then, calls under a rule with a holiday window fail as policy.on_missing_calendar says (closed by default: calendar_missing)");
    }
}

/// Sections whose changed settings only a restart applies.
fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut sip = new.sip.clone();
    sip.drain_retry_after_secs = running.sip.drain_retry_after_secs;
    let mut upstream = new.upstream.clone();
    upstream.sources = running.upstream.sources.clone();
    let mut tls = new.tls.clone();
    tls.dialer_names = running.tls.dialer_names.clone();
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    [
        ("sip", differs(&running.sip, &sip)),
        ("tls", differs(&running.tls, &tls)),
        ("upstream", differs(&running.upstream, &upstream)),
        ("lists", differs(&running.lists, &new.lists)),
        ("audit", differs(&running.audit, &new.audit)),
        ("admin", differs(&running.admin, &new.admin)),
        ("numbers", differs(&running.numbers, &new.numbers)),
        ("log", differs(&running.log, &new.log)),
        ("records", differs(&running.records, &new.records)),
        ("shared", differs(&running.shared, &new.shared)),
        (
            "calls",
            running.calls.max_duration_secs != new.calls.max_duration_secs,
        ),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// What a prune removed (or, on a dry run, would remove).
#[derive(serde::Serialize)]
pub struct PruneReport {
    pub retention_days: u32,
    /// Files of days before this one are past the retention.
    pub keep_from: chrono::NaiveDate,
    pub dry_run: bool,
    pub removed: Vec<PrunedFile>,
}

#[derive(serde::Serialize)]
pub struct PrunedFile {
    pub file: String,
    /// The hash of its last line (its seal): the next file's first line points at it, so the
    /// chain verifies from there.
    pub final_hash: String,
    pub records: u64,
}

impl App {
    /// What the records take on disk, and what the disk has left (alert on it before a full
    /// disk refuses marketing calls).
    fn refresh_disk_metrics(&self) {
        let dir = &self.cfg.audit.dir;
        // With the copies of the other instances' logs: they fill the same disk.
        let copies = crate::records::cluster::others(dir)
            .into_iter()
            .map(|s| s.dir);
        let bytes: u64 = std::iter::once(dir.clone())
            .chain(copies)
            .flat_map(|d| crate::audit::chain::audit_files(&d).unwrap_or_default())
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        self.metrics.audit_disk_bytes.set(bytes as i64);
        if let Some(free) = free_bytes(dir) {
            self.metrics.audit_disk_free_bytes.set(free as i64);
        }
    }

    /// Remove the audit files past `records.retention_days`, never the newest. The admin record
    /// naming each file and its final hash is written and fsynced before anything is removed.
    pub fn prune_records(&self, who: String, dry_run: bool) -> std::io::Result<PruneReport> {
        let days = self.cfg.records.retention_days;
        let keep_from = self.clock.now().date_naive() - chrono::Duration::days(i64::from(days));
        let _moving = crate::audit::chain::FILES_MOVING
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // This log, then the copies of the other instances' (named from the audit directory).
        let dir = &self.cfg.audit.dir;
        let copies = crate::records::cluster::others(dir).into_iter();
        let logs = std::iter::once((dir.clone(), String::new()))
            .chain(copies.map(|s| (s.dir.clone(), s.prefix())));
        let mut removed = Vec::new();
        for (log, prefix) in logs {
            let files = match crate::audit::chain::audit_files(&log) {
                Ok(files) => files,
                // A copy that cannot be read does not keep this log from its retention.
                Err(e) if !prefix.is_empty() => {
                    tracing::warn!(dir = %log.display(), error = %e, "a copy of another instance's records not pruned");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let newest = files.last().cloned();
            for f in files.iter().filter(|f| Some(*f) != newest.as_ref()) {
                if crate::audit::chain::day_of(f).is_some_and(|d| d < keep_from) {
                    let (final_hash, records) = crate::audit::chain::final_hash(f)?;
                    removed.push((log.clone(), prefix.clone(), f.clone(), final_hash, records));
                }
            }
        }
        let report = PruneReport {
            retention_days: days,
            keep_from,
            dry_run,
            removed: removed
                .iter()
                .map(|(_, prefix, f, h, n)| PrunedFile {
                    file: format!(
                        "{prefix}{}",
                        f.file_name().unwrap_or_default().to_string_lossy()
                    ),
                    final_hash: h.clone(),
                    records: *n,
                })
                .collect(),
        };
        if dry_run || removed.is_empty() {
            return Ok(report);
        }
        let detail = serde_json::to_value(&report).unwrap_or_default();
        self.record_admin("records_prune", who, detail);
        self.audit.flush();
        let mut by_log: std::collections::BTreeMap<_, Vec<_>> = Default::default();
        for (log, _, f, _, _) in removed {
            std::fs::remove_file(&f)?;
            tracing::info!(file = %f.display(), "audit file past the retention removed");
            by_log.entry(log).or_default().push(f);
        }
        for (log, files) in by_log {
            crate::records::index::forget_files(&log, &files);
        }
        Ok(report)
    }
}

/// Bytes available to callgate on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed struct the call fills in.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}
