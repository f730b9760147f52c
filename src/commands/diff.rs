//! `kiln diff`.

use std::path::Path;

use kiln_layers::diff::{self, Side};
use kiln_layers::oci::layout::Layout;

use crate::cli::DiffArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: DiffArgs) -> anyhow::Result<Exit> {
    let (path_a, ref_a) = split(&args.a);
    let (path_b, ref_b) = split(&args.b);
    let (layout_a, layout_b) = (Layout::open(path_a)?, Layout::open(path_b)?);
    let report = diff::diff(
        &Side { layout: &layout_a, reference: ref_a },
        &Side { layout: &layout_b, reference: ref_b },
    )?;
    output::diff_report(&report, args.json)?;
    Ok(if report.is_identical() { Exit::Success } else { Exit::Different })
}

/// `LAYOUT` or `LAYOUT:NAME:TAG`: an existing directory is taken whole, otherwise the text is
/// split at its first `:` (as skopeo's `oci:` transport does).
fn split(text: &str) -> (&Path, Option<&str>) {
    if Path::new(text).is_dir() {
        return (Path::new(text), None);
    }
    match text.split_once(':') {
        Some((path, reference)) => (Path::new(path), Some(reference)),
        None => (Path::new(text), None),
    }
}
