//! The `callgate` binary: parse the command line, load the config, hand over to the library.

use anyhow::Context;
use callgate::config::{Config, EMBEDDED_DEFAULT};
use callgate::lists::ListStore;
use callgate::number::Normalizer;
use callgate::policy::Policy;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
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
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Common {
    /// Configuration file (TOML). Default: config/callgate.toml in the working directory if
    /// there is one, else the built-in copy of it (sample lists).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override lists.data_dir (where lists.toml and the list files are).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RunArgs {
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

#[derive(clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// The number as a dialer would send it (10 digits, +1..., 1-212-555-0143, 911...).
    number: String,
    /// When the call would be placed (RFC 3339, e.g. 2026-11-24T15:00:00Z); default now.
    #[arg(long)]
    at: Option<String>,
    /// Campaign id (default: the configured default campaign).
    #[arg(long)]
    campaign: Option<String>,
    /// Purpose and/or method, e.g. "marketing,autodialed" (as X-Callgate-Call-Type).
    #[arg(long)]
    call_type: Option<String>,
    /// Caller ID presented ("anonymous" to test the caller-ID rule).
    #[arg(long)]
    caller_id: Option<String>,
    /// Print every check evaluated, as JSON.
    #[arg(long)]
    explain: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy until SIGTERM/SIGINT. SIGHUP reloads the configuration file, the lists
    /// and the certificates.
    Run(RunArgs),
    /// Print what would happen right now to a call to NUMBER, from the same config and lists.
    /// Exits 0 when the call would be forwarded, 1 when it would be blocked, 2 on an error.
    Check(CheckArgs),
    /// Check the configuration as a start or a reload would read it.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Build and inspect list snapshots (offline; a running callgate picks them up on reload).
    Lists {
        #[command(subcommand)]
        cmd: ListsCmd,
    },
    /// Check and export the audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Find and export call records (TSR 310.5(a)(2)) in the audit log.
    Records {
        #[command(subcommand)]
        cmd: RecordsCmd,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the hash chain through the given files (or directories of audit-*.jsonl, oldest
    /// first); report the first bad record. Exit status 1 when the chain is broken.
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the records that match, as JSON lines (default) or CSV, to standard output.
    Export(ExportArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Read the configuration, the rules and calendars, the lists and the certificates exactly
    /// as a start or a reload would; print every error (file, line, key) and exit 1, or print
    /// what is in use and exit 0. Guards a reload: `callgate config check && kill -HUP ...`.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

/// The files to read and which of their records to keep (shared by the exports).
#[derive(clap::Args)]
struct Selection {
    /// Audit files, or directories of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// From this time on (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    from: Option<String>,
    /// Up to this time (exclusive), or through this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    to: Option<String>,
    /// Called number, in any form (+1 212 555 0143, 2125550143...).
    #[arg(long)]
    number: Option<String>,
    #[arg(long)]
    campaign: Option<String>,
}

/// A `Selection` read: files oldest first, times, the number in E.164.
struct Selected {
    files: Vec<PathBuf>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    number: Option<String>,
    campaign: Option<String>,
}

impl Selection {
    fn read(self) -> anyhow::Result<Selected> {
        let date = |s: Option<String>, what: &str| -> anyhow::Result<_> {
            s.map(|s| {
                callgate::lists::load::parse_date(&s).ok_or_else(|| {
                    anyhow::anyhow!("--{what} `{s}`: expected RFC 3339 or YYYY-MM-DD")
                })
            })
            .transpose()
        };
        let number = self
            .number
            .map(|n| {
                n.parse::<callgate::number::E164>()
                    .map(|e| e.to_string())
                    .map_err(|e| anyhow::anyhow!("--number `{n}`: {e}"))
            })
            .transpose()?;
        // A day given alone is taken whole: `--to 2026-12-01` includes that day.
        let day_only = self.to.as_deref().is_some_and(|t| t.trim().len() == 10);
        let to = date(self.to, "to")?.map(|t| match day_only {
            true => t + chrono::Duration::days(1),
            false => t,
        });
        Ok(Selected {
            files: callgate::audit::verify::expand(&self.paths)?,
            from: date(self.from, "from")?,
            to,
            number,
            campaign: self.campaign,
        })
    }
}

/// `json` or `csv`.
fn is_csv(format: &str) -> anyhow::Result<bool> {
    match format {
        "json" => Ok(false),
        "csv" => Ok(true),
        f => anyhow::bail!("--format `{f}`: expected json or csv"),
    }
}

#[derive(clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    sel: Selection,
    /// allowed, blocked, would_block, emergency or inbound.
    #[arg(long)]
    verdict: Option<String>,
    /// json (one record per line, as logged) or csv.
    #[arg(long, default_value = "json")]
    format: String,
}

#[derive(Subcommand)]
enum RecordsCmd {
    /// Every call to a number (--number), one line each: when, how it ended, for how long,
    /// under which decision.
    Find(RecordsArgs),
    /// The call records that match, as CSV (one column per field; the README maps each TSR
    /// 310.5(a)(2) item to its column) or JSON lines, to standard output.
    Export(RecordsArgs),
    /// Ask the running callgate (its admin API, from the configuration) to remove the audit
    /// files past records.retention_days; the removal is an admin record naming each file and
    /// its final hash. Prints what was (or, with --dry-run, would be) removed.
    Prune {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct RecordsArgs {
    #[command(flatten)]
    sel: Selection,
    /// answered, busy, no_answer, cancelled, rejected, failed, transferred, abandoned, unknown.
    #[arg(long)]
    disposition: Option<String>,
    /// csv or json (export only).
    #[arg(long, default_value = "csv")]
    format: String,
}

#[derive(Subcommand)]
enum ListsCmd {
    /// Compile FTC full lists and/or change lists (or a base snapshot plus change lists) into a
    /// snapshot file.
    Compile {
        /// List id, as in lists.toml (default: the base snapshot's).
        #[arg(long)]
        id: Option<String>,
        /// national, state, internal or custom (default: the base snapshot's).
        #[arg(long, value_parser = parse_kind)]
        kind: Option<callgate::lists::ListKind>,
        /// Two-letter state, for state lists.
        #[arg(long)]
        state: Option<String>,
        /// The date the source gives for its data (e.g. the FTC file date).
        #[arg(long)]
        source_date: Option<String>,
        /// Start from this snapshot (then apply --changes).
        #[arg(long)]
        base: Option<PathBuf>,
        /// A full list file (one number per line, NPANXXXXXX or NPA,NXXXXXX); repeatable.
        #[arg(long)]
        full: Vec<PathBuf>,
        /// A change list (number, date, A/D per line), applied in order; repeatable.
        #[arg(long)]
        changes: Vec<PathBuf>,
        /// The snapshot to write (atomically).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print a snapshot's metadata after verifying it.
    Info { snapshot: PathBuf },
    /// Write a synthetic registry (deterministic for a seed) in FTC flat format, for tests and
    /// benchmarks. Never real data.
    Generate {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, short)]
        out: PathBuf,
        /// Write `NPA,NXXXXXX` lines instead of `NPANXXXXXX`.
        #[arg(long)]
        comma: bool,
        /// Also write a change list of this many lines...
        #[arg(long, default_value_t = 0)]
        changes: u64,
        /// ...to this file...
        #[arg(long)]
        changes_out: Option<PathBuf>,
        /// ...and the full list it leads to, to this file.
        #[arg(long)]
        new_full_out: Option<PathBuf>,
        /// Date written in change lines (default: today, UTC).
        #[arg(long)]
        date: Option<String>,
    },
}

fn parse_kind(s: &str) -> Result<callgate::lists::ListKind, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("`{s}`: expected national, state, internal or custom"))
}

/// Where the configuration comes from: `--config`, else `config/callgate.toml` in the working
/// directory (so that editing the repository's file takes effect), else the built-in copy of
/// that file.
const WORKING_DIR_CONFIG: &str = "config/callgate.toml";

struct Loaded {
    cfg: Config,
    /// The file to re-read on SIGHUP; `None` for the built-in default.
    path: Option<PathBuf>,
    /// Said at start: which configuration is in use and why.
    source: String,
}

fn load_config(common: &Common) -> anyhow::Result<Loaded> {
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

fn init_logging(level: &str) {
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
fn abort_on_panic() {
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

/// Exit statuses: 0 done (and for `check`: the call would be forwarded), 1 a negative answer
/// (`check`: the call would be blocked; `audit verify`: the chain is broken), 2 an error.
fn main() -> std::process::ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Run(args) => run_cmd(args).map(|()| 0),
        Cmd::Check(args) => check_cmd(args),
        Cmd::Config {
            cmd: ConfigCmd::Check { common },
        } => config_check(&common),
        Cmd::Lists { cmd } => lists_cmd(cmd).map(|()| 0),
        Cmd::Audit { cmd } => audit_cmd(cmd).map(|()| 0),
        Cmd::Records { cmd } => records_cmd(cmd).map(|()| 0),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run_cmd(args: RunArgs) -> anyhow::Result<()> {
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

/// `callgate config check`: 0 when a start would succeed, 1 with every error printed.
fn config_check(common: &Common) -> anyhow::Result<u8> {
    let loaded = match load_config(common) {
        Ok(l) => l,
        Err(e) => {
            println!("{e:#}");
            return Ok(1);
        }
    };
    let errors = callgate::server::check(&loaded.cfg, clock_from_env()?.now());
    for e in &errors {
        println!("{e}");
    }
    match errors.len() {
        0 => {
            println!("OK: {}", loaded.source);
            Ok(0)
        }
        n => {
            println!("{n} error(s) in {}", loaded.source);
            Ok(1)
        }
    }
}

/// Prints the decision; returns the exit status: 0 forwarded, 1 blocked.
fn check_cmd(args: CheckArgs) -> anyhow::Result<u8> {
    let cfg = load_config(&args.common)?.cfg;
    init_logging("warn");
    let clock = clock_from_env()?;
    let lists = ListStore::open(&cfg.lists, clock.clone()).context("loading lists")?;
    let policy = Policy::new(&cfg)?;
    let normalizer = Normalizer::new(&cfg.numbers.strip_prefixes, &cfg.numbers.service_codes);
    // Read-only views of the daemon's records (a copy is never written here).
    let state = callgate::policy::PolicyState {
        consent: callgate::policy::consent::ConsentStore::open_read_only(
            &cfg.lists.consent_journal,
        )?,
        caps: callgate::policy::caps::CapStore::in_memory(),
        emergency: callgate::policy::emergency::Emergency::open(&cfg.lists.emergency_file)?,
        abandonment: callgate::policy::abandon::Abandonment::open_in(&cfg.audit.dir)?,
    };
    let req = callgate::policy::CheckRequest {
        number: args.number.clone(),
        at: args.at,
        campaign: args.campaign,
        call_type: args.call_type,
        caller_id: args.caller_id,
    };
    let now = clock.now();
    let d = callgate::policy::check_number(&normalizer, &policy, &lists, &state, &req, now)
        .map_err(anyhow::Error::msg)?;
    if args.explain {
        let v = serde_json::json!({
            "verdict": d.verdict.as_str(),
            "reasons": d.reasons,
            "context": callgate::policy::explain::context(&d),
            "checks": callgate::policy::explain::checks(&d),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_check(&args.number, &d, &lists, now);
    }
    Ok(if d.verdict.forwards() { 0 } else { 1 })
}

/// The human summary of `callgate check`.
fn print_check(
    number: &str,
    d: &callgate::policy::Decision,
    lists: &ListStore,
    now: chrono::DateTime<chrono::Utc>,
) {
    let reasons: Vec<String> = d
        .reasons
        .iter()
        .map(|r| format!("{} ({})", r.code(), r.text()))
        .collect();
    println!("number:   {number}");
    match (&d.called, d.number()) {
        (_, Some(n)) => println!("e164:     {n}"),
        (Err(e), None) => println!("e164:     - ({e})"),
        (Ok(_), None) => println!("e164:     - (service code)"),
    }
    let fail_open = if d.fail_open { " (fail-open)" } else { "" };
    println!("verdict:  {}{fail_open}", d.verdict.as_str());
    match reasons.is_empty() {
        true => println!("reasons:  none"),
        false => println!("reasons:  {}", reasons.join(", ")),
    }
    for (i, l) in d.lists.lists.iter().enumerate() {
        let hit = if d.list_hits & (1 << i) != 0 {
            "HIT "
        } else {
            "    "
        };
        let age = l
            .meta
            .age(now)
            .map(|a| format!("{}d old", a.num_days()))
            .unwrap_or_default();
        let sample = if l.meta.sample { " SAMPLE DATA" } else { "" };
        println!(
            "list:     {hit}{} ({:?}, {} entries, {}, {age}{sample})",
            l.meta.id,
            l.meta.kind,
            l.meta.entries,
            l.meta.version()
        );
    }
    for u in &d.lists.unavailable {
        println!("list:     UNAVAILABLE {} ({})", u.id, u.error);
    }
    let optouts = &lists.optouts;
    println!("optouts:  {} (seq {})", optouts.len(), optouts.seq());
    println!("context:  {}", callgate::policy::explain::context(d));
    println!("(--explain prints every check evaluated)");
}

fn lists_cmd(cmd: ListsCmd) -> anyhow::Result<()> {
    use callgate::lists::tools;
    let report = match cmd {
        ListsCmd::Compile {
            id,
            kind,
            state,
            source_date,
            base,
            full,
            changes,
            out,
        } => tools::compile_to(
            &callgate::lists::compile::CompileSpec {
                id,
                kind,
                state,
                source_date,
                base,
                full,
                changes,
            },
            &out,
        )?,
        ListsCmd::Info { snapshot } => tools::info(&snapshot)?,
        ListsCmd::Generate {
            count,
            seed,
            out,
            comma,
            changes,
            changes_out,
            new_full_out,
            date,
        } => tools::generate(&tools::GenerateArgs {
            count,
            seed,
            out: &out,
            comma,
            changes,
            changes_out: changes_out.as_deref(),
            new_full_out: new_full_out.as_deref(),
            date: date.unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d").to_string()),
        })?,
    };
    print!("{report}");
    Ok(())
}

fn audit_cmd(cmd: AuditCmd) -> anyhow::Result<()> {
    use callgate::audit::verify;
    match cmd {
        AuditCmd::Verify { paths } => {
            let files = verify::expand(&paths)?;
            anyhow::ensure!(!files.is_empty(), "no audit files found in the given paths");
            match verify::verify(&files) {
                Ok(v) => {
                    println!(
                        "OK: {} records in {} files ({} sealed); chain {} and ends at {}{}",
                        v.records,
                        v.files,
                        v.seals,
                        if v.starts_from == callgate::audit::chain::GENESIS {
                            "starts at genesis".to_string()
                        } else {
                            format!("continues from {}", &v.starts_from[..16])
                        },
                        &v.head[..16],
                        if v.torn_tail {
                            "; the newest file ends in a torn record (a crash mid-write, cut at the next start)"
                        } else {
                            ""
                        }
                    );
                    Ok(())
                }
                Err(e) => {
                    println!("FAIL: {e}");
                    std::process::exit(1);
                }
            }
        }
        AuditCmd::Export(args) => export_cmd(args),
    }
}

/// `callgate audit export`: the records the filters keep, as JSON lines or CSV.
fn export_cmd(args: ExportArgs) -> anyhow::Result<()> {
    use callgate::audit::verify;
    let csv = is_csv(&args.format)?;
    let verdict = args
        .verdict
        .map(|v| {
            callgate::call::Verdict::parse(&v).ok_or_else(|| {
                anyhow::anyhow!(
                    "--verdict `{v}`: expected allowed, blocked, would_block, emergency or inbound"
                )
            })
        })
        .transpose()?;
    let s = args.sel.read()?;
    let filter = verify::Filter {
        from: s.from,
        to: s.to,
        number: s.number,
        campaign: s.campaign,
        verdict,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = verify::export(&s.files, &filter, csv, &mut out)?;
    std::io::Write::flush(&mut out)?;
    eprintln!("{n} records exported");
    Ok(())
}

/// `callgate records find|export`: call records by a scan of the log.
fn records_cmd(cmd: RecordsCmd) -> anyhow::Result<()> {
    use callgate::records::export;
    let (find, args) = match cmd {
        RecordsCmd::Find(a) => (true, a),
        RecordsCmd::Export(a) => (false, a),
        RecordsCmd::Prune { common, dry_run } => return prune_cmd(&common, dry_run),
    };
    anyhow::ensure!(
        !find || args.sel.number.is_some(),
        "records find: --number is required (export takes any selection)"
    );
    let csv = is_csv(&args.format)?;
    let disposition = args
        .disposition
        .map(|d| {
            callgate::records::Disposition::parse(&d).ok_or_else(|| {
                let all = callgate::records::Disposition::ALL.map(|d| d.as_str());
                anyhow::anyhow!("--disposition `{d}`: expected one of {}", all.join(", "))
            })
        })
        .transpose()?;
    let s = args.sel.read()?;
    let filter = export::CallFilter {
        from: s.from,
        to: s.to,
        number: s.number,
        campaign: s.campaign,
        disposition,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = if find {
        export::scan(&s.files, &filter, |c| {
            use std::io::Write;
            writeln!(out, "{}", export::summary(c))
        })?
    } else {
        export::export(&s.files, &filter, csv, &mut out)?
    };
    std::io::Write::flush(&mut out)?;
    eprintln!("{n} calls");
    Ok(())
}

/// `callgate records prune`: one request to the running instance's admin API (the prune must
/// be written into the chain by the writer that owns it).
fn prune_cmd(common: &Common, dry_run: bool) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let cfg = load_config(common)?.cfg;
    anyhow::ensure!(
        cfg.admin.tls_cert.is_none(),
        "the admin API is HTTPS here: POST https://{}/v1/records/prune with curl and your certificate",
        cfg.admin.listen
    );
    let mut addr = cfg.admin.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let body = format!("{{\"dry_run\":{dry_run}}}");
    let auth = cfg
        .admin_token()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut s = std::net::TcpStream::connect(addr)
        .map_err(|e| anyhow::anyhow!("{addr}: cannot reach callgate's admin API: {e}"))?;
    write!(
        s,
        "POST /v1/records/prune HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    println!("{json}");
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "{}",
        head.lines().next().unwrap_or("")
    );
    Ok(())
}

fn run(cfg: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let running = callgate::server::start(cfg, clock_from_env()?)?;
    let app = running.app.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    match &config_path {
                        Some(p) => tracing::info!(file = %p.display(), "SIGHUP: reloading the configuration, the lists and the TLS certificates"),
                        None => tracing::info!("SIGHUP: reloading the lists and the TLS certificates (the built-in default configuration has no file to re-read)"),
                    }
                    let (a, path) = (app.clone(), config_path.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        // An error keeps the running configuration (and is logged and audited).
                        if let Some(p) = &path {
                            let _ = a.reload_config(p, "SIGHUP".into());
                        }
                        let _ = a.reload_files("SIGHUP".into());
                        a.log_list_health();
                    })
                    .await;
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down: draining the audit log");
    running.shutdown();
    Ok(())
}

/// The system clock, unless `CALLGATE_FAKE_NOW` (RFC 3339) sets where it starts: for tests
/// and drills that must not depend on the time of day (calling hours). Logged loudly.
fn clock_from_env() -> anyhow::Result<callgate::clock::SharedClock> {
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
