//! `kiln`: builds Talos Linux OS images reproducibly, without a daemon.
//!
//! This binary only parses arguments, calls one library entry point per command and renders
//! the result; all logic lives in the library crates (see ARCHITECTURE.md).

mod cli;
mod commands;
mod exit;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { exit::Exit::Usage } else { exit::Exit::Success };
            // clap renders help, version and usage errors itself.
            let _ = error.print();
            return code.into();
        }
    };
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(error) => {
            output::error(&error);
            exit::Exit::classify(&error).into()
        }
    }
}
