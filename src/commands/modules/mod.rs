//! `kiln modules info|depmod|check|sign|verify|keygen`.

mod check;
mod depmod;
mod info;
mod sign;

use crate::cli::ModulesCommand;
use crate::exit::Exit;

pub(crate) fn run(command: ModulesCommand) -> anyhow::Result<Exit> {
    match command {
        ModulesCommand::Info(args) => info::run(args),
        ModulesCommand::Depmod(args) => depmod::run(args),
        ModulesCommand::Check(args) => check::run(args),
        ModulesCommand::Sign(args) => sign::sign(args),
        ModulesCommand::Verify(args) => sign::verify(args),
        ModulesCommand::Keygen(args) => sign::keygen(args),
    }
}

/// Pretty JSON with a final newline on stdout.
fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    crate::output::text(&text)?;
    Ok(())
}
