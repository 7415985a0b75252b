//! The command line: its definitions and each command's body, one file per command group.
//! `main.rs` parses and hands over to [`dispatch`].

mod admin;
mod audit;
mod check;
mod config;
mod docs;
mod lists;
mod records;
mod report;
mod run;
mod select;
mod systemd;

use callgate::config::{Config, EMBEDDED_DEFAULT};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "callgate",
    version,
    about = "A SIP proxy that blocks calls to Do-Not-Call numbers before they reach the carrier",
    long_about = "callgate sits between dialers and the carrier trunk (or a PBX). Every new outbound \
INVITE has its called number extracted and checked against the configured Do-Not-Call lists; \
allowed calls are forwarded untouched, blocked calls get a final response (603 Decline by default) \
with Reason and Warning headers, and every decision is written to the audit log.\n\n\
Without --config, config/callgate.toml in the working directory is read (the repository's, with \
SAMPLE lists in config/sample-data: run from the repository root); where there is none, a built-in \
copy of it. The log says which at start."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(clap::Args)]
pub(crate) struct Common {
    /// Configuration file (TOML). Default: config/callgate.toml in the working directory if
    /// there is one, else the built-in copy of it (sample lists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override lists.data_dir (where lists.toml and the list files are).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Run the proxy until SIGTERM/SIGINT. SIGHUP reloads the configuration file, the lists
    /// and the certificates.
    Run(run::RunArgs),
    /// Print what would happen right now to a call to NUMBER, from the same config and lists.
    /// Exits 0 when the call would be forwarded, 1 when it would be blocked, 2 on an error.
    Check(check::CheckArgs),
    /// Check the configuration as a start or a reload would read it.
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
    /// Build and inspect list snapshots (offline; a running callgate picks them up on reload).
    Lists {
        #[command(subcommand)]
        cmd: lists::ListsCmd,
    },
    /// Check and export the audit log.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCmd,
    },
    /// What the admin console needs: `hash-password` for a console user's configuration.
    Admin {
        #[command(subcommand)]
        cmd: admin::AdminCmd,
    },
    /// Find and export call records (TSR 310.5(a)(2)) in the audit log.
    Records {
        #[command(subcommand)]
        cmd: records::RecordsCmd,
    },
    /// Write the compliance report of a period (HTML to print or hand to an auditor, or JSON):
    /// decisions by verdict, blocks by reason, calls by disposition, abandonment per campaign,
    /// opt-outs and consent entered, and the list versions in service each day with their age.
    Report(report::ReportArgs),
    /// Print the shell completion script for SHELL (the Debian package installs bash, zsh and
    /// fish completions).
    Completions(docs::CompletionsArgs),
    /// Write the manual pages (roff), one per command, into a directory.
    Man(docs::ManArgs),
    /// What callgate exports to Prometheus.
    Metrics {
        #[command(subcommand)]
        cmd: docs::MetricsCmd,
    },
}

/// Runs the command; the exit status: 0 done (and for `check`: the call would be forwarded),
/// 1 a negative answer (`check`: the call would be blocked; `audit verify`: the chain is
/// broken; `config check`: errors), 2 an error (returned as `Err`).
pub(crate) fn dispatch(cmd: Cmd) -> anyhow::Result<u8> {
    match cmd {
        Cmd::Run(args) => run::main(args).map(|()| 0),
        Cmd::Check(args) => check::main(args),
        Cmd::Config { cmd } => config::main(cmd),
        Cmd::Lists { cmd } => lists::main(cmd).map(|()| 0),
        Cmd::Audit { cmd } => audit::main(cmd),
        Cmd::Records { cmd } => records::main(cmd).map(|()| 0),
        Cmd::Admin { cmd } => admin::main(cmd).map(|()| 0),
        Cmd::Report(args) => report::main(args).map(|()| 0),
        Cmd::Completions(args) => docs::completions(args).map(|()| 0),
        Cmd::Man(args) => docs::man(args).map(|()| 0),
        Cmd::Metrics { cmd } => docs::metrics(cmd).map(|()| 0),
    }
}

/// Where the configuration comes from: `--config`, else `config/callgate.toml` in the working
/// directory (so that editing the repository's file takes effect), else the built-in copy of
/// that file.
pub(crate) const WORKING_DIR_CONFIG: &str = "config/callgate.toml";

pub(crate) struct Loaded {
    cfg: Config,
    /// The file to re-read on SIGHUP; `None` for the built-in default.
    path: Option<PathBuf>,
    /// Said at start: which configuration is in use and why.
    source: String,
}

/// The configuration file a command reads: `--config`, else the working directory's, else
/// none (the built-in copy).
pub(crate) fn config_path(common: &Common) -> Option<PathBuf> {
    match &common.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(WORKING_DIR_CONFIG)).filter(|p| p.is_file()),
    }
}

pub(crate) fn load_config(common: &Common) -> anyhow::Result<Loaded> {
    let (path, source) = match &common.config {
        Some(p) => (Some(p.clone()), format!("{} (--config)", p.display())),
        None if std::path::Path::new(WORKING_DIR_CONFIG).is_file() => (
            Some(PathBuf::from(WORKING_DIR_CONFIG)),
            format!(
                "{WORKING_DIR_CONFIG} (found in the working directory; --config names another)"
            ),
        ),
        None => (
            None,
            format!("the built-in default (a copy of {WORKING_DIR_CONFIG}; no such file here)"),
        ),
    };
    let mut cfg = match &path {
        Some(p) => Config::from_file(p)?,
        None => {
            Config::from_str_named("<built-in default config/callgate.toml>", EMBEDDED_DEFAULT)?
        }
    };
    if let Some(d) = &common.data_dir {
        cfg.lists.data_dir = d.clone();
    }
    Ok(Loaded { cfg, path, source })
}

pub(crate) fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A panic anywhere in a running callgate ends the process (SIGABRT, a non-zero exit) rather
/// than leave a thread dead behind a process that still answers: a dead SIP thread would stop
/// every call while the rest looked alive. The supervisor (systemd's `Restart=on-failure`)
/// starts it again; what was acknowledged is on disk (the audit log is fsynced, opt-outs and
/// consent are journaled before they are acknowledged) and the calls left open are closed as
/// `unknown`/`restart` at the next start. Independently, `/healthz` fails when the SIP loop
/// stops turning for any other reason.
pub(crate) fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            panic = %info,
            "callgate panicked: exiting so that a supervisor restarts it"
        );
        std::process::abort();
    }));
}

/// The system clock, unless `CALLGATE_FAKE_NOW` (RFC 3339) sets where it starts: for tests
/// and drills that must not depend on the time of day (calling hours). Logged loudly.
pub(crate) fn clock_from_env() -> anyhow::Result<callgate::clock::SharedClock> {
    let Ok(v) = std::env::var("CALLGATE_FAKE_NOW") else {
        return Ok(callgate::clock::system());
    };
    let t = chrono::DateTime::parse_from_rfc3339(v.trim())
        .map_err(|e| anyhow::anyhow!("CALLGATE_FAKE_NOW `{v}`: {e}"))?
        .with_timezone(&chrono::Utc);
    let c = callgate::clock::OffsetClock::default();
    c.advance(t - chrono::Utc::now());
    tracing::warn!(start = %t, "clock set by CALLGATE_FAKE_NOW: for tests and drills only, decisions are NOT made at the real time");
    Ok(std::sync::Arc::new(c))
}
