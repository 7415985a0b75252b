//! `callgate run`: start the proxy, then wait for signals (SIGHUP reloads, SIGTERM/SIGINT stop).

use super::systemd::{self, Notifier};
use super::{abort_on_panic, clock_from_env, init_logging, load_config, Common, Loaded};
use callgate::app::App;
use callgate::config::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Override sip.listen (UDP and TCP), e.g. 0.0.0.0:5060.
    #[arg(long)]
    sip_listen: Option<SocketAddr>,
    /// Override upstream.address (carrier or PBX), host:port.
    #[arg(long)]
    upstream: Option<String>,
    /// Override admin.listen (HTTP API and /metrics).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
}

pub(crate) fn main(args: RunArgs) -> anyhow::Result<()> {
    let Loaded {
        mut cfg,
        path,
        source,
    } = load_config(&args.common)?;
    if let Some(a) = args.sip_listen {
        cfg.sip.listen = a;
    }
    if let Some(u) = args.upstream {
        cfg.upstream.address = u;
    }
    if let Some(a) = args.admin_listen {
        cfg.admin.listen = a;
        if let Some(why) = cfg.admin_exposure_error() {
            anyhow::bail!("--admin-listen: {why}");
        }
    }
    init_logging(&cfg.log.level);
    abort_on_panic();
    tracing::info!("configuration: {source}");
    if path.is_none() {
        tracing::warn!(
            "running on the BUILT-IN DEFAULT configuration with SAMPLE lists: not for production"
        );
    }
    run(cfg, path)
}

/// Start, tell the service manager once the signals are handled too (a SIGHUP before then
/// would end the process), then serve signals and the watchdog until SIGTERM or SIGINT.
fn run(cfg: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let running = callgate::server::start(cfg, clock_from_env()?)?;
    let app = running.app.clone();
    let notifier = Notifier::from_env();
    let notify = |state: &str| notifier.iter().for_each(|n| n.send(state));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut watchdog = systemd::watchdog_every().map(tokio::time::interval);
        let (mut reloading, mut again) = (None, false);
        notify(&format!(
            "READY=1\nSTATUS=serving SIP on {}\nMAINPID={}",
            running.sip_addr,
            std::process::id()
        ));
        loop {
            tokio::select! {
                // The reload runs beside this loop, so the watchdog is still pinged while a
                // large list loads; a SIGHUP during a reload runs one more after it.
                _ = hup.recv() => match reloading {
                    Some(_) => again = true,
                    None => {
                        notify("RELOADING=1\nSTATUS=reloading");
                        reloading = Some(start_reload(&app, &config_path));
                    }
                },
                _ = finished(&mut reloading) => match std::mem::take(&mut again) {
                    true => reloading = Some(start_reload(&app, &config_path)),
                    false => notify(&format!("READY=1\nSTATUS=serving SIP on {}", running.sip_addr)),
                },
                _ = tick(&mut watchdog) => match app.sip_loop_stalled() {
                    None => notify("WATCHDOG=1"),
                    // No ping: systemd restarts callgate once WatchdogSec passes.
                    Some(why) => tracing::error!("not pinging the systemd watchdog: {why}"),
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        notify("STOPPING=1\nSTATUS=draining calls and the audit log");
        // A reload still running finishes first: its admin record goes into the audit log
        // before the log is closed.
        if let Some(r) = reloading {
            let _ = r.await;
        }
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down: draining the audit log");
    running.shutdown();
    Ok(())
}

fn start_reload(app: &Arc<App>, config_path: &Option<PathBuf>) -> JoinHandle<()> {
    let (app, path) = (app.clone(), config_path.clone());
    tokio::task::spawn_blocking(move || reload(&app, path.as_deref()))
}

/// The running reload has finished (then it is cleared); never, when none runs.
async fn finished(reloading: &mut Option<JoinHandle<()>>) {
    match reloading {
        Some(r) => {
            let _ = r.await;
            *reloading = None;
        }
        None => std::future::pending().await,
    }
}

/// The next watchdog ping is due; never, when there is no watchdog.
async fn tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// SIGHUP: re-read the configuration file, the lists and the certificates. An error keeps what
/// is running (and is logged and audited).
fn reload(app: &App, config_path: Option<&Path>) {
    match config_path {
        Some(p) => {
            tracing::info!(file = %p.display(), "SIGHUP: reloading the configuration, the lists and the TLS certificates");
            let _ = app.reload_config(p, "SIGHUP".into());
        }
        None => tracing::info!("SIGHUP: reloading the lists and the TLS certificates (the built-in default configuration has no file to re-read)"),
    }
    let _ = app.reload_files("SIGHUP".into());
    app.log_list_health();
}
