//! The `callgate` binary: parse the command line and hand over to the command's module
//! (`cli/`), which hands over to the library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    match cli::dispatch(cli::Cli::parse().cmd) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::from(2)
        }
    }
}
