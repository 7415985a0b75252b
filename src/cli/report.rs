//! `callgate report`: the compliance report of a period, from the records (HTML to print or
//! hand to an auditor, or JSON).

use super::{load_config, Common};
use anyhow::Context;
use callgate::records::index::Index;
use callgate::records::report;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    common: Common,
    /// From this day or time (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long)]
    from: String,
    /// Through this day (YYYY-MM-DD), or up to this time (RFC 3339), UTC.
    #[arg(long)]
    to: String,
    /// One campaign only.
    #[arg(long)]
    campaign: Option<String>,
    /// The audit directory (default: the configuration's audit.dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write it: HTML, or JSON when the name ends in `.json`.
    #[arg(long)]
    out: PathBuf,
}

fn time(s: &str, what: &str, to: bool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    callgate::records::period_bound(s, to)
        .ok_or_else(|| anyhow::anyhow!("--{what} `{s}`: expected YYYY-MM-DD or RFC 3339"))
}

pub(crate) fn main(a: ReportArgs) -> anyhow::Result<()> {
    let loaded = load_config(&a.common)?;
    let cfg = &loaded.cfg;
    let (from, to) = (time(&a.from, "from", false)?, time(&a.to, "to", true)?);
    anyhow::ensure!(from < to, "--from {} is not before --to {}", a.from, a.to);
    let dir = a.dir.clone().unwrap_or_else(|| cfg.audit.dir.clone());
    let files = callgate::audit::chain::audit_files(&dir)
        .with_context(|| format!("{}: cannot list the audit files", dir.display()))?;
    let index = match super::records::up_to_date_index(&dir, &files) {
        Some(i) => i,
        None => {
            eprintln!("reading the whole log (no records index to answer from)");
            let mut i = Index::in_memory()?;
            if let Some(e) = i.catch_up(&files)?.failed.first() {
                anyhow::bail!("{e}");
            }
            i
        }
    };
    let ask = report::Ask {
        from,
        to,
        campaign: a.campaign.clone(),
        national_max_age_days: cfg.policy.national_max_age_days,
    };
    let r = report::build(&files, &index, &ask, super::clock_from_env()?.now())?;
    let body = match a.out.extension().is_some_and(|e| e == "json") {
        true => serde_json::to_string_pretty(&r)?,
        false => report::html(&r),
    };
    std::fs::write(&a.out, body)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", a.out.display()))?;
    let decisions: u64 = r.decisions.values().sum();
    eprintln!(
        "{}: {decisions} decisions, {} call records, {} opt-outs received; {} day(s) with a stale national list",
        a.out.display(),
        r.calls.values().sum::<u64>(),
        r.optouts_received,
        r.stale_days.len()
    );
    Ok(())
}
