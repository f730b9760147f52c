//! `kiln modules …`.

mod sign;

use crate::cli::ModulesCommand;
use crate::exit::Exit;

pub(crate) fn run(command: ModulesCommand) -> anyhow::Result<Exit> {
    match command {
        ModulesCommand::Sign(args) => sign::sign(args),
        ModulesCommand::Verify(args) => sign::verify(args),
        ModulesCommand::Keygen(args) => sign::keygen(args),
    }
}
