//! `kiln machine-config`.

use anyhow::{Context, bail};
use kiln_builder::machine_config::{self, Options};
use kiln_builder::recipe::{Recipe, TALOS};

use crate::cli::MachineConfigArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: MachineConfigArgs) -> anyhow::Result<Exit> {
    let recipe = Recipe::load(&args.recipe)?;
    let image = match args.image {
        Some(image) => image,
        None => {
            let installers: Vec<&String> = recipe
                .images
                .iter()
                .filter(|(_, image)| image.from.as_deref() == Some(TALOS))
                .map(|(name, _)| name)
                .collect();
            match installers.as_slice() {
                [one] => (*one).clone(),
                [] => bail!("the recipe has no image from the [talos] step: give --image"),
                _ => bail!("the recipe has several images from the [talos] step: give --image"),
            }
        }
    };
    let options = Options {
        layout: &args.out,
        image: &image,
        registry: &args.registry,
        install_disk: args.install_disk.as_deref(),
        machine_type: args.machine_type.as_deref(),
    };
    let patch = machine_config::patch(&recipe, &options)
        .with_context(|| format!("cannot write the machine config for {image}"))?;
    output::text(&patch)?;
    Ok(Exit::Success)
}
