//! `kiln push`.

use anyhow::Context;
use kiln_layers::oci::layout::Layout;
use kiln_registry::push::{self, PushOptions};

use crate::cli::PushArgs;
use crate::exit::Exit;
use crate::{output, progress};

pub(crate) fn run(args: PushArgs) -> anyhow::Result<Exit> {
    let layout = Layout::open(&args.layout)?;
    let client = super::registry_client(&args.to.registry, &args.registry)?;
    let options = PushOptions {
        prefix: args.to.prefix.clone(),
        images: args.images,
        extra_tags: args.tags,
        jobs: args.jobs,
    };
    let reporter = progress::PushProgress::new();
    let pushed = push::push(&client, &layout, &options, &reporter)
        .with_context(|| format!("cannot push {} to {}", args.layout.display(), args.to.registry))?;
    reporter.finish();
    output::pushed(client.registry(), &pushed, args.json)?;
    Ok(Exit::Success)
}
