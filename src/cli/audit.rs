//! `callgate audit verify|export`: the hash chain and the decision records.

use super::select::{is_csv, Selection};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// Check the hash chain through the given files (or directories of audit-*.jsonl, oldest
    /// first); report the first bad record. Exit status 1 when the chain is broken.
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Write the records that match, as JSON lines (default) or CSV, to standard output.
    Export(ExportArgs),
}

#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    sel: Selection,
    /// allowed, blocked, would_block, emergency or inbound.
    #[arg(long)]
    verdict: Option<String>,
    /// json (one record per line, as logged) or csv.
    #[arg(long, default_value = "json")]
    format: String,
}

pub(crate) fn main(cmd: AuditCmd) -> anyhow::Result<u8> {
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
                    Ok(0)
                }
                Err(e) => {
                    println!("FAIL: {e}");
                    Ok(1)
                }
            }
        }
        AuditCmd::Export(args) => export_cmd(args).map(|()| 0),
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
