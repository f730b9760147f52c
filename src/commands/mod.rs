//! One module per subcommand; each turns arguments into one library call and renders it.

mod boot;
mod build;
mod check;
mod diff;
mod inspect;
mod kconfig;
mod machine_config;
mod modules;
mod pack;
mod pull;
mod push;
mod sandbox;
mod verify;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub(crate) fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Build(args) => build::run(args),
        Command::Lock(args) => build::lock(args),
        Command::Check(args) => check::run(args),
        Command::Pack(args) => pack::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Push(args) => push::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Kconfig(command) => kconfig::run(command),
        Command::Modules(command) => modules::run(command),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Boot(args) => boot::run(args),
        Command::MachineConfig(args) => machine_config::run(args),
        Command::Verify(args) => verify::run(args),
    }
}

/// A registry client from the common command-line options.
fn registry_client(
    registry: &str,
    args: &crate::cli::RegistryArgs,
) -> anyhow::Result<kiln_registry::client::Client> {
    let options = kiln_registry::client::ClientOptions {
        insecure_http: args.insecure_http,
        ca_cert: args.ca_cert.clone(),
        ..Default::default()
    };
    Ok(kiln_registry::client::Client::new(registry, &options)?)
}
