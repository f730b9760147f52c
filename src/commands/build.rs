//! `kiln build` and `kiln lock`.

use std::num::NonZeroUsize;

use anyhow::Context;
use kiln_builder::build::{self, BuildOptions};
use kiln_builder::cache::Cache;
use kiln_builder::recipe::Recipe;
use kiln_builder::remote_cache::RemoteOptions;
use kiln_builder::sandbox::Namespaces;
use kiln_builder::source::FetchOptions;

use crate::cli::{BuildArgs, LockArgs, SourceArgs};
use crate::exit::Exit;
use crate::{output, progress};

fn fetch_options(args: SourceArgs) -> FetchOptions {
    FetchOptions { offline: args.offline, overrides: args.overrides.into_iter().collect() }
}

pub(crate) fn run(args: BuildArgs) -> anyhow::Result<Exit> {
    let recipe = Recipe::load(&args.recipe)?;
    let threads =
        args.threads.or_else(|| std::thread::available_parallelism().ok()).unwrap_or(NonZeroUsize::MIN);
    let options = BuildOptions {
        out: args.out.clone(),
        cache: Cache::open(None)?,
        fetch: fetch_options(args.sources),
        isolation: &Namespaces,
        threads,
        remote: RemoteOptions { from: args.cache_from, to: args.cache_to, ca_cert: args.cache_ca_cert },
    };
    let reporter = progress::BuildProgress::new();
    let built = build::build(&recipe, &options, &reporter)
        .with_context(|| format!("cannot build {}", args.recipe.display()))?;
    reporter.finish();
    output::built(&built, args.json)?;
    Ok(Exit::Success)
}

pub(crate) fn lock(args: LockArgs) -> anyhow::Result<Exit> {
    let recipe = Recipe::load(&args.recipe)?;
    let cache = Cache::open(None)?;
    let path = args.recipe.join(kiln_builder::lock::FILE_NAME);
    if args.update.is_empty() {
        let lock = kiln_builder::lock::lock(&recipe, &cache, &fetch_options(args.sources))
            .with_context(|| format!("cannot lock {}", args.recipe.display()))?;
        output::messages(&[format!("wrote {} ({} sources)", path.display(), lock.sources.len())]);
        return Ok(Exit::Success);
    }
    let (_, updates) =
        kiln_builder::lock::update(&recipe, &args.update, &cache, &fetch_options(args.sources))
            .with_context(|| format!("cannot update {}", path.display()))?;
    output::lock_updates(&path, &updates);
    Ok(Exit::Success)
}
