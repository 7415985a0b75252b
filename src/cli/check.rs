//! `callgate check NUMBER`: what would happen to a call right now, from the same config and lists.

use super::{clock_from_env, init_logging, load_config, Common};
use anyhow::Context;
use callgate::lists::ListStore;
use callgate::number::Normalizer;
use callgate::policy::Policy;

#[derive(clap::Args)]
pub(crate) struct CheckArgs {
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

/// Prints the decision; returns the exit status: 0 forwarded, 1 blocked.
pub(crate) fn main(args: CheckArgs) -> anyhow::Result<u8> {
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
        // This instance's copy of the shared state, as it last saw it.
        currency: callgate::policy::Currency::standalone(),
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
