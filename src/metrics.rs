//! Prometheus metrics. Labelled children are resolved once and kept, so counting on the hot path
//! is an atomic add, not a label hash and a lock.

use crate::call::{Reason, Reasons, Verdict};
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    decision_handles: Vec<IntCounter>, // [verdict][reason or none]
    reason_handles: Vec<IntCounter>,
    pub decision_seconds: Histogram,
    pub list_entries: IntGaugeVec,
    pub list_memory: IntGaugeVec,
    pub prefilter_memory: IntGauge,
    pub list_age_seconds: GaugeVec,
    pub list_fresh: IntGaugeVec,
    pub list_max_age_seconds: IntGaugeVec,
    pub ready: IntGauge,
    pub list_sample: IntGaugeVec,
    pub list_unavailable: IntGaugeVec,
    pub list_generation: IntGauge,
    pub list_reloads: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub tls_reloads: IntCounterVec,
    pub tls_cert_expiry: IntGaugeVec,
    pub holiday_calendar_end: IntGauge,
    pub national_fresh: IntGauge,
    pub audit_queue_depth: IntGauge,
    pub audit_records_written: IntCounter,
    pub audit_write_errors: IntCounter,
    pub audit_writable: IntGauge,
    pub abandonment_ratio: GaugeVec,
    pub audit_disk_bytes: IntGauge,
    pub audit_disk_free_bytes: IntGauge,
    pub unrecordable_refusals: IntCounter,
    pub backlog_refusals: IntCounterVec,
    pub recovery_unreadable_files: IntCounter,
    pub audit_torn_records: IntCounter,
    pub audit_backpressure: IntCounter,
    pub audit_last_sync_age: Gauge,
    pub optouts_added: IntCounter,
    pub optouts_entries: IntGauge,
}

/// What the metrics reference says of a metric.
pub struct MetricDoc {
    pub name: String,
    pub kind: &'static str,
    pub labels: Vec<String>,
    pub help: String,
}

thread_local! {
    /// The metrics registered on this thread while a catalog is being taken.
    static NOTED: std::cell::RefCell<Option<Vec<MetricDoc>>> = const { std::cell::RefCell::new(None) };
}

/// Register `c`; while a catalog is being taken on this thread, note what it is.
pub(crate) fn register<C: Collector + Clone + 'static>(r: &Registry, c: &C, kind: &'static str) {
    NOTED.with(|n| {
        if let Some(noted) = n.borrow_mut().as_mut() {
            noted.extend(c.desc().into_iter().map(|d| MetricDoc {
                name: d.fq_name.clone(),
                kind,
                labels: d.variable_labels.clone(),
                help: d.help.clone(),
            }));
        }
    });
    r.register(Box::new(c.clone())).expect("register");
}

/// Every metric `build` registers, by name: the metrics reference, from the registrations
/// themselves.
pub fn catalog(build: impl FnOnce()) -> Vec<MetricDoc> {
    NOTED.with(|n| *n.borrow_mut() = Some(vec![]));
    build();
    let mut noted = NOTED.with(|n| n.borrow_mut().take()).unwrap_or_default();
    noted.sort_by(|a, b| a.name.cmp(&b.name));
    noted
}

pub(crate) fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
    register(r, &c, "counter");
    c
}

pub(crate) fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("metric");
    register(r, &h, "histogram");
    h
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric");
    register(r, &c, "counter");
    c
}

pub(crate) fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric");
    register(r, &g, "gauge");
    g
}

pub(crate) fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
    register(r, &g, "gauge");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    // Long: the table of every metric, its name and help text, one entry each.
    pub fn new() -> Metrics {
        let r = Registry::new();
        let decisions = counter_vec(
            &r,
            "callgate_decisions_total",
            "Call decisions by verdict and primary reason (\"none\" when nothing applied).",
            &["verdict", "reason"],
        );
        let mut decision_handles = Vec::new();
        for v in Verdict::ALL {
            for reason in Reason::ALL.iter().map(|r| r.code()).chain(["none"]) {
                decision_handles.push(decisions.with_label_values(&[v.as_str(), reason]));
            }
        }
        let reasons = counter_vec(
            &r,
            "callgate_decision_reasons_total",
            "Every reason that applied to a decision (a decision may count under several).",
            &["reason"],
        );
        let reason_handles = Reason::ALL
            .iter()
            .map(|x| reasons.with_label_values(&[x.code()]))
            .collect();
        let decision_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "callgate_decision_duration_seconds",
                "Time from receiving an INVITE to its verdict (number extraction and policy).",
            )
            .buckets(vec![
                1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2,
            ]),
        )
        .expect("metric");
        register(&r, &decision_seconds, "histogram");
        let list_age_seconds = GaugeVec::new(
            Opts::new(
                "callgate_list_age_seconds",
                "Seconds since the list was downloaded (sample data: loaded).",
            ),
            &["list"],
        )
        .expect("metric");
        register(&r, &list_age_seconds, "gauge");
        let audit_last_sync_age = Gauge::new(
            "callgate_audit_last_sync_age_seconds",
            "Seconds since the audit log was last fsynced.",
        )
        .expect("metric");
        register(&r, &audit_last_sync_age, "gauge");

        let abandonment_ratio = GaugeVec::new(
            Opts::new(
                "callgate_campaign_abandonment_ratio",
                "Abandoned over answered calls of a campaign in the last 30 days (the TSR and FCC limit: 0.03).",
            ),
            &["campaign"],
        )
        .expect("metric");
        register(&r, &abandonment_ratio, "gauge");

        let m = Metrics {
            abandonment_ratio,
            decision_handles,
            reason_handles,
            decision_seconds,
            list_entries: gauge_vec(&r, "callgate_list_entries", "Numbers in each list in service.", &["list"]),
            list_memory: gauge_vec(&r, "callgate_list_memory_bytes", "Bytes held by each list's exact set.", &["list"]),
            prefilter_memory: gauge(&r, "callgate_list_prefilter_memory_bytes", "Bytes held by the prefilter in front of all lists (bloom filter and block masks)."),
            list_age_seconds,
            list_fresh: gauge_vec(&r, "callgate_list_fresh", "1 when a list with a download date is within its age limit.", &["list"]),
            list_max_age_seconds: gauge_vec(&r, "callgate_list_max_age_seconds", "The age limit of each list with a download date (the national list: at most 31 days); compare with callgate_list_age_seconds.", &["list"]),
            ready: gauge(&r, "callgate_ready", "1 when callgate is ready (GET /readyz answers 200): the SIP loop turns and every list is loaded and within its age limit."),
            list_sample: gauge_vec(&r, "callgate_list_sample_data", "1 when a list is shipped sample data.", &["list"]),
            list_unavailable: gauge_vec(
                &r,
                "callgate_list_unavailable",
                "1 when a configured list failed to load and has no earlier version.",
                &["list"],
            ),
            list_generation: gauge(&r, "callgate_list_generation", "Generation number of the list set in service."),
            list_reloads: counter_vec(&r, "callgate_list_reloads_total", "List reloads by result.", &["result"]),
            config_reloads: counter_vec(&r, "callgate_config_reloads_total", "Configuration file reloads (SIGHUP) by result: ok or error (running configuration kept).", &["result"]),
            tls_reloads: counter_vec(&r, "callgate_tls_reloads_total", "TLS certificate reloads (SIGHUP, POST /v1/reload) by role (sip, upstream, admin) and result: ok or error (certificate in service kept).", &["role", "result"]),
            tls_cert_expiry: gauge_vec(&r, "callgate_tls_cert_expiry_timestamp_seconds", "When the certificate callgate presents expires (Unix time), by role: alert well before it.", &["role"]),
            holiday_calendar_end: gauge(&r, "callgate_holiday_calendar_end_timestamp_seconds", "When the holiday calendars run out (Unix time: 00:00 UTC on January 1 of the first year from this one without a config/holidays file; 0 when no rule has a holiday window): from then, calls under a rule with a holiday window fail as policy.on_missing_calendar says (closed by default: calendar_missing). Add the next year's file well before."),
            national_fresh: gauge(
                &r,
                "callgate_national_list_fresh",
                "1 when the national list is loaded and within the 31-day rule; 0 means marketing calls fail closed (or open, if so configured).",
            ),
            audit_queue_depth: gauge(&r, "callgate_audit_queue_depth", "Decision records waiting to be written."),
            audit_records_written: counter(&r, "callgate_audit_records_written_total", "Decision records written and fsynced."),
            audit_write_errors: counter(&r, "callgate_audit_write_errors_total", "Audit log write or fsync failures."),
            audit_disk_bytes: gauge(&r, "callgate_audit_disk_bytes", "Bytes of the audit files (decision, call and admin records) in audit.dir."),
            audit_disk_free_bytes: gauge(&r, "callgate_audit_disk_free_bytes", "Bytes free for callgate on the filesystem of audit.dir."),
            audit_writable: gauge(&r, "callgate_audit_writable", "1 while records are being written and fsynced; 0 after a write or fsync failed, until one succeeds again."),
            recovery_unreadable_files: counter(&r, "callgate_records_recovery_unreadable_files_total", "Audit files in the crash-recovery window that could not be read at start (a corrupt compressed day, an I/O error): callgate starts anyway and says which in its log."),
            backlog_refusals: counter_vec(&r, "callgate_calls_refused_backlog_total", "New calls answered 503 because the audit writer is behind: `behind` (audit.queue_capacity lines waiting: marketing calls only, recorded) or `full` (twice that: every new call, before any decision).", &["level"]),
            unrecordable_refusals: counter(&r, "callgate_calls_refused_unrecordable_total", "Marketing calls answered 503 because their records could not be written (audit.on_write_error = \"reject\")."),
            audit_torn_records: counter(&r, "callgate_audit_torn_records_total", "Torn final audit records (a crash mid-write) cut off at start."),
            audit_backpressure: counter(
                &r,
                "callgate_audit_backpressure_total",
                "Lines queued while audit.queue_capacity or more were already waiting for the writer (new marketing calls are then refused, never waited for).",
            ),
            audit_last_sync_age,
            optouts_added: counter(&r, "callgate_optouts_added_total", "Opt-outs added through the API."),
            optouts_entries: gauge(&r, "callgate_optouts", "Numbers in the opt-out journal."),
            registry: r,
        };
        m.show_known_labels();
        m
    }

    /// Counters whose label values are known in advance are shown at 0 from the start, so an
    /// alert on `increase(...)` sees the first event and a dashboard shows a flat line rather
    /// than "no data".
    fn show_known_labels(&self) {
        for result in ["ok", "partial", "error"] {
            self.list_reloads.with_label_values(&[result]);
        }
        for result in ["ok", "error"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for level in ["behind", "full"] {
            self.backlog_refusals.with_label_values(&[level]);
        }
    }

    #[inline]
    pub(crate) fn count_decision(&self, verdict: Verdict, reasons: Reasons) {
        let v = Verdict::ALL.iter().position(|x| *x == verdict).unwrap_or(0);
        // Reasons are declared in `Reason::ALL` order, so a discriminant is an index; the slot
        // after the last reason is "none".
        let primary = reasons
            .primary()
            .map(|r| r as usize)
            .unwrap_or(Reason::ALL.len());
        self.decision_handles[v * (Reason::ALL.len() + 1) + primary].inc();
        for r in reasons.iter() {
            self.reason_handles[r as usize].inc();
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode");
        String::from_utf8(buf).unwrap_or_default()
    }
}
