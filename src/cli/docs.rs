//! `callgate completions SHELL` and `callgate man --out DIR`: generated from the command-line
//! definitions themselves, so they cannot disagree with `--help`. The Debian package ships both.

use clap::CommandFactory;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub(crate) struct ManArgs {
    /// Directory to write callgate.1 and one page per subcommand (callgate-lists-compile.1...).
    #[arg(long, short)]
    out: PathBuf,
}

pub(crate) fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "callgate", &mut std::io::stdout());
    Ok(())
}

pub(crate) fn man(args: ManArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let mut cmd = super::Cli::command();
    cmd.build();
    let n = write_pages(&cmd, "callgate", &args.out)?;
    println!("{n} pages written to {}", args.out.display());
    Ok(())
}

/// The page of `cmd` (named `name`, e.g. `callgate-lists-compile`) and of each subcommand.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = cmd.clone().name(name.to_string());
    let mut text = Vec::new();
    clap_mangen::Man::new(page).render(&mut text)?;
    std::fs::write(dir.join(format!("{name}.1")), text)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}
