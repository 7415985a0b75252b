//! `callgate admin ...`: what the console's configuration needs.

use callgate::config::PasswordHashText;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};

#[derive(Subcommand)]
pub(crate) enum AdminCmd {
    /// Read a password (one line of standard input) and print its Argon2 hash, for
    /// `password_hash` in an `[[admin.user]]` table: the configuration never holds the
    /// password itself.
    HashPassword,
}

pub(crate) fn main(cmd: AdminCmd) -> anyhow::Result<()> {
    match cmd {
        AdminCmd::HashPassword => hash_password(),
    }
}

fn hash_password() -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (shown as typed; pipe it in to keep it off the screen): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let hash = PasswordHashText::of(password).map_err(anyhow::Error::msg)?;
    println!("{}", hash.as_str());
    Ok(())
}
