//! `kiln inspect`.

use anyhow::Context;
use kiln_layers::inspect;
use kiln_layers::oci::layout::Layout;

use crate::cli::InspectArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: InspectArgs) -> anyhow::Result<Exit> {
    let layout = Layout::open(&args.layout)?;
    let summary =
        inspect::inspect(&layout).with_context(|| format!("cannot inspect {}", args.layout.display()))?;
    output::summary(&summary, args.json)?;
    Ok(Exit::Success)
}
