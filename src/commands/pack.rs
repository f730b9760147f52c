//! `kiln pack`.

use std::num::NonZeroUsize;

use anyhow::{Context, bail};
use kiln_layers::oci::spec::Platform;
use kiln_layers::pack::{self, LayerOptions, PackOptions};
use kiln_reproducible::{Epoch, ModePolicy, MtimePolicy, Policy};

use crate::cli::{MtimeArg, PackArgs};
use crate::exit::Exit;
use crate::{output, progress};

pub(crate) fn run(args: PackArgs) -> anyhow::Result<Exit> {
    let epoch = Epoch::from_env(None)?;
    let policy = Policy {
        mtime: match args.mtime {
            MtimeArg::Set => MtimePolicy::Set,
            MtimeArg::Clamp => MtimePolicy::Clamp,
        },
        modes: if args.preserve_modes { ModePolicy::Preserve } else { ModePolicy::Normalize },
        ..Policy::with_epoch(epoch)
    };
    let Some((os, architecture)) = args.platform.split_once('/') else {
        bail!("invalid --platform {:?}: expected OS/ARCH, e.g. linux/amd64", args.platform);
    };
    let threads =
        args.threads.or_else(|| std::thread::available_parallelism().ok()).unwrap_or(NonZeroUsize::MIN);
    let options = PackOptions {
        reference: args.reference,
        layer: LayerOptions { policy, compression: args.compression, threads },
        platform: Platform { architecture: architecture.into(), os: os.into(), variant: None },
        base: None,
        entrypoint: None,
    };
    let reporter = progress::PackProgress::new();
    let packed = pack::pack(&args.dir, &args.out, &options, &reporter)
        .with_context(|| format!("cannot pack {} into {}", args.dir.display(), args.out.display()))?;
    reporter.finish();
    output::packed(&packed, args.json)?;
    Ok(Exit::Success)
}
