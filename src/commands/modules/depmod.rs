//! `kiln modules depmod --basedir DIR KVER`.

use kiln_modules::depmod::{self, Options};

use crate::cli::ModulesDepmodArgs;
use crate::exit::Exit;

pub(crate) fn run(args: ModulesDepmodArgs) -> anyhow::Result<Exit> {
    let options = Options {
        basedir: args.basedir,
        release: args.release,
        moduledir: args.moduledir,
        config: args.config,
        symvers: args.symvers,
        follow_links: true,
    };
    let output = if args.dry_run { depmod::compute(&options)? } else { depmod::depmod(&options)? };
    crate::output::messages(&output.warnings.iter().map(|w| format!("warning: {w}")).collect::<Vec<_>>());
    if args.dry_run
        && let Some((_, dep)) = output.files.iter().find(|(name, _)| *name == "modules.dep")
    {
        crate::output::text(&String::from_utf8_lossy(dep))?;
    }
    Ok(Exit::Success)
}
