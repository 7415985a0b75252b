//! `callgate config ...`: the configuration as a start or a reload would read it.

use super::{clock_from_env, load_config, Common};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Read the configuration, the rules and calendars, the lists and the certificates exactly
    /// as a start or a reload would; print every error (file, line, key) and exit 1, or print
    /// what is in use and exit 0. Guards a reload: `callgate config check && kill -HUP ...`.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

pub(crate) fn main(cmd: ConfigCmd) -> anyhow::Result<u8> {
    match cmd {
        ConfigCmd::Check { common } => check(&common),
    }
}

/// `callgate config check`: 0 when a start would succeed, 1 with every error printed.
fn check(common: &Common) -> anyhow::Result<u8> {
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
