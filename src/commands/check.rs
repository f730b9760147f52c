//! `kiln check`.

use anyhow::Context;
use kiln_builder::cache::Cache;
use kiln_builder::check::{self, Outcome};
use kiln_builder::recipe::Recipe;
use kiln_builder::sandbox::Namespaces;
use kiln_builder::source::FetchOptions;

use crate::cli::CheckArgs;
use crate::exit::Exit;
use crate::output;

pub(crate) fn run(args: CheckArgs) -> anyhow::Result<Exit> {
    let recipe = Recipe::load(&args.recipe)?;
    let cache = Cache::open(None)?;
    let options = check::Options {
        cache: &cache,
        fetch: FetchOptions { offline: true, overrides: args.overrides.into_iter().collect() },
        isolation: &Namespaces,
    };
    let findings =
        check::check(&recipe, &options).with_context(|| format!("cannot check {}", args.recipe.display()))?;
    let mut text = String::new();
    let mut failed = false;
    for finding in &findings {
        match &finding.outcome {
            Outcome::Passed(what) => text += &format!("ok       {}: {what}\n", finding.check),
            Outcome::NotRun(why) => text += &format!("not run  {}: {why}\n", finding.check),
            Outcome::Failed(problems) => {
                failed = true;
                text += &format!("FAILED   {}:\n", finding.check);
                for problem in problems {
                    for line in problem.lines() {
                        text += &format!("  {line}\n");
                    }
                }
            }
        }
    }
    output::text(&text)?;
    Ok(if failed { Exit::Different } else { Exit::Success })
}
