//! `kiln check`: what a build would refuse, found in seconds without compiling.
//!
//! Four checks, each reported on its own: the recipe's schema (loading it is the check), the
//! pins (`kiln.lock` agrees with the recipe, every source is pinned, and every source on this
//! host — a file read where it is, a package's file, a cached download — matches its pin;
//! nothing is fetched),
//! the kernel configuration (the kernel step's own configuration phase in its sandbox: the base,
//! the fragments, the signing lines, `make olddefconfig`, every requested value checked and
//! explained), and Talos's boot-time rules ([`crate::rules`]) against the UKI's command line
//! and that configuration.

use std::num::NonZeroUsize;
use std::path::Path;

use kiln_kconfig::DotConfig;

use crate::build::{Silent, StepContext};
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::recipe::{KERNEL, Recipe};
use crate::sandbox::{Input, Isolation, Spec};
use crate::source::{self, FetchOptions};

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It holds; what was checked.
    Passed(String),
    /// It does not; each problem.
    Failed(Vec<String>),
    /// It could not run here; why.
    NotRun(String),
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check's name.
    pub check: &'static str,
    /// What it found.
    pub outcome: Outcome,
}

/// Where `check` finds sources and runs the configuration.
pub struct Options<'a> {
    /// The cache: sources already fetched, and scratch space.
    pub cache: &'a Cache,
    /// Local replacements (`--source`); `kiln check` never fetches, whatever `offline` says.
    pub fetch: FetchOptions,
    /// The sandbox the kernel's configuration runs in.
    pub isolation: &'a dyn Isolation,
}

/// Every check on `recipe` (loaded, so its schema holds).
pub fn check(recipe: &Recipe, options: &Options<'_>) -> Result<Vec<Finding>> {
    let mut findings = vec![Finding {
        check: "recipe",
        outcome: Outcome::Passed(format!(
            "{} sources, {} steps, {} images",
            recipe.sources.len(),
            recipe.order().map(|order| order.len()).unwrap_or_default(),
            recipe.images.len()
        )),
    }];
    let fetch = FetchOptions { offline: true, overrides: options.fetch.overrides.clone() };
    let (pins, lock) = pins(recipe, options.cache, &fetch);
    findings.push(Finding { check: "pins", outcome: pins });
    let config = match &recipe.kernel {
        None => None,
        Some(_) => {
            let (outcome, config) = kernel_config(recipe, options, &fetch, lock.as_ref())?;
            findings.push(Finding { check: "kernel configuration", outcome });
            config
        }
    };
    if recipe.talos.is_some() {
        findings.push(Finding { check: "talos boot rules", outcome: talos_rules(recipe, config.as_ref()) });
    }
    Ok(findings)
}

/// The lock against the recipe, then every source against its pin, from what is on this host.
fn pins(recipe: &Recipe, cache: &Cache, fetch: &FetchOptions) -> (Outcome, Option<Lock>) {
    let lock = match Lock::read(&recipe.dir) {
        Ok(lock) => lock,
        Err(error) => return (Outcome::Failed(vec![error.to_string()]), None),
    };
    let mut problems = Vec::new();
    if let Some(lock) = &lock
        && let Err(error) = lock.check(recipe)
    {
        problems.push(error.to_string());
    }
    let (mut verified, mut elsewhere, mut given) = (0, Vec::new(), Vec::new());
    for name in recipe.sources.keys() {
        if fetch.overrides.contains_key(name) {
            given.push(name.clone());
            continue;
        }
        if let Err(error) = source::resolve(recipe, name, lock.as_ref()) {
            problems.push(with_hint(&error));
            continue;
        }
        // A file of this host is read where it is, not taken from the cache.
        if recipe.sources[name].path.is_some() {
            match source::verify_here(recipe, name, lock.as_ref()) {
                Ok(()) => verified += 1,
                Err(error) => problems.push(with_hint(&error)),
            }
            continue;
        }
        match source::fetch(recipe, name, cache, fetch, lock.as_ref()) {
            Ok(fetched) => match lock.as_ref().map(|lock| lock.check_fetched(name, &fetched)) {
                Some(Err(error)) => problems.push(with_hint(&error)),
                _ => verified += 1,
            },
            Err(Error::Offline { .. }) => elsewhere.push(name.clone()),
            Err(error) => problems.push(with_hint(&error)),
        }
    }
    if !problems.is_empty() {
        return (Outcome::Failed(problems), lock);
    }
    let mut text = format!("{verified} of {} sources here match their pins", recipe.sources.len());
    if !elsewhere.is_empty() {
        text += &format!("; pinned, not fetched yet (checked when fetched): {}", elsewhere.join(", "));
    }
    if !given.is_empty() {
        text += &format!("; given with --source, not checked: {}", given.join(", "));
    }
    (Outcome::Passed(text), lock)
}

/// The kernel step's configuration phase, in its sandbox, over the kernel's source (and a
/// base-source) as the build mounts them; with the final `.config` when it ran.
fn kernel_config(
    recipe: &Recipe,
    options: &Options<'_>,
    fetch: &FetchOptions,
    lock: Option<&Lock>,
) -> Result<(Outcome, Option<DotConfig>)> {
    let Some(kernel) = &recipe.kernel else { return Ok((Outcome::NotRun("no [kernel]".into()), None)) };
    let epoch = crate::build::epoch(recipe)?;
    let work = options.cache.temp_dir()?;
    let (build, out, root) = (work.path().join("build"), work.path().join("out"), work.path().join("root"));
    for dir in [&build, &out, &root] {
        std::fs::create_dir(dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    }
    let mut spec = Spec::new(&build, &out, epoch);
    spec.root = Some(root);
    for input in recipe.inputs(KERNEL) {
        let fetched = match source::fetch(recipe, &input, options.cache, fetch, lock) {
            Ok(fetched) => fetched,
            Err(error) => {
                return Ok((
                    Outcome::NotRun(format!(
                        "source {input:?} cannot be had here ({error}); pass --source {input}=PATH"
                    )),
                    None,
                ));
            }
        };
        let path = if input == kernel.source {
            crate::kernel::SOURCE.to_owned()
        } else {
            format!("/inputs/{input}")
        };
        spec.inputs.push(Input { host: fetched.path, path });
    }
    let log = work.path().join("log");
    let context = StepContext {
        name: KERNEL,
        isolation: options.isolation,
        spec: &spec,
        epoch,
        log: &log,
        cache: options.cache,
        reporter: &Silent,
        threads: NonZeroUsize::MIN,
    };
    let configured = crate::kernel::configure(recipe, kernel, &context, crate::kernel::Signing::ConfigOnly);
    crate::extract::make_writable(work.path());
    match configured {
        Ok(configured) => {
            let (config, _) = DotConfig::parse(&configured.final_config, Path::new(".config"));
            let requested = kernel.fragments.iter().map(|f| f.display().to_string()).collect::<Vec<_>>();
            let text = format!(
                "every value {} requests stuck after make olddefconfig ({} options set)",
                if requested.is_empty() { "the recipe".to_owned() } else { requested.join(", ") },
                config.iter().filter(|(_, setting)| setting.value() != "n").count()
            );
            Ok((Outcome::Passed(text), Some(config)))
        }
        Err(error @ Error::KernelConfig { .. }) => Ok((Outcome::Failed(vec![error.to_string()]), None)),
        Err(Error::StepFailed { exit, tail, .. }) => {
            let mut lines = vec![format!("the configuration phase failed ({exit})")];
            lines.extend(tail.into_iter().map(|line| format!("  | {line}")));
            Ok((Outcome::Failed(lines), None))
        }
        Err(error) => Err(error),
    }
}

/// Talos's rules against the UKI's command line and, when the configuration ran, its sysctls.
fn talos_rules(recipe: &Recipe, config: Option<&DotConfig>) -> Outcome {
    let Some(talos) = &recipe.talos else { return Outcome::NotRun("no [talos]".into()) };
    let extra = talos
        .cmdline
        .as_deref()
        .or(recipe.kernel.as_ref().and_then(|kernel| kernel.cmdline.as_deref()))
        .unwrap_or_default();
    let cmdline = crate::talos::cmdline(talos.platform.as_deref(), extra);
    let mut violations: Vec<String> =
        crate::rules::cmdline(&cmdline).iter().map(ToString::to_string).collect();
    let Some(config) = config else {
        if violations.is_empty() {
            return Outcome::NotRun(
                "the command line holds; the sysctls need the kernel configuration, which did not run".into(),
            );
        }
        return Outcome::Failed(violations);
    };
    let (sysctl_violations, unchecked) = crate::rules::sysctls(&recipe.machine_config.sysctls, config, None);
    violations.extend(sysctl_violations.iter().map(ToString::to_string));
    if !violations.is_empty() {
        return Outcome::Failed(violations);
    }
    let mut text = format!(
        "KSPP arguments and Talos's defaults on the command line; {} KSPP and {} machine-config sysctls exist",
        crate::rules::KSPP_SYSCTLS.len(),
        recipe.machine_config.sysctls.len() - unchecked.len()
    );
    if !unchecked.is_empty() {
        text += &format!("; left to the build, where the modules are: {}", unchecked.join(", "));
    }
    Outcome::Passed(text)
}

/// An error's text with its hint, where it has one.
fn with_hint(error: &Error) -> String {
    match error.hint() {
        Some(hint) => format!("{error} ({hint})"),
        None => error.to_string(),
    }
}
