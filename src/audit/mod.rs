//! The decision log: one JSON line per decision (and per call record, per admin change), written by a dedicated thread, each line
//! linked to the one before by a hash chain (`chain`), checked by `callgate audit verify`
//! (`verify`).
//!
//! The hot path hands over an `AuditEvent` (slices of the received message plus the decision,
//! no formatting) through a bounded queue. When the queue is full the caller waits: records
//! are never dropped, and back-pressure is counted. The writer batches records and covers each
//! batch with one fdatasync at least every `flush_interval_ms`, and on shutdown. Files rotate at
//! UTC midnight: `audit-YYYY-MM-DD.jsonl`.

pub mod chain;
pub mod summary;
pub mod verify;
pub(crate) mod walk;

use crate::metrics::Metrics;
use crate::number::Called;
use crate::policy::Decision;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Everything the record needs, captured on the hot path without formatting.
pub(crate) struct AuditEvent {
    pub seq: u64,
    pub instance: Arc<str>,
    pub ts: DateTime<Utc>,
    pub call_id: Bytes,
    pub source: SocketAddr,
    pub transport: &'static str,
    /// The names on the verified client certificate of the TLS connection the request came
    /// on (the first is recorded).
    pub source_cert: Option<Arc<[String]>>,
    pub from: Bytes,
    pub pai: Option<Bytes>,
    pub called_raw: Bytes,
    pub decision: Decision,
    /// Status callgate answered with (blocks); `None` when the request was forwarded.
    pub sip_status: Option<u16>,
    /// Why a call the policy allowed was not forwarded (`records_unwritable`).
    pub refused: Option<&'static str>,
    pub latency_us: u32,
}

/// A change made through the admin API: who did what, in the same chained log.
pub struct AdminEvent {
    pub ts: DateTime<Utc>,
    /// `optout_add`, `lists_reload`...
    pub action: &'static str,
    /// The peer address and how it was authorized.
    pub who: String,
    pub detail: serde_json::Value,
}

/// Any other line of the log (a call record): when it happened, and how it is written (on the
/// writer thread, like decisions). The writer links it into the chain.
pub trait Entry: Send {
    fn ts(&self) -> DateTime<Utc>;
    /// One JSON object, no newline.
    fn write(&self, out: &mut Vec<u8>);
    /// What the line is about, for the records index (None: not a record).
    fn summary(&self) -> Option<summary::Summary>;
}

enum Msg {
    Record(Box<AuditEvent>),
    Admin(Box<AdminEvent>),
    Entry(Box<dyn Entry>),
    Flush(mpsc::Sender<()>),
    Shutdown,
}

/// How far behind the writer is, as the admission of a new call sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backlog {
    /// Fewer lines waiting than `audit.queue_capacity`.
    Clear,
    /// At least `audit.queue_capacity` lines wait: new marketing calls are refused (and
    /// recorded as refused), everything else still goes.
    Behind,
    /// Twice that: no new call is decided at all until the writer catches up (the queue's
    /// hard bound, reached only when the writer is stalled).
    Full,
}

/// The hot path's handle to the writer. Queuing never blocks: a stalled disk must not stall
/// the SIP thread. The queue is bounded instead by admission: past `capacity` lines waiting,
/// new calls are refused (see `Backlog`), so what is queued is at most twice the capacity
/// plus the end records of calls already open (themselves bounded by `calls.max_open`).
#[derive(Clone)]
pub struct AuditSink {
    tx: Sender<Msg>,
    capacity: usize,
    metrics: Arc<Metrics>,
    /// The last decision number given out; held until that decision's record is queued.
    seq: Arc<std::sync::Mutex<u64>>,
    instance: Arc<str>,
    writable: Arc<AtomicBool>,
}

/// A decision number not yet recorded (`AuditSink::number`).
pub(crate) struct Numbered<'a> {
    seq: std::sync::MutexGuard<'a, u64>,
    sink: &'a AuditSink,
}

impl Numbered<'_> {
    pub(crate) fn seq(&self) -> u64 {
        *self.seq
    }

    pub(crate) fn instance_arc(&self) -> Arc<str> {
        self.sink.instance_arc()
    }

    /// Queue the decision's record (numbered `seq`), and let the next number go.
    pub(crate) fn submit(self, ev: AuditEvent) {
        debug_assert_eq!(ev.seq, *self.seq);
        self.sink.submit(ev);
    }
}

pub struct AuditWriter {
    handle: Option<JoinHandle<()>>,
    tx: Sender<Msg>,
    durable: tokio::sync::watch::Receiver<u64>,
}

impl AuditSink {
    /// The next decision number, with the sole right to queue a decision record until its
    /// own is queued: records reach the log in number order, from any SIP worker, so the
    /// writer's "durable up to N" (which before-forward durability waits on) covers every
    /// decision numbered up to N.
    pub(crate) fn number(&self) -> Numbered<'_> {
        let mut seq = self.seq.lock().unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        Numbered { seq, sink: self }
    }

    /// The id a decision is known by, in the audit record and the `X-Callgate-Decision` header.
    pub(crate) fn decision_id(&self, seq: u64) -> String {
        decision_id(&self.instance, seq)
    }

    pub(crate) fn instance_arc(&self) -> Arc<str> {
        self.instance.clone()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// False after a write or fsync failed, until one succeeds again.
    pub(crate) fn writable(&self) -> bool {
        self.writable.load(Ordering::Relaxed)
    }

    /// Queue a decision record (through `Numbered`, which keeps them in number order).
    fn submit(&self, ev: AuditEvent) {
        self.queue(Msg::Record(Box::new(ev)), "decision");
    }

    /// Queue another line (a call record).
    pub(crate) fn entry(&self, e: Box<dyn Entry>) {
        self.queue(Msg::Entry(e), "call");
    }

    /// Queue an admin-change record.
    pub fn admin(&self, ev: AdminEvent) {
        self.queue(Msg::Admin(Box::new(ev)), "admin");
    }

    /// Lines waiting for the writer, against `audit.queue_capacity`.
    pub(crate) fn backlog(&self) -> Backlog {
        let waiting = usize::try_from(self.metrics.audit_queue_depth.get()).unwrap_or(0);
        if waiting >= self.capacity.saturating_mul(2) {
            Backlog::Full
        } else if waiting >= self.capacity {
            Backlog::Behind
        } else {
            Backlog::Clear
        }
    }

    /// Every line goes through one queue, in one order and one chain, and is never dropped
    /// nor waited for (see `backlog` for what bounds it).
    fn queue(&self, m: Msg, what: &str) {
        let waiting = self.metrics.audit_queue_depth.get();
        if usize::try_from(waiting).unwrap_or(0) >= self.capacity {
            self.metrics.audit_backpressure.inc();
        }
        self.metrics.audit_queue_depth.inc();
        if self.tx.send(m).is_err() {
            self.metrics.audit_queue_depth.dec();
            self.metrics.audit_write_errors.inc();
            tracing::error!("audit writer has stopped: {what} record lost");
        }
    }

    /// Wait until everything queued so far is written and fsynced.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

impl AuditWriter {
    /// Start the writer thread. Fails if the directory cannot be created.
    pub fn start(
        dir: &Path,
        capacity: usize,
        flush_interval: Duration,
        metrics: Arc<Metrics>,
        group_commit: bool,
        compress_sealed: bool,
        feed: Option<summary::FeedSender>,
    ) -> anyhow::Result<(AuditWriter, AuditSink)> {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("{}: cannot create audit directory: {e}", dir.display())
        })?;
        let recovered = chain::recover(dir).map_err(|e| {
            anyhow::anyhow!("{}: cannot resume the audit hash chain: {e}", dir.display())
        })?;
        if recovered.torn_bytes > 0 {
            metrics.audit_torn_records.inc();
        }
        let (tx, rx) = mpsc::channel();
        let instance: Arc<str> = format!("{:x}", Utc::now().timestamp_millis()).into();
        let m = metrics.clone();
        let dir = dir.to_owned();
        let (durable_tx, durable) = tokio::sync::watch::channel(0u64);
        let writable = Arc::new(AtomicBool::new(true));
        metrics.audit_writable.set(1);
        let health = Health {
            writable: writable.clone(),
            metrics: metrics.clone(),
        };
        let compress = match compress_sealed {
            true => Some(spawn_compressor(&dir, metrics.clone())?),
            false => None,
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut w = Writer::new(dir, recovered, m, durable_tx, health, compress);
                w.feed = feed.map(summary::Feed::new);
                run_writer(&mut w, rx, flush_interval, group_commit)
            })?;
        Ok((
            AuditWriter {
                handle: Some(handle),
                tx: tx.clone(),
                durable,
            },
            AuditSink {
                tx,
                capacity: capacity.max(1),
                metrics,
                seq: Default::default(),
                instance,
                writable,
            },
        ))
    }

    /// The sequence number of the last decision record known to be on disk (fsynced).
    pub fn durable(&self) -> tokio::sync::watch::Receiver<u64> {
        self.durable.clone()
    }

    /// Drain the queue, fsync, stop the thread.
    pub fn shutdown(mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct DayFile {
    day: NaiveDate,
    out: BufWriter<File>,
}

fn day_path(dir: &Path, day: NaiveDate) -> PathBuf {
    dir.join(format!("audit-{day}.jsonl"))
}

fn open_day(dir: &Path, day: NaiveDate) -> std::io::Result<DayFile> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(day_path(dir, day))?;
    Ok(DayFile {
        day,
        out: BufWriter::with_capacity(256 * 1024, f),
    })
}

/// Called with lines pending: without a file they were lost with it (a rotation whose flush
/// failed), and they are not reported written.
fn sync(file: &mut Option<DayFile>) -> std::io::Result<()> {
    let f = file
        .as_mut()
        .ok_or_else(|| std::io::Error::other("no audit file open"))?;
    f.out.flush()?;
    f.out.get_ref().sync_data()
}

/// The writer thread's open file and its unsynced records.
struct Writer {
    dir: PathBuf,
    file: Option<DayFile>,
    /// Hash of the last line written (or recovered): the next line's `prev`.
    head: String,
    /// The newest file written to (or found at start), and whether it is sealed.
    last_file: Option<PathBuf>,
    last_sealed: bool,
    pending: u64,
    last_sync: Instant,
    line: Vec<u8>,
    metrics: Arc<Metrics>,
    /// The last decision record handed to the file, and where fsynced ones are announced
    /// (before-forward durability releases forwarded INVITEs up to it).
    last_seq: u64,
    durable: tokio::sync::watch::Sender<u64>,
    health: Health,
    /// Where sealed files go to be compressed (`records.compress`).
    compress: Option<mpsc::Sender<PathBuf>>,
    /// Where committed lines' summaries go (the records index, `records.index`).
    feed: Option<summary::Feed>,
}

/// A thread, at low priority, that compresses sealed day files (the writer never waits for
/// it), starting with those a previous run sealed and left plain.
fn spawn_compressor(dir: &Path, metrics: Arc<Metrics>) -> std::io::Result<mpsc::Sender<PathBuf>> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let files = chain::audit_files(dir)?;
    let newest = files.last().cloned();
    for f in files {
        if Some(&f) != newest.as_ref() && !chain::is_compressed(&f) && chain::is_sealed(&f)? {
            let _ = tx.send(f);
        }
    }
    std::thread::Builder::new()
        .name("audit-compress".into())
        .spawn(move || {
            // Linux nice is per thread: only this one yields to the SIP and writer threads.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            for path in rx {
                match chain::compress(&path) {
                    Ok(gz) => tracing::info!(file = %gz.display(), "sealed audit file compressed"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        tracing::info!(file = %path.display(), "sealed audit file pruned before it was compressed")
                    }
                    Err(e) => {
                        metrics.audit_write_errors.inc();
                        tracing::error!(error = %e, file = %path.display(), "cannot compress a sealed audit file (it stays as it is)");
                    }
                }
            }
        })?;
    Ok(tx)
}

/// Whether records are reaching the disk, for the gate to act on (`audit.on_write_error`).
/// Told once per change in the log, every failure counted.
struct Health {
    writable: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Health {
    fn failed(&self, what: &str, e: &std::io::Error) {
        self.metrics.audit_write_errors.inc();
        if self.writable.swap(false, Ordering::Relaxed) {
            self.metrics.audit_writable.set(0);
            tracing::error!(error = %e, "audit {what} failed: records are not being written (new marketing calls are refused unless audit.on_write_error = \"allow\")");
        }
    }

    fn succeeded(&self) {
        if !self.writable.swap(true, Ordering::Relaxed) {
            self.metrics.audit_writable.set(1);
            tracing::warn!("audit log writable again");
        }
    }
}

impl Writer {
    /// Serialize and append one record, rotating at UTC midnight.
    fn append(&mut self, ev: &AuditEvent) {
        self.metrics.audit_queue_depth.dec();
        let before = self.pending;
        self.append_line(
            ev.ts,
            |out| write_record(out, ev),
            || Some(summary::of_decision(ev)),
        );
        if self.pending > before {
            self.last_seq = self.last_seq.max(ev.seq);
        }
    }

    /// Append one line: rotate if the day changed, link it into the chain, write it. The chain
    /// head moves only when the line was handed to the file.
    fn append_line(
        &mut self,
        ts: DateTime<Utc>,
        serialize: impl FnOnce(&mut Vec<u8>),
        summarize: impl FnOnce() -> Option<summary::Summary>,
    ) {
        let day = self.day_for(ts);
        if self.file.as_ref().map(|f| f.day) != Some(day) {
            self.commit();
            if self.pending > 0 {
                // Its lines go with the file: the index reads what reached it.
                if let Some(feed) = &mut self.feed {
                    feed.lost();
                }
            }
            self.file = None;
            let path = day_path(&self.dir, day);
            self.seal_previous(&path, ts);
            match open_day(&self.dir, day) {
                Ok(f) => {
                    if let Some(feed) = &mut self.feed {
                        let len = f.out.get_ref().metadata().ok().map(|m| m.len());
                        feed.opened(&path, len);
                    }
                    self.file = Some(f);
                    self.last_file = Some(path);
                    self.last_sealed = false;
                }
                Err(e) => self.health.failed("file open", &e),
            }
        }
        self.line.clear();
        serialize(&mut self.line);
        let head = chain::link(&mut self.line, &self.head);
        self.line.push(b'\n');
        match &mut self.file {
            Some(f) => match f.out.write_all(&self.line) {
                Ok(()) => {
                    self.pending += 1;
                    self.head = head;
                    if let Some(feed) = &mut self.feed {
                        feed.wrote(self.line.len(), summarize);
                    }
                }
                Err(e) => {
                    // What of the line reached the file is unknown: the index reads the rest
                    // of this day from the file.
                    if let Some(feed) = &mut self.feed {
                        feed.lost();
                    }
                    self.health.failed("write", &e)
                }
            },
            None => self
                .health
                .failed("write", &std::io::Error::other("no audit file open")),
        }
    }

    /// The day file a line stamped `ts` goes to: its own day, but never one before the newest
    /// file (a line stamped 23:59:59.9 that reaches the writer after one of the next day joins
    /// the newer file, its time kept): a sealed day is never reopened, nor appended to while
    /// it is being compressed.
    fn day_for(&self, ts: DateTime<Utc>) -> NaiveDate {
        let newest = match &self.file {
            Some(f) => Some(f.day),
            None => self.last_file.as_deref().and_then(chain::day_of),
        };
        newest.map_or(ts.date_naive(), |d| d.max(ts.date_naive()))
    }

    fn append_entry(&mut self, e: &dyn Entry) {
        self.metrics.audit_queue_depth.dec();
        self.append_line(e.ts(), |out| e.write(out), || e.summary());
    }

    fn append_admin(&mut self, ev: &AdminEvent) {
        self.metrics.audit_queue_depth.dec();
        self.append_line(
            ev.ts,
            |out| {
                let _ = serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({
                        "ts": ev.ts.to_rfc3339_opts(SecondsFormat::Millis, true),
                        "admin": {"action": ev.action, "who": ev.who, "detail": ev.detail},
                    }),
                );
            },
            || Some(summary::of_admin(ev)),
        );
    }

    /// Close the chain of the previous file with a seal line before the first record of
    /// `next` (at rotation, or at start when the newest file is from an earlier day).
    fn seal_previous(&mut self, next: &Path, ts: DateTime<Utc>) {
        let Some(prev) = self.last_file.clone() else {
            return;
        };
        if prev == next || self.last_sealed {
            return;
        }
        let next_name = next
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ts = ts.to_rfc3339_opts(SecondsFormat::Millis, true);
        match chain::seal(&prev, &self.head, &next_name, &ts) {
            Ok(h) => {
                self.head = h;
                self.last_sealed = true;
                if let Some(tx) = &self.compress {
                    let _ = tx.send(prev.clone());
                }
            }
            Err(e) => self
                .health
                .failed(&format!("seal of {}", prev.display()), &e),
        }
    }

    /// Flush and fsync what was appended; only then are the records counted as written.
    fn commit(&mut self) {
        if self.pending > 0 {
            match sync(&mut self.file) {
                Ok(()) => {
                    if let Some(feed) = &mut self.feed {
                        feed.committed(&self.head);
                    }
                    self.metrics.audit_records_written.inc_by(self.pending);
                    self.durable.send_replace(self.last_seq);
                    self.pending = 0;
                    self.health.succeeded();
                }
                // The lines stay pending: the next commit tries the flush and fsync again.
                Err(e) => self.health.failed("flush or fsync", &e),
            }
        }
        self.last_sync = Instant::now();
    }
}

impl Writer {
    fn new(
        dir: PathBuf,
        recovered: chain::Recovered,
        metrics: Arc<Metrics>,
        durable: tokio::sync::watch::Sender<u64>,
        health: Health,
        compress: Option<mpsc::Sender<PathBuf>>,
    ) -> Writer {
        Writer {
            dir,
            file: None,
            head: recovered.head,
            last_file: recovered.file,
            last_sealed: recovered.sealed,
            pending: 0,
            last_sync: Instant::now(),
            line: Vec::with_capacity(2048),
            metrics,
            last_seq: 0,
            durable,
            health,
            compress,
            feed: None,
        }
    }

    /// At shutdown: write whatever is still queued, then commit.
    fn drain(&mut self, rx: &Receiver<Msg>) {
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Record(ev) => self.append(&ev),
                Msg::Admin(ev) => self.append_admin(&ev),
                Msg::Entry(e) => self.append_entry(&*e),
                _ => {}
            }
        }
        self.commit();
    }
}

fn run_writer(w: &mut Writer, rx: Receiver<Msg>, interval: Duration, group_commit: bool) {
    // The writer drains the queue on a short tick instead of blocking in recv: a blocked
    // receiver must be woken (futex + context switch) for every record, which measured as a
    // large share of the per-call CPU. The tick keeps the fsync bound of `interval`.
    // Before-forward durability: forwarded INVITEs wait for their records, so the queue is
    // committed (one fsync for everything that arrived) as soon as it runs empty, and the tick
    // is short. Async: fsync at least every `interval`.
    let tick = if group_commit {
        Duration::from_micros(500)
    } else {
        (interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(20))
    };
    let mut idle = true;
    loop {
        if idle {
            std::thread::sleep(tick);
        }
        match rx.try_recv() {
            Ok(Msg::Record(ev)) => {
                idle = false;
                w.append(&ev);
            }
            Ok(Msg::Admin(ev)) => {
                idle = false;
                w.append_admin(&ev);
            }
            Ok(Msg::Entry(e)) => {
                idle = false;
                w.append_entry(&*e);
            }
            Ok(Msg::Flush(done)) => {
                idle = false;
                w.commit();
                let _ = done.send(());
            }
            Ok(Msg::Shutdown) => return w.drain(&rx),
            Err(mpsc::TryRecvError::Empty) => {
                idle = true;
                if group_commit && w.pending > 0 {
                    w.commit();
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                w.commit();
                return;
            }
        }
        if w.last_sync.elapsed() >= interval {
            w.commit();
        }
        w.metrics
            .audit_last_sync_age
            .set(w.last_sync.elapsed().as_secs_f64());
    }
}

fn decision_id(instance: &str, seq: u64) -> String {
    format!("{instance}-{seq}")
}

fn lossy(b: &Bytes) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

#[derive(Serialize)]
struct ListRef<'a> {
    id: &'a str,
    kind: crate::lists::ListKind,
    version: String,
    entries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    downloaded: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    sample: bool,
    hit: bool,
}

#[derive(Serialize)]
struct Record<'a> {
    id: String,
    ts: String,
    call_id: std::borrow::Cow<'a, str>,
    source: String,
    transport: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_cert: Option<&'a str>,
    from: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pai: Option<std::borrow::Cow<'a, str>>,
    called_raw: std::borrow::Cow<'a, str>,
    called_e164: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number_problem: Option<String>,
    verdict: &'a str,
    reasons: crate::call::Reasons,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fail_open: bool,
    sip_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<&'a str>,
    list_generation: u64,
    lists: Lists<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    lists_unavailable: Vec<&'a str>,
    optouts_seq: u64,
    /// Campaign, call type, caller ID, place, binding zone and local time, consent record
    /// used, data versions (see `policy::explain::Context`).
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<crate::policy::explain::Context<'a>>,
    /// Every check evaluated: `id=outcome[:reason]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<crate::policy::explain::AuditChecks<'a>>,
    latency_us: u32,
}

/// A record's `lists`: the generation's rendering when no list matched, else built.
#[derive(Serialize)]
#[serde(untagged)]
enum Lists<'a> {
    Rendered(&'a serde_json::value::RawValue),
    Built(Vec<ListRef<'a>>),
}

fn lists_of(d: &Decision) -> Lists<'_> {
    if d.list_hits != 0 {
        return Lists::Built(list_refs(d));
    }
    let rendered = d.lists.audit_lists.get_or_init(|| {
        let json = serde_json::to_string(&list_refs(d)).ok()?;
        serde_json::value::RawValue::from_string(json).ok()
    });
    match rendered {
        Some(r) => Lists::Rendered(r),
        None => Lists::Built(list_refs(d)),
    }
}

fn list_refs(d: &Decision) -> Vec<ListRef<'_>> {
    d.lists
        .lists
        .iter()
        .enumerate()
        .map(|(i, l)| ListRef {
            id: &l.meta.id.0,
            kind: l.meta.kind,
            version: l.meta.version(),
            entries: l.meta.entries,
            downloaded: l
                .meta
                .downloaded
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            sample: l.meta.sample,
            hit: d.list_hits & (1 << i) != 0,
        })
        .collect()
}

/// Serialize one record (on the writer thread).
pub(crate) fn write_record(out: &mut Vec<u8>, ev: &AuditEvent) {
    let d = &ev.decision;
    let service;
    let rec = Record {
        id: decision_id(&ev.instance, ev.seq),
        ts: ev.ts.to_rfc3339_opts(SecondsFormat::Millis, true),
        call_id: lossy(&ev.call_id),
        source: ev.source.to_string(),
        transport: ev.transport,
        source_cert: ev
            .source_cert
            .as_ref()
            .and_then(|n| n.first())
            .map(String::as_str),
        from: lossy(&ev.from),
        pai: ev.pai.as_ref().map(lossy),
        called_raw: lossy(&ev.called_raw),
        called_e164: d.number().map(|n| n.to_string()),
        service_code: match &d.called {
            Ok(Called::Service(s)) => {
                service = *s;
                Some(service.as_str())
            }
            _ => None,
        },
        number_problem: d.called.as_ref().err().map(|e| e.to_string()),
        verdict: d.verdict.as_str(),
        reasons: d.reasons,
        fail_open: d.fail_open,
        sip_status: ev.sip_status,
        refused: ev.refused,
        list_generation: d.lists.generation,
        lists: lists_of(d),
        lists_unavailable: d.lists.unavailable.iter().map(|u| &*u.id.0).collect(),
        optouts_seq: d.optouts_seq,
        policy: d
            .context
            .is_some()
            .then_some(crate::policy::explain::Context(d)),
        checks: (d.trace.iter().next().is_some()).then_some(crate::policy::explain::AuditChecks(d)),
        latency_us: ev.latency_us,
    };
    let _ = serde_json::to_writer(&mut *out, &rec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::{ListSet, OptOuts};
    use crate::number::Called;
    use crate::policy::context::CallerId;
    use crate::policy::{Against, Policy, PolicyState};

    fn a_decision(policy: &Policy, state: &PolicyState, optouts: &OptOuts) -> Decision {
        let ctx = policy.campaigns.classify(
            None,
            None,
            None,
            CallerId::Number("+12025550100".parse().unwrap()),
        );
        let at = Against {
            lists: Arc::new(ListSet::new(1, vec![], vec![])),
            optouts,
            state,
            now: Utc::now(),
        };
        let n = "+14155552000".parse().unwrap();
        policy.decide(ctx, Ok(Called::Number(n)), at, false)
    }

    // Several SIP workers record decisions at once; each pauses between taking its number
    // and queueing the record, where another's would slip in if the two were separate steps.
    #[test]
    fn decisions_numbered_on_several_threads_reach_the_log_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (writer, sink) = AuditWriter::start(
            dir.path(),
            100_000,
            Duration::from_millis(5),
            metrics,
            true,
            false,
            None,
        )
        .unwrap();
        let cfg = crate::config::Config::from_str_named("t.toml", "").unwrap();
        let policy = Policy::new(&cfg).unwrap();
        let state = PolicyState::in_memory();
        let optouts = OptOuts::open(&dir.path().join("o.jsonl"), crate::clock::system()).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        let decision = a_decision(&policy, &state, &optouts);
                        let numbered = sink.number();
                        let (seq, instance) = (numbered.seq(), numbered.instance_arc());
                        std::thread::yield_now();
                        numbered.submit(AuditEvent {
                            seq,
                            instance,
                            ts: Utc::now(),
                            call_id: Bytes::from_static(b"c"),
                            source: "127.0.0.1:5060".parse().unwrap(),
                            transport: "udp",
                            source_cert: None,
                            from: Bytes::new(),
                            pai: None,
                            called_raw: Bytes::from_static(b"4155552000"),
                            decision,
                            sip_status: None,
                            refused: None,
                            latency_us: 1,
                        });
                    }
                });
            }
        });
        sink.flush();
        writer.shutdown();
        let mut numbers = vec![];
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let path = e.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("audit-")
            {
                continue;
            }
            for line in std::fs::read_to_string(path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(id) = v["id"].as_str() {
                    numbers.push(id.rsplit('-').next().unwrap().parse::<u64>().unwrap());
                }
            }
        }
        assert_eq!(numbers, (1..=400).collect::<Vec<u64>>());
    }
}
