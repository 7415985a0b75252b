//! Start and stop a whole callgate: lists, audit writer, SIP thread, admin thread.
//!
//! The SIP side runs on its own thread with a current-thread tokio runtime: measured here, a
//! multi-threaded runtime's work-stealing wake-ups cost about twice the CPU per call, and one
//! loop that handles each message to completion keeps a call's messages in order.

use crate::admin::http;
use crate::app::{live_settings, App};
use crate::audit::summary::{Batch, FeedSender};
use crate::audit::AuditWriter;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::gate::{Compliance, Parts};
use crate::lists::ListStore;
use crate::metrics::Metrics;
use crate::number::Normalizer;
use crate::policy::caps::CapStore;
use crate::policy::consent::ConsentStore;
use crate::policy::emergency::Emergency;
use crate::policy::PolicyState;
use crate::sip::metrics::SipMetrics;
use crate::sip::proxy::{Proxy, ProxySettings};
use crate::sip::transport::{SipIo, TlsSides};
use crate::tls::{ClientTls, ServerTls, TlsSet};
use anyhow::{anyhow, Context};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub struct Running {
    pub app: Arc<App>,
    pub sip_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    sip_thread: Option<JoinHandle<()>>,
    admin_thread: Option<JoinHandle<()>>,
    audit: Option<AuditWriter>,
}

mod synth;
pub use synth::{generate, Plan};

/// Every metric callgate registers, with its kind, labels and help: `callgate metrics
/// reference` and the book's metrics page.
pub fn metrics_catalog() -> Vec<crate::metrics::MetricDoc> {
    crate::metrics::catalog(|| {
        let m = Metrics::new();
        SipMetrics::register(&m.registry);
        crate::records::metrics::RecordMetrics::register(&m.registry);
        crate::records::index::FollowerMetrics::register(&m.registry);
        crate::shared::SharedMetrics::register(&m.registry);
    })
}

fn resolve_upstream(cfg: &Config) -> anyhow::Result<(SocketAddr, String)> {
    let a = cfg.upstream.address.trim();
    let addr = a
        .to_socket_addrs()
        .with_context(|| format!("upstream.address `{a}`: cannot resolve (expected host:port)"))?
        .next()
        .ok_or_else(|| anyhow!("upstream.address `{a}`: no address"))?;
    let host = a
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(a)
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    Ok((addr, host))
}

/// The address we put in Via and Record-Route: configured, else the listen address, else the
/// local address the kernel would use toward the upstream.
fn advertise(cfg: &Config, bound: SocketAddr, upstream: SocketAddr) -> (String, u16) {
    if let Some(a) = cfg.sip.advertise.as_deref().filter(|a| !a.is_empty()) {
        if let Some((h, p)) = a
            .rsplit_once(':')
            .filter(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok())
        {
            return (h.to_string(), p.parse().unwrap());
        }
        return (a.to_string(), bound.port());
    }
    let ip = if bound.ip().is_unspecified() {
        std::net::UdpSocket::bind(SocketAddr::new(bound.ip(), 0))
            .and_then(|s| s.connect(upstream).and_then(|_| s.local_addr()))
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        bound.ip()
    };
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    (host, bound.port())
}

/// A larger UDP receive buffer absorbs bursts (a dialer's campaign start, a retransmission
/// storm) that would otherwise be dropped by the kernel while the SIP thread is busy. The kernel
/// caps SO_RCVBUF at net.core.rmem_max; with CAP_NET_ADMIN SO_RCVBUFFORCE goes past it.
/// Whatever the kernel grants is logged.
fn set_receive_buffer(sock: &std::net::UdpSocket, bytes: usize) -> usize {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    let want = bytes.min(i32::MAX as usize) as libc::c_int;
    let set = |opt| {
        // SAFETY: fd is an open socket; the option value is a c_int of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    let got = || {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: fd is an open socket; v and len are valid for the kernel to write.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        // The kernel reports double the value set (its bookkeeping overhead).
        if r == 0 {
            v as usize / 2
        } else {
            0
        }
    };
    if bytes == 0 {
        return got();
    }
    let _ = set(libc::SO_RCVBUF);
    if got() < bytes {
        let _ = set(libc::SO_RCVBUFFORCE);
    }
    let granted = got();
    if granted < bytes {
        tracing::warn!(
            requested = bytes,
            granted,
            "UDP receive buffer smaller than sip.udp_receive_buffer_bytes: raise net.core.rmem_max"
        );
    } else {
        tracing::debug!(bytes = granted, "UDP receive buffer");
    }
    granted
}

/// `lists.watch`: reload the lists when the manifest or a list file differs from what the
/// lists in service were read from, once the change has held still for one interval (a file
/// being copied in is not read half-written). A refused reload is not retried until the files
/// change again; a reload by signal or API counts as the watch's own. Ends when callgate
/// starts to stop.
fn spawn_list_watch(app: &Arc<App>, every: Duration) {
    let weak = Arc::downgrade(app);
    let spawned = std::thread::Builder::new()
        .name("list-watch".into())
        .spawn(move || {
            let mut seen: Option<crate::lists::Stamps> = None;
            loop {
                std::thread::sleep(every);
                let Some(app) = weak.upgrade() else { return };
                if app.proxy.is_draining() {
                    return;
                }
                let now = app.lists.watched_stamps();
                if now != app.lists.applied_stamps() && seen.as_ref() == Some(&now) {
                    tracing::info!("lists.watch: the list files changed; reloading");
                    let _ = app.reload("lists.watch".into());
                    app.log_list_health();
                }
                seen = Some(now);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "lists.watch: cannot start the watch; lists change only on SIGHUP or POST /v1/reload");
    }
}

/// The records index kept current beside the log (`records.index`), until callgate drains.
fn spawn_records_index(app: &Arc<App>, feed: Option<Receiver<Batch>>) {
    let cfg = &app.cfg.records;
    if !cfg.index {
        return;
    }
    let metrics = crate::records::index::FollowerMetrics::register(&app.metrics.registry);
    let weak = Arc::downgrade(app);
    crate::records::index::spawn_follower(
        app.cfg.audit.dir.clone(),
        Duration::from_millis(cfg.index_interval_ms),
        metrics,
        app.records_index.clone(),
        feed,
        move || weak.upgrade().is_some_and(|a| !a.proxy.is_draining()),
    );
}

/// The policy state's upkeep, off the call path: the abandonment counts saved every 5 s (a
/// crash loses at most that much of them), expired frequency-cap counters swept every minute.
fn spawn_state_upkeep(state: Arc<PolicyState>, clock: SharedClock) {
    const SAVE: Duration = Duration::from_secs(5);
    const SWEEPS_EVERY: u32 = 12; // saves: one minute
    let weak = Arc::downgrade(&state);
    drop(state);
    let _ = std::thread::Builder::new()
        .name("state-upkeep".into())
        .spawn(move || {
            for tick in 1u32.. {
                std::thread::sleep(SAVE);
                let Some(s) = weak.upgrade() else { return };
                if let Err(e) = s.abandonment.save() {
                    tracing::error!(error = %e, "cannot save the abandonment counts");
                }
                if tick % SWEEPS_EVERY == 0 {
                    let n = s.caps.sweep(clock.now().timestamp());
                    if n > 0 {
                        tracing::debug!(
                            expired = n,
                            keys = s.caps.len(),
                            "frequency-cap counters swept"
                        );
                    }
                }
            }
        });
}

/// Every problem a start would meet besides the configuration file itself (which `cfg` has
/// passed): the rules, calendars and campaigns, the lists, the certificates, the upstream's
/// address. Opens no socket and writes nothing (`callgate config check`).
pub fn check(cfg: &Config, now: chrono::DateTime<chrono::Utc>, list_files: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let mut note = |r: anyhow::Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{e:#}"));
        }
    };
    note(live_settings(cfg).map(|_| ()));
    note(load_certificates(cfg).map(|_| ()));
    note(resolve_upstream(cfg).map(|_| ()));
    errors.extend(crate::lists::check(&cfg.lists, now, list_files));
    errors
}

/// Build callgate from its configuration, then run it: the SIP thread and the admin thread.
pub fn start(cfg: Config, clock: SharedClock) -> anyhow::Result<Running> {
    let built = build(cfg, clock)?;
    run(built)
}

/// Everything opened and wired, nothing running yet.
struct Built {
    app: Arc<App>,
    /// The writer's batches, for the records index.
    index_feed: Option<Receiver<Batch>>,
    sockets: Sockets,
    sip_metrics: Arc<SipMetrics>,
    limits: crate::sip::transport::Limits,
    tls_sides: TlsSides,
    writer: AuditWriter,
    durable: watch::Receiver<u64>,
    upstream: SocketAddr,
}

/// The listening sockets, bound at build time so that a port in use stops the start.
struct Sockets {
    /// One per UDP worker (empty: no UDP).
    udp: Vec<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<std::net::TcpListener>,
    admin: std::net::TcpListener,
    /// The SIP address (UDP and TCP share the port).
    sip: SocketAddr,
    /// The TLS listener's address, with its port as bound.
    tls_addr: Option<SocketAddr>,
}

/// The writer hands what it commits to the records index (`records.index`), which then need
/// not read it back.
fn index_feed(cfg: &Config) -> (Option<FeedSender>, Option<Receiver<Batch>>) {
    match cfg.records.index {
        true => {
            let (tx, rx) = std::sync::mpsc::sync_channel(crate::audit::summary::FEED_BATCHES);
            (Some(tx), Some(rx))
        }
        false => (None, None),
    }
}

fn build(cfg: Config, clock: SharedClock) -> anyhow::Result<Built> {
    // Certificates first: a missing or broken file stops the start before anything is opened.
    let tls = load_certificates(&cfg)?;
    let metrics = Arc::new(Metrics::new());
    let sip_metrics = Arc::new(SipMetrics::register(&metrics.registry));
    let lists = Arc::new(ListStore::open(&cfg.lists, clock.clone())?);
    let before_forward = cfg.audit.durability == crate::config::Durability::BeforeForward;
    let flush = Duration::from_millis(cfg.audit.flush_interval_ms.max(1));
    let (feed, index_feed) = index_feed(&cfg);
    let (writer, audit) = AuditWriter::start(
        &cfg.audit.dir,
        cfg.audit.queue_capacity,
        flush,
        metrics.clone(),
        before_forward,
        cfg.records.compress,
        feed,
    )?;
    let durable = writer.durable();
    close_calls_left_open(&cfg, &audit, &clock)?;
    let (upstream, upstream_host) = resolve_upstream(&cfg)?;
    let (access, rules) = live_settings(&cfg)?;
    crate::app::warn_if_calendar_runs_out_soon(&rules.policy, clock.now());
    let state = Arc::new(open_policy_state(&cfg, &clock, flush)?);
    let sockets = bind_sockets(&cfg, &sip_metrics)?;
    let tls_addr = sockets.tls_addr;
    let tls_sides = tls_sides(&cfg, &tls, upstream, &upstream_host)?;
    let settings = proxy_settings(&cfg, sockets.sip, tls_addr, upstream, upstream_host);
    let shared = crate::shared::Shared::new(&cfg.shared, &instance_name(&cfg), &metrics.registry);
    let caps = shared_caps(shared.as_ref())?;
    let gate = Compliance::new(
        Parts {
            normalizer: Normalizer::new(&cfg.numbers.strip_prefixes, &cfg.numbers.service_codes),
            lists: lists.clone(),
            state: state.clone(),
            audit: audit.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            host: settings.advertise_host.clone(),
            before_forward,
            refuse_unrecorded: cfg.audit.on_write_error == crate::config::FailMode::Reject,
            caps,
        },
        rules,
    );
    let proxy = Arc::new(Proxy::new(
        settings,
        access,
        gate.clone(),
        sip_metrics.clone(),
    ));
    spawn_state_upkeep(state, clock.clone());
    let limits = transport_limits(&cfg);
    let app = Arc::new(App {
        cfg,
        proxy,
        gate,
        lists,
        metrics,
        audit,
        clock,
        tls,
        records_index: Arc::default(),
        shared,
    });
    app.refresh_metrics();
    app.log_list_health();
    Ok(Built {
        app,
        index_feed,
        sockets,
        sip_metrics,
        limits,
        tls_sides,
        writer,
        durable,
        upstream,
    })
}

/// With `[shared]`, the thread that counts frequency caps across instances.
fn shared_caps(
    shared: Option<&Arc<crate::shared::Shared>>,
) -> anyhow::Result<Option<Arc<dyn crate::policy::caps::CapCounter>>> {
    let Some(shared) = shared else {
        return Ok(None);
    };
    let counter = crate::shared::spawn_counter(shared.clone())
        .context("the thread that counts frequency caps")?;
    Ok(Some(counter))
}

/// What this instance is called in the cluster (`shared.instance_name`): by default its
/// host and admin port, which two instances never share.
fn instance_name(cfg: &Config) -> String {
    cfg.shared.instance_name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "callgate".into());
        format!("{host}:{}", cfg.admin.listen.port())
    })
}

/// Where following the shared database resumes (`shared.cursor_file`).
fn shared_cursor(cfg: &Config) -> std::path::PathBuf {
    cfg.shared.cursor_file.clone().unwrap_or_else(|| {
        let journal = &cfg.lists.optout_journal;
        journal.with_file_name("shared-cursor")
    })
}

fn transport_limits(cfg: &Config) -> crate::sip::transport::Limits {
    crate::sip::transport::Limits {
        max_message: cfg.sip.max_message_bytes,
        idle: Duration::from_secs(cfg.sip.tcp_idle_timeout_secs.max(1)),
        message_timeout: Duration::from_secs(cfg.sip.tcp_message_timeout_secs.max(1)),
        max_conns: cfg.sip.tcp_max_connections,
    }
}

/// A previous run killed mid-call left calls with a decision and no call record: they get
/// one now, before any new call.
fn close_calls_left_open(
    cfg: &Config,
    audit: &crate::audit::AuditSink,
    clock: &SharedClock,
) -> anyhow::Result<()> {
    let dir = &cfg.audit.dir;
    let longest = Duration::from_secs(cfg.calls.max_duration_secs);
    let n =
        crate::records::recover::close_orphans(dir, longest, audit, clock.now()).map_err(|e| {
            anyhow::anyhow!(
                "{}: cannot read the audit log for calls left open: {e}",
                dir.display()
            )
        })?;
    if n > 0 {
        tracing::warn!(
            calls = n,
            "calls the previous run left open are recorded as ended at this restart (disposition unknown)"
        );
    }
    Ok(())
}

fn run(b: Built) -> anyhow::Result<Running> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let sip_addr = b.sockets.sip;
    let tcp_addr = b.sockets.tcp.as_ref().map(|_| sip_addr);
    let tls_addr = b.sockets.tls_addr;
    let admin_addr = b.sockets.admin.local_addr()?;
    let (udp, tcp, tls) = (b.sockets.udp, b.sockets.tcp, b.sockets.tls);
    let (proxy, sip_metrics, limits, durable, tls_sides) = (
        b.app.proxy.clone(),
        b.sip_metrics,
        b.limits,
        b.durable,
        b.tls_sides,
    );
    let rx = shutdown_rx.clone();
    let mut udp = udp.into_iter();
    let (first, more): (_, Vec<_>) = (udp.next(), udp.collect());
    let sip_thread = spawn_runtime_thread("sip", async move {
        let joined = || -> std::io::Result<_> {
            let listen = |l: Option<std::net::TcpListener>| {
                l.map(tokio::net::TcpListener::from_std).transpose()
            };
            let udp = first.map(tokio::net::UdpSocket::from_std).transpose()?;
            Ok((udp.map(Arc::new), listen(tcp)?, listen(tls)?))
        };
        let (udp, tcp, tls) = match joined() {
            Ok(s) => s,
            Err(e) => return tracing::error!(error = %e, "SIP sockets could not join the runtime"),
        };
        let io = SipIo::new(udp, proxy, sip_metrics, limits, durable, tls_sides);
        let workers = spawn_udp_workers(&io, more, &rx);
        io.run(tcp, tls, rx).await;
        for w in workers {
            let _ = w.join();
        }
    })?;
    let (app, admin) = (b.app.clone(), b.sockets.admin);
    let admin_thread = spawn_runtime_thread("admin", http::serve(app, admin, shutdown_rx))?;
    let lists_cfg = &b.app.cfg.lists;
    if lists_cfg.watch {
        spawn_list_watch(&b.app, Duration::from_secs(lists_cfg.watch_interval_secs));
    }
    spawn_records_index(&b.app, b.index_feed);
    if let Some(shared) = &b.app.shared {
        let parts = crate::shared::Parts {
            lists: b.app.lists.clone(),
            state: b.app.gate.state.clone(),
            clock: b.app.clock.clone(),
            audit: b.app.audit.clone(),
            cursor: shared_cursor(&b.app.cfg),
        };
        crate::shared::spawn_follower(shared.clone(), parts)
            .context("the thread that follows the shared database")?;
        crate::shared::spawn_shipper(shared.clone(), b.app.cfg.audit.dir.clone())
            .context("the thread that ships records to the shared database")?;
        if b.app.cfg.shared.mirror_records {
            let parts = crate::shared::MirrorParts {
                dir: b.app.cfg.audit.dir.clone(),
                clock: b.app.clock.clone(),
                retention_days: b.app.cfg.records.retention_days,
            };
            crate::shared::spawn_mirror(shared.clone(), parts)
                .context("the thread that copies the other instances' records")?;
        }
    }
    tracing::info!(sip = %sip_addr, tls = ?tls_addr, admin = %admin_addr, upstream = %b.upstream, "callgate running");
    Ok(Running {
        app: b.app,
        sip_addr,
        tcp_addr,
        tls_addr,
        admin_addr,
        shutdown,
        sip_thread: Some(sip_thread),
        admin_thread: Some(admin_thread),
        audit: Some(b.writer),
    })
}

/// UDP workers 1.. (worker 0 is the SIP thread itself), each on its own thread and runtime
/// with its own socket. A worker that cannot start is logged and its socket closed: the
/// kernel then spreads the senders over the others.
fn spawn_udp_workers(
    io: &Arc<SipIo>,
    sockets: Vec<std::net::UdpSocket>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (io, rx, worker) = (io.clone(), shutdown.clone(), i + 1);
        let task = async move {
            match tokio::net::UdpSocket::from_std(sock) {
                Ok(s) => io.udp_loop(worker, Arc::new(s), rx).await,
                Err(e) => tracing::error!(worker, error = %e, "UDP worker could not start"),
            }
        };
        match spawn_runtime_thread(&format!("sip-{worker}"), task) {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(worker, error = %e, "UDP worker could not start"),
        }
    }
    threads
}

/// A named thread running `task` on its own current-thread runtime.
fn spawn_runtime_thread(
    name: &str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(|| format!("the {name} thread's runtime"))?;
    Ok(std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rt.block_on(task))?)
}

fn load_certificates(cfg: &Config) -> anyhow::Result<TlsSet> {
    Ok(TlsSet {
        sip: cfg
            .sip_tls_files()
            .map(ServerTls::load)
            .transpose()
            .context("the SIP listener's certificate (tls.cert, tls.key, tls.client_ca)")?,
        upstream: cfg
            .upstream_tls_files()
            .map(ClientTls::load)
            .transpose()
            .context("TLS toward the upstream (upstream.tls_ca, tls_cert, tls_key)")?,
        admin: cfg
            .admin_tls_files()
            .map(ServerTls::load)
            .transpose()
            .context("the admin API's certificate (admin.tls_cert, tls_key, client_ca)")?,
    })
}

fn open_policy_state(
    cfg: &Config,
    clock: &SharedClock,
    flush: Duration,
) -> anyhow::Result<PolicyState> {
    Ok(PolicyState {
        consent: ConsentStore::open(&cfg.lists.consent_journal)?,
        caps: CapStore::open(&cfg.lists.caps_journal, clock.now().timestamp(), flush)?,
        emergency: Emergency::open(&cfg.lists.emergency_file)?,
        abandonment: crate::policy::abandon::Abandonment::open_in(&cfg.audit.dir)?,
        currency: match cfg.shared.url {
            None => crate::policy::Currency::standalone(),
            Some(_) => crate::policy::Currency::shared(
                Duration::from_millis(cfg.shared.max_lag_ms),
                cfg.shared.on_stale,
            ),
        },
    })
}

fn bind_sockets(cfg: &Config, metrics: &SipMetrics) -> anyhow::Result<Sockets> {
    let (udp, tcp, sip) = bind_sip(cfg)?;
    for s in &udp {
        let granted = set_receive_buffer(s, cfg.sip.udp_receive_buffer_bytes);
        metrics.udp_receive_buffer.set(granted as i64);
    }
    let tls = cfg
        .tls
        .listen
        .map(|addr| listen_tcp(addr, "tls.listen"))
        .transpose()?;
    let admin = listen_tcp(cfg.admin.listen, "admin.listen")?;
    let tls_addr = tls.as_ref().map(|l| l.local_addr()).transpose()?;
    Ok(Sockets {
        udp,
        tcp,
        tls,
        admin,
        sip,
        tls_addr,
    })
}

/// UDP and TCP on one SIP port. With port 0 the kernel picks the UDP port, and the same TCP
/// port may already be taken by another socket: then pick again (a few times), rather than
/// fail a start that asked for any free port.
fn bind_sip(
    cfg: &Config,
) -> anyhow::Result<(
    Vec<std::net::UdpSocket>,
    Option<std::net::TcpListener>,
    SocketAddr,
)> {
    let listen = cfg.sip.listen;
    let mut attempts = if listen.port() == 0 { 8 } else { 1 };
    loop {
        attempts -= 1;
        // With port 0 the port picked can be taken before the workers' sockets bind it (see
        // `bind_udp`), or have its TCP side taken: pick another.
        let udp = match cfg.sip.udp {
            true => match bind_udp(listen, cfg.sip.workers) {
                Ok(u) => u,
                Err(_) if attempts > 0 => continue,
                Err(e) => return Err(e),
            },
            false => Vec::new(),
        };
        let port = udp
            .first()
            .map(|u| u.local_addr().map(|a| a.port()))
            .transpose()?
            .unwrap_or(listen.port());
        let sip = SocketAddr::new(listen.ip(), port);
        match cfg
            .sip
            .tcp
            .then(|| listen_tcp(sip, "sip.listen"))
            .transpose()
        {
            Ok(tcp) => return Ok((udp, tcp, sip)),
            Err(_) if attempts > 0 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// One UDP socket per worker on `listen`. Several share the port with SO_REUSEPORT; the kernel
/// then hashes each sender's address and port to one socket, so a peer's datagrams reach one
/// worker, in order.
fn bind_udp(listen: SocketAddr, workers: usize) -> anyhow::Result<Vec<std::net::UdpSocket>> {
    let bind = |addr: SocketAddr, share: bool| -> anyhow::Result<std::net::UdpSocket> {
        let context = || format!("sip.listen {addr}: cannot bind UDP");
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .with_context(context)?;
        s.set_reuse_port(share).with_context(context)?;
        s.bind(&addr.into()).with_context(context)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    if workers <= 1 {
        return Ok(vec![bind(listen, false)?]);
    }
    // A port shared with SO_REUSEPORT would also be shared with another process of the same
    // user that shares it (a second callgate started by mistake would take half the calls),
    // and port 0 may pick such a port. A socket that does not share proves the port free
    // (and picks it, for port 0); the workers' sockets take it as soon as it is closed. Two
    // callgates starting in that instant could still share it.
    let free = bind(listen, false)?.local_addr()?;
    (0..workers).map(|_| bind(free, true)).collect()
}

fn listen_tcp(addr: SocketAddr, key: &str) -> anyhow::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .with_context(|| format!("{key} {addr}: cannot bind TCP"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// TLS toward the dialers and the upstream, with the name the upstream's certificate must
/// carry (only a TLS upstream has one to check).
fn tls_sides(
    cfg: &Config,
    tls: &TlsSet,
    upstream: SocketAddr,
    upstream_host: &str,
) -> anyhow::Result<TlsSides> {
    let upstream_tls_name = match tls.upstream {
        Some(_) => {
            let name = cfg
                .upstream
                .tls_server_name
                .clone()
                .unwrap_or_else(|| upstream_host.to_string());
            let checked =
                rustls::pki_types::ServerName::try_from(name.clone()).with_context(|| {
                    format!("upstream.tls_server_name `{name}`: not a DNS name or IP address")
                })?;
            Some((upstream, checked))
        }
        None => None,
    };
    Ok(TlsSides {
        server: tls.sip.clone(),
        client: tls.upstream.clone(),
        upstream: upstream_tls_name,
        handshake_timeout: Duration::from_secs(cfg.tls.handshake_timeout_secs.max(1)),
    })
}

fn proxy_settings(
    cfg: &Config,
    bound: SocketAddr,
    tls_addr: Option<SocketAddr>,
    upstream: SocketAddr,
    upstream_host: String,
) -> ProxySettings {
    let (adv_host, adv_port) = advertise(cfg, bound, upstream);
    let mut local_hosts = vec![adv_host.to_ascii_lowercase()];
    let listen_ip = cfg.sip.listen.ip();
    if listen_ip.is_unspecified() || listen_ip.is_loopback() {
        local_hosts.extend(["127.0.0.1", "[::1]", "localhost"].map(String::from));
    }
    if !listen_ip.is_unspecified() {
        local_hosts.push(listen_ip.to_string());
    }
    ProxySettings {
        advertise_host: adv_host,
        advertise_port: adv_port,
        advertise_tls_port: tls_addr.map(|a| a.port()),
        local_hosts,
        upstream,
        upstream_host,
        upstream_transport: cfg.upstream.transport,
        record_route: cfg.sip.record_route,
        send_100: cfg.sip.send_100_trying,
        inbound_target: cfg.sip.inbound_target,
        tx_timeout: Duration::from_secs(cfg.sip.transaction_timeout_secs.max(1)),
        longest_call: Duration::from_secs(cfg.calls.max_duration_secs.max(1)),
        max_open_calls: cfg.calls.max_open,
        timer_c: Duration::from_secs(cfg.sip.timer_c_secs),
    }
}

impl Running {
    /// Stop SIP and admin, then drain and fsync the audit log.
    /// Graceful stop (SIGTERM): new INVITEs get 503 + Retry-After, forwarded INVITEs get up
    /// to `sip.drain_timeout_secs` for their final response, then the SIP and admin threads
    /// stop and the audit log is drained and fsynced.
    pub fn shutdown(mut self) {
        let proxy = &self.app.proxy;
        proxy.start_draining();
        let deadline = Instant::now() + Duration::from_secs(self.app.cfg.sip.drain_timeout_secs);
        let waiting = proxy.pending_invites();
        if waiting > 0 {
            tracing::info!(
                pending = waiting,
                "draining: waiting for forwarded INVITEs to be answered"
            );
        }
        while proxy.pending_invites() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = proxy.pending_invites();
        if left > 0 {
            tracing::warn!(
                pending = left,
                "drain timeout: stopping with INVITEs still unanswered"
            );
        }
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.sip_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.admin_thread.take() {
            let _ = t.join();
        }
        // No more SIP: the calls still open are recorded as ended by the stop.
        self.app.proxy.end_open_calls();
        if let Err(e) = self.app.gate.state.abandonment.save() {
            tracing::error!(error = %e, "cannot save the abandonment counts");
        }
        // No more decisions: write out the frequency-cap counts still queued.
        self.app.gate.state.caps.shutdown();
        if let Some(w) = self.audit.take() {
            w.shutdown();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
