//! `kiln pull`.

use anyhow::Context;
use kiln_layers::oci::reference::Reference;
use kiln_registry::pull;

use crate::cli::PullArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: PullArgs) -> anyhow::Result<Exit> {
    let client = super::registry_client(&args.image.registry, &args.registry)?;
    let name = match args.name {
        Some(name) => name,
        None => format!("{}:{}", args.image.repository, args.image.tag.as_deref().unwrap_or("latest"))
            .parse::<Reference>()?,
    };
    let top = pull::pull(&client, &args.image, &args.out, &name)
        .with_context(|| format!("cannot pull {} into {}", args.image, args.out.display()))?;
    output::text(&format!("{name} {}\n", top.digest))?;
    Ok(Exit::Success)
}
