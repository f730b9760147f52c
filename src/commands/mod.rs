//! One module per subcommand; each turns arguments into one library call and renders it.

mod diff;
mod inspect;
mod kconfig;
mod pack;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub(crate) fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Pack(args) => pack::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Kconfig(command) => kconfig::run(command),
    }
}
