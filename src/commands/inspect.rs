//! `kiln inspect`.

use std::path::Path;

use anyhow::Context;
use kiln_layers::inspect::{self, Summary};
use kiln_layers::oci::layout::Layout;
use kiln_registry::pull::Remote;
use kiln_registry::reference::ImageRef;

use crate::cli::InspectArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    let path = Path::new(&args.target);
    let summary = if path.is_dir() {
        let layout = Layout::open(path)?;
        inspect::inspect(&layout).with_context(|| format!("cannot inspect {}", path.display()))?
    } else {
        let image: ImageRef = args.target.parse()?;
        let client = super::registry_client(&image.registry, &args.registry)?;
        let remote = Remote::new(&client, &image.repository);
        let (descriptor, _) = remote.manifest_bytes(&image.reference())?;
        let mut summary =
            inspect::image(&remote, &descriptor).with_context(|| format!("cannot inspect {image}"))?;
        summary.name = Some(image.to_string());
        Summary { layout: image.to_string().into(), images: vec![summary] }
    };
    output::summary(&summary, args.json)?;
    Ok(Exit::Success)
}
