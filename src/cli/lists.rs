//! `callgate lists compile|info|generate`: list snapshots, built and inspected offline.

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum ListsCmd {
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
        /// A full list file (one number per line, NPANXXXXXX or NPA,NXXXXXX), or the FTC's
        /// download as it arrives (a zip of per-area-code files); repeatable.
        #[arg(long)]
        full: Vec<PathBuf>,
        /// A change list (number, date, A/D per line), or a zip of them, applied in order;
        /// repeatable.
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

pub(crate) fn main(cmd: ListsCmd) -> anyhow::Result<()> {
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
