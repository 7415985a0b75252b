//! Start and stop a whole callgate: lists, audit writer, SIP thread, admin thread.
//!
//! The SIP side runs on its own thread with a current-thread tokio runtime: measured here, a
//! multi-threaded runtime's work-stealing wake-ups cost about twice the CPU per call, and one
//! loop that handles each message to completion keeps a call's messages in order.

use crate::admin::http;
use crate::admin::metrics::Metrics;
use crate::audit::{AuditSink, AuditWriter};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::lists::ListStore;
use crate::policy::caps::CapStore;
use crate::policy::consent::ConsentStore;
use crate::policy::emergency::Emergency;
use crate::policy::normalize::Normalizer;
use crate::policy::{Policy, PolicyState};
use crate::sip::proxy::{Proxy, ProxySettings};
use crate::sip::transport::Transport;
use anyhow::{anyhow, Context};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Shared by the SIP thread and the admin API.
pub struct App {
    pub cfg: Config,
    pub proxy: Arc<Proxy>,
    pub lists: Arc<ListStore>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
    pub clock: SharedClock,
    /// Certificates in service, re-read by `reload_tls`.
    pub tls: crate::tls::TlsSet,
}

impl App {
    /// An admin change (who did what) into the audit chain, stamped now.
    pub fn record_admin(&self, action: &'static str, who: String, detail: serde_json::Value) {
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
            Ok((new, live)) => {
                self.proxy.set_live(live.clone());
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
    pub fn refresh_metrics(&self) {
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
        m.prefilter_memory.set(lists.prefilter_bytes() as i64);
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
            }
        }
        for u in &lists.unavailable {
            m.list_unavailable
                .with_label_values(&[u.id.0.as_ref()])
                .set(1);
        }
        let (fresh, _, _) = self.proxy.live().policy.national_status(&lists, now);
        m.national_fresh.set(fresh as i64);
        for l in &lists.lists {
            m.list_fresh
                .with_label_values(&[l.meta.id.0.as_ref()])
                .set(self.proxy.live().policy.list_fresh(l, now) as i64);
        }
        m.optouts_entries.set(self.lists.optouts.len() as i64);
    }

    /// Log once, loudly, when marketing calls will fail closed (or open) because of the lists.
    pub fn log_list_health(&self) {
        let lists = self.lists.current();
        let live = self.proxy.live();
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
        let live = self.proxy.live();
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

/// The settings a reload swaps in (see `Proxy::set_live`), also the initial ones.
fn live_settings(cfg: &Config) -> anyhow::Result<crate::sip::proxy::Live> {
    Ok(crate::sip::proxy::Live {
        dialers: cfg.dialers.allow.clone(),
        upstream_sources: cfg.upstream.sources.clone(),
        max_calls_per_second: cfg.dialers.max_calls_per_second,
        burst: cfg.dialers.burst,
        drain_retry_after_secs: cfg.sip.drain_retry_after_secs,
        reject: cfg.reject.clone(),
        policy: Arc::new(Policy::new(cfg)?),
        tls_dialer_names: cfg
            .tls
            .dialer_names
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .collect(),
    })
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
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
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

/// Drops expired frequency-cap counters once a minute (memory stays bounded).
fn spawn_cap_sweeper(state: Arc<PolicyState>, clock: SharedClock) {
    let weak = Arc::downgrade(&state);
    drop(state);
    let _ = std::thread::Builder::new()
        .name("cap-sweeper".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(60));
            let Some(s) = weak.upgrade() else { return };
            let n = s.caps.sweep(clock.now().timestamp());
            if n > 0 {
                tracing::debug!(
                    expired = n,
                    keys = s.caps.len(),
                    "frequency-cap counters swept"
                );
            }
        });
}

pub fn start(cfg: Config, clock: SharedClock) -> anyhow::Result<Running> {
    // Certificates first: a missing or broken file stops the start before anything is opened.
    let tls = crate::tls::TlsSet {
        sip: cfg
            .sip_tls_files()
            .map(crate::tls::ServerTls::load)
            .transpose()
            .context("the SIP listener's certificate (tls.cert, tls.key, tls.client_ca)")?,
        upstream: cfg
            .upstream_tls_files()
            .map(crate::tls::ClientTls::load)
            .transpose()
            .context("TLS toward the upstream (upstream.tls_ca, tls_cert, tls_key)")?,
        admin: cfg
            .admin_tls_files()
            .map(crate::tls::ServerTls::load)
            .transpose()
            .context("the admin API's certificate (admin.tls_cert, tls_key, client_ca)")?,
    };
    let metrics = Arc::new(Metrics::new());
    let lists = Arc::new(ListStore::open(&cfg.lists, clock.clone())?);
    let before_forward = cfg.audit.durability == crate::config::Durability::BeforeForward;
    let (writer, sink) = AuditWriter::start(
        &cfg.audit.dir,
        cfg.audit.queue_capacity,
        Duration::from_millis(cfg.audit.flush_interval_ms.max(1)),
        metrics.clone(),
        before_forward,
    )?;
    let durable = writer.durable();
    let (upstream, upstream_host) = resolve_upstream(&cfg)?;
    let live = live_settings(&cfg)?;
    let state = Arc::new(PolicyState {
        consent: ConsentStore::open(&cfg.lists.consent_journal)?,
        caps: CapStore::open(
            &cfg.lists.caps_journal,
            clock.now().timestamp(),
            Duration::from_millis(cfg.audit.flush_interval_ms.max(1)),
        )?,
        emergency: Emergency::open(&cfg.lists.emergency_file)?,
    });

    let udp = if cfg.sip.udp {
        let s = std::net::UdpSocket::bind(cfg.sip.listen)
            .with_context(|| format!("sip.listen {}: cannot bind UDP", cfg.sip.listen))?;
        s.set_nonblocking(true)?;
        let granted = set_receive_buffer(&s, cfg.sip.udp_receive_buffer_bytes);
        metrics.udp_receive_buffer.set(granted as i64);
        Some(s)
    } else {
        None
    };
    let port = udp
        .as_ref()
        .map(|u| u.local_addr().map(|a| a.port()))
        .transpose()?
        .unwrap_or(cfg.sip.listen.port());
    let tcp = if cfg.sip.tcp {
        let addr = SocketAddr::new(cfg.sip.listen.ip(), port);
        let l = std::net::TcpListener::bind(addr)
            .with_context(|| format!("sip.listen {addr}: cannot bind TCP"))?;
        l.set_nonblocking(true)?;
        Some(l)
    } else {
        None
    };
    let tls_listener = match cfg.tls.listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr)
                .with_context(|| format!("tls.listen {addr}: cannot bind"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };
    let tls_addr = tls_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    // The name the upstream's certificate must carry; only a TLS upstream has one to check.
    let upstream_tls_name = match tls.upstream {
        Some(_) => {
            let name = cfg
                .upstream
                .tls_server_name
                .clone()
                .unwrap_or_else(|| upstream_host.clone());
            let checked =
                rustls::pki_types::ServerName::try_from(name.clone()).with_context(|| {
                    format!("upstream.tls_server_name `{name}`: not a DNS name or IP address")
                })?;
            Some((upstream, checked))
        }
        None => None,
    };
    let tls_sides = crate::sip::transport::TlsSides {
        server: tls.sip.clone(),
        client: tls.upstream.clone(),
        upstream: upstream_tls_name,
        handshake_timeout: Duration::from_secs(cfg.tls.handshake_timeout_secs.max(1)),
    };
    let bound = SocketAddr::new(cfg.sip.listen.ip(), port);
    let (adv_host, adv_port) = advertise(&cfg, bound, upstream);
    let mut local_hosts = vec![adv_host.to_ascii_lowercase()];
    let listen_ip = cfg.sip.listen.ip();
    if listen_ip.is_unspecified() || listen_ip.is_loopback() {
        local_hosts.extend(["127.0.0.1", "[::1]", "localhost"].map(String::from));
    }
    if !listen_ip.is_unspecified() {
        local_hosts.push(listen_ip.to_string());
    }
    let settings = ProxySettings {
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
        before_forward,
    };
    let proxy = Arc::new(Proxy::new(
        settings,
        Normalizer::new(&cfg.numbers.strip_prefixes, &cfg.numbers.service_codes),
        live,
        lists.clone(),
        sink.clone(),
        metrics.clone(),
        clock.clone(),
        state.clone(),
    ));
    spawn_cap_sweeper(state.clone(), clock.clone());
    let app = Arc::new(App {
        cfg: cfg.clone(),
        proxy: proxy.clone(),
        lists,
        metrics: metrics.clone(),
        audit: sink,
        clock,
        tls,
    });
    app.refresh_metrics();
    app.log_list_health();

    let (shutdown, shutdown_rx) = watch::channel(false);
    let sip_addr = bound;
    let tcp_addr = tcp.as_ref().map(|_| bound);
    let limits = crate::sip::transport::Limits {
        max_message: cfg.sip.max_message_bytes,
        idle: Duration::from_secs(cfg.sip.tcp_idle_timeout_secs.max(1)),
        message_timeout: Duration::from_secs(cfg.sip.tcp_message_timeout_secs.max(1)),
        max_conns: cfg.sip.tcp_max_connections,
    };
    let rx = shutdown_rx.clone();
    let sip_thread = std::thread::Builder::new()
        .name("sip".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let udp = udp.map(|u| Arc::new(tokio::net::UdpSocket::from_std(u).expect("udp")));
                let tcp = tcp.map(|l| tokio::net::TcpListener::from_std(l).expect("tcp"));
                let tls = tls_listener.map(|l| tokio::net::TcpListener::from_std(l).expect("tls"));
                let t = Transport::new(udp, proxy, metrics, limits, durable, tls_sides);
                t.run(tcp, tls, rx).await;
            });
        })?;

    let admin_listener = std::net::TcpListener::bind(cfg.admin.listen)
        .with_context(|| format!("admin.listen {}: cannot bind", cfg.admin.listen))?;
    admin_listener.set_nonblocking(true)?;
    let admin_addr = admin_listener.local_addr()?;
    let app2 = app.clone();
    let rx = shutdown_rx;
    let admin_thread = std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(http::serve(app2, admin_listener, rx));
        })?;

    tracing::info!(sip = %sip_addr, tls = ?tls_addr, admin = %admin_addr, upstream = %upstream, "callgate running");
    Ok(Running {
        app,
        sip_addr,
        tcp_addr,
        tls_addr,
        admin_addr,
        shutdown,
        sip_thread: Some(sip_thread),
        admin_thread: Some(admin_thread),
        audit: Some(writer),
    })
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
        // No more decisions: write out the frequency-cap counts still queued.
        self.app.proxy.state.caps.shutdown();
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
