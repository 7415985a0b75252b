//! `callgate records find|export|prune`: call records (TSR 310.5(a)(2)) in the audit log.

use super::select::{is_csv, Selection};
use super::{load_config, Common};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum RecordsCmd {
    /// Every call to a number (--number), one line each: when, how it ended, for how long,
    /// under which decision.
    Find(RecordsArgs),
    /// The call records that match, as CSV (one column per field; the book maps each TSR
    /// 310.5(a)(2) item to its column) or JSON lines, to standard output.
    Export(RecordsArgs),
    /// Build the records index of an audit directory anew from its log (compressed days
    /// included): `find` and `export` then answer from it instead of scanning.
    Reindex {
        /// The audit directory.
        dir: std::path::PathBuf,
    },
    /// Compare the records index of an audit directory with its log and say where they
    /// differ (as far as the index has read; days it has not started are named apart).
    CheckIndex {
        /// The audit directory.
        dir: std::path::PathBuf,
    },
    /// Everything the log holds about one number, for a complaint: every decision, call,
    /// opt-out and consent, each line's hash and whether the chain verifies through it.
    Dossier(DossierArgs),
    /// Place synthetic calls through callgate's own proxy, gate and audit writer (in process,
    /// no sockets, the clock moved along) into an empty audit directory: records for
    /// benchmarks. The configuration's lists and rules apply; its state files are kept in
    /// DIR/state.
    Generate {
        #[command(flatten)]
        common: Common,
        /// The audit directory to write (created; must hold no audit files).
        dir: std::path::PathBuf,
        #[arg(long)]
        calls: u64,
        /// Spread over this many days...
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// ...from this one (YYYY-MM-DD, UTC; default: `days` days before today).
        #[arg(long)]
        first_day: Option<chrono::NaiveDate>,
        /// Distinct called numbers.
        #[arg(long, default_value_t = 1_000_000)]
        numbers: u32,
        /// Every this many calls goes to a number on the sample national list (0: none).
        #[arg(long, default_value_t = 10)]
        blocked_every: u64,
    },
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
pub(crate) struct RecordsArgs {
    #[command(flatten)]
    sel: Selection,
    /// answered, busy, no_answer, cancelled, rejected, failed, transferred, abandoned, unknown.
    #[arg(long)]
    disposition: Option<String>,
    /// csv or json (export only).
    #[arg(long, default_value = "csv")]
    format: String,
    /// Read every line of the log even when the directory has a records index.
    #[arg(long)]
    scan: bool,
    /// The call records of every instance sharing this PostgreSQL database (`shared.url`),
    /// as they shipped them, in INVITE order, instead of one log (no audit files are named).
    #[arg(long, value_name = "URL")]
    shared: Option<String>,
}

/// `callgate records find|export`: call records from the records index when the audit
/// directory has one (brought up to the log first), else by a scan of the log.
#[derive(clap::Args)]
pub(crate) struct DossierArgs {
    #[command(flatten)]
    sel: Selection,
    /// Where to write it: HTML (to print or attach), or JSON when the name ends in `.json`.
    #[arg(long)]
    out: std::path::PathBuf,
}

pub(crate) fn main(cmd: RecordsCmd) -> anyhow::Result<()> {
    use callgate::records::export;
    let (find, args) = match cmd {
        RecordsCmd::Find(a) => (true, a),
        RecordsCmd::Export(a) => (false, a),
        RecordsCmd::Prune { common, dry_run } => return prune_cmd(&common, dry_run),
        RecordsCmd::Reindex { dir } => return reindex(&dir),
        RecordsCmd::CheckIndex { dir } => return check_index(&dir),
        RecordsCmd::Dossier(a) => return dossier(a),
        RecordsCmd::Generate {
            common,
            dir,
            calls,
            days,
            first_day,
            numbers,
            blocked_every,
        } => {
            let today = chrono::Utc::now().date_naive();
            let plan = callgate::server::Plan {
                calls,
                first_day: first_day.unwrap_or(today - chrono::Duration::days(i64::from(days))),
                days,
                numbers,
                blocked_every,
            };
            return generate(&common, &dir, &plan);
        }
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
    let dir = match &args.sel.paths[..] {
        [dir] if !args.scan && dir.join(callgate::records::index::FILE_NAME).is_file() => {
            Some(dir.clone())
        }
        _ => None,
    };
    let s = args.sel.read_with(args.shared.is_none())?;
    let filter = export::CallFilter {
        from: s.from,
        to: s.to,
        number: s.number,
        campaign: s.campaign,
        disposition,
    };
    if let Some(url) = &args.shared {
        return shared_export(url, &filter, find, csv);
    }
    let index = dir.as_deref().and_then(|d| up_to_date_index(d, &s.files));
    let source = match &index {
        Some(i) => export::Source::Index(i),
        None => export::Source::Scan,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = if find {
        export::calls(&s.files, &filter, &source, |c| {
            export::Form::Summary.write(&mut out, c)
        })?
    } else {
        export::export(&s.files, &filter, &source, csv, &mut out)?
    };
    std::io::Write::flush(&mut out)?;
    eprintln!("{n} calls");
    Ok(())
}

/// `records find|export --shared`: the cluster's call records from its database.
fn shared_export(
    url: &str,
    filter: &callgate::records::export::CallFilter,
    find: bool,
    csv: bool,
) -> anyhow::Result<()> {
    use callgate::records::export::Form;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let form = match (find, csv) {
        (true, _) => Form::Summary,
        (false, true) => Form::Csv,
        (false, false) => Form::Json,
    };
    let n = callgate::shared::ship::export(url, filter, form, &mut out)?;
    std::io::Write::flush(&mut out)?;
    eprintln!("{n} calls (every instance sharing the database)");
    Ok(())
}

/// The records index of `dir`, brought up to the log, and said to be in use; `None` (and why)
/// when it cannot be brought up to date (read-only for this user, damaged): an index behind
/// the log would answer from less than the log holds, so the log is read instead.
pub(super) fn up_to_date_index(
    dir: &std::path::Path,
    files: &[std::path::PathBuf],
) -> Option<callgate::records::index::Index> {
    use callgate::records::index::Index;
    match Index::open(dir).and_then(|mut i| i.catch_up(files).map(|done| (i, done))) {
        Ok((i, done)) => {
            eprintln!(
                "from the records index in {} (--scan reads the log instead)",
                dir.display()
            );
            for e in &done.failed {
                eprintln!("warning: {e}: the answer may miss records of this day");
            }
            Some(i)
        }
        Err(e) => {
            eprintln!("the records index cannot be used ({e}): reading the log instead");
            None
        }
    }
}

/// `callgate records reindex`: the index emptied and filled again in place (a running
/// callgate keeps its file), owned like the audit directory (run as root, it stays usable
/// by the callgate user).
fn reindex(dir: &std::path::Path) -> anyhow::Result<()> {
    use callgate::records::index::{Index, FILE_NAME};
    let files = callgate::audit::verify::expand(&[dir.to_path_buf()])?;
    anyhow::ensure!(!files.is_empty(), "{}: no audit files", dir.display());
    let path = dir.join(FILE_NAME);
    let mut index = match Index::open(dir) {
        Ok(i) => i,
        Err(e) => {
            // Not a database any more: nothing can be using it; start a new file.
            eprintln!("{e}: starting a new index");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            Index::open(dir)?
        }
    };
    let t = std::time::Instant::now();
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let done = index.rebuild(&files, |done, all| {
        if terminal {
            eprint!("\r{done}/{all} files");
        }
    })?;
    if terminal {
        eprintln!();
    }
    own_like_dir(dir)?;
    for e in &done.failed {
        eprintln!("warning: {e}: not indexed");
    }
    println!(
        "{} records indexed from {} files in {:.1} s: {}",
        done.added,
        files.len(),
        t.elapsed().as_secs_f64(),
        path.display()
    );
    anyhow::ensure!(
        done.failed.is_empty(),
        "{} files could not be read",
        done.failed.len()
    );
    Ok(())
}

/// The index's files owned by the audit directory's owner.
fn own_like_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(dir)?;
    for suffix in ["", "-wal", "-shm"] {
        let f = dir.join(format!("{}{suffix}", callgate::records::index::FILE_NAME));
        match std::fs::metadata(&f) {
            Ok(m) if (m.uid(), m.gid()) != (owner.uid(), owner.gid()) => {
                std::os::unix::fs::chown(&f, Some(owner.uid()), Some(owner.gid())).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: cannot give it to the directory's owner: {e}",
                        f.display()
                    )
                })?
            }
            _ => {}
        }
    }
    Ok(())
}

/// `callgate records check-index`: the differences, the first ones shown; fails when any.
fn check_index(dir: &std::path::Path) -> anyhow::Result<()> {
    let files = callgate::audit::verify::expand(&[dir.to_path_buf()])?;
    let checked = callgate::records::index::check(dir, &files)?;
    for d in &checked.first {
        let side = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
        println!("{}: index {} | log {}", d.pos, side(&d.index), side(&d.log));
    }
    for day in &checked.not_indexed_yet {
        println!("{day}: not indexed yet");
    }
    for e in &checked.unreadable {
        println!("unreadable: {e}");
    }
    anyhow::ensure!(
        checked.differences == 0,
        "{} of {} rows differ between the index and the log (the first {} above): run `callgate records reindex {}`",
        checked.differences,
        checked.rows,
        checked.first.len(),
        dir.display()
    );
    anyhow::ensure!(
        checked.unreadable.is_empty(),
        "some of the log could not be read"
    );
    println!(
        "the records index agrees with the log: {} rows",
        checked.rows
    );
    Ok(())
}

/// `callgate records dossier`: from the index when the directory has one, else from an index
/// built in memory by reading the whole log.
fn dossier(a: DossierArgs) -> anyhow::Result<()> {
    use callgate::records::{dossier, index::Index};
    anyhow::ensure!(
        a.sel.number.is_some(),
        "records dossier: --number is required"
    );
    let dir = match &a.sel.paths[..] {
        [dir] if dir.join(callgate::records::index::FILE_NAME).is_file() => Some(dir.clone()),
        _ => None,
    };
    let s = a.sel.read()?;
    let index = match dir.as_deref().and_then(|d| up_to_date_index(d, &s.files)) {
        Some(i) => i,
        None => {
            eprintln!("reading the whole log (no records index to answer from)");
            let mut i = Index::in_memory()?;
            let done = i.catch_up(&s.files)?;
            if let Some(e) = done.failed.first() {
                anyhow::bail!("{e}");
            }
            i
        }
    };
    let ask = dossier::Ask {
        number: s.number.unwrap_or_default(),
        from: s.from,
        to: s.to,
    };
    let d = dossier::build(&s.files, &index, &ask, super::clock_from_env()?.now())?;
    let body = match a.out.extension().is_some_and(|e| e == "json") {
        true => serde_json::to_string_pretty(&d)?,
        false => dossier::html(&d),
    };
    std::fs::write(&a.out, body)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", a.out.display()))?;
    let c = &d.counts;
    let chain = match (c.not_verified, c.days_not_verified) {
        (0, 0) => format!(
            "the hash chain verifies through every one and the {} day files of the period",
            c.days_walked
        ),
        (n, days) => format!(
            "{n} NOT VERIFIED by the hash chain; {days} of the {} day files of the period break",
            c.days_walked
        ),
    };
    eprintln!(
        "{}: {} records ({} decisions, {} calls, {} opt-outs, {} consent records); {chain}",
        a.out.display(),
        d.entries.len(),
        d.counts.decisions,
        d.counts.calls,
        d.counts.optouts,
        d.counts.consents,
    );
    Ok(())
}

/// `callgate records generate`: the configuration with its audit directory and state files
/// moved into `dir`.
fn generate(
    common: &Common,
    dir: &std::path::Path,
    plan: &callgate::server::Plan,
) -> anyhow::Result<()> {
    let mut cfg = load_config(common)?.cfg;
    let state = dir.join("state");
    std::fs::create_dir_all(&state)?;
    anyhow::ensure!(
        callgate::audit::chain::audit_files(dir)?.is_empty(),
        "{}: already holds audit files",
        dir.display()
    );
    cfg.audit.dir = dir.to_path_buf();
    cfg.lists.optout_journal = state.join("optouts.jsonl");
    cfg.lists.consent_journal = state.join("consent.jsonl");
    cfg.lists.caps_journal = state.join("caps.bin");
    cfg.lists.emergency_file = state.join("emergency.json");
    let t = std::time::Instant::now();
    let n = callgate::server::generate(cfg, plan)?;
    println!(
        "{n} calls from {} over {} days in {:.1} s: {}",
        plan.first_day,
        plan.days,
        t.elapsed().as_secs_f64(),
        dir.display()
    );
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
