//! `kiln build`: sources → steps in the sandbox → images, with every step cached by its inputs.
//!
//! A step's key is the SHA-256 of canonical JSON naming everything it can see: its script and
//! variables, the sandbox's whole environment (`SOURCE_DATE_EPOCH` included), the identity of
//! each input (a source's pin, another step's output digest), the toolchain's identity (the
//! versions of its compilers and tools, read in the sandbox) and kiln's version. A step whose key
//! has a cache entry, and whose cached output still has the digest recorded for it, does not
//! run; an unchanged step upstream that produced the same output leaves its dependants cached.
//! Sources are fetched only for steps that run, so a no-op build reads no source.

use std::collections::BTreeMap;
use std::fs;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_layers::digest::Digest;
use kiln_layers::oci::reference::Reference;
use kiln_layers::oci::spec::Platform;
use kiln_layers::pack::{self, LayerOptions, PackOptions};
use kiln_reproducible::{Epoch, Policy};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::recipe::Recipe;
use crate::remote_cache::{Event, RemoteOptions, Shared};
use crate::sandbox::{self, HOSTNAME, Input, Isolation, Spec};
use crate::source::{self, FetchOptions, Fetched};

/// Changes whenever what kiln does around a step's script changes (the kernel step's signing and
/// depmod, a module step's checks), so entries made by an older kiln are not taken for new ones.
const STEPS_REVISION: u32 = 2;

/// How to build.
pub struct BuildOptions<'a> {
    /// The OCI image layout to write the images into.
    pub out: PathBuf,
    /// The cache.
    pub cache: Cache,
    /// How sources are obtained.
    pub fetch: FetchOptions,
    /// The sandbox.
    pub isolation: &'a dyn Isolation,
    /// Compression threads (the output does not depend on it).
    pub threads: NonZeroUsize,
    /// Registries sharing step outputs between machines ([`crate::remote_cache`]).
    pub remote: RemoteOptions,
}

/// Hears what a build does. Library code never prints.
pub trait Reporter: Sync {
    /// A step is about to run (it was not cached).
    fn step_started(&self, _step: &str) {}
    /// A line of a running step's output.
    fn step_output(&self, _step: &str, _line: &str) {}
    /// A running step compiled another object: `done` so far, of `expected` when known (from
    /// an earlier build of the same kernel configuration).
    fn step_progress(&self, _step: &str, _done: u64, _expected: Option<u64>) {}
    /// A step is done, run or cached.
    fn step_finished(&self, _result: &StepResult) {}
    /// The shared cache pulled or pushed a step, or could not.
    fn cache_event(&self, _step: &str, _event: &Event) {}
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// The step's name.
    pub step: String,
    /// Its input key.
    pub key: String,
    /// Whether the cache had it (this machine's, or a shared one: see `pulled`).
    pub cached: bool,
    /// The shared cache's entry it was pulled from, `REGISTRY/REPOSITORY:TAG@DIGEST`.
    pub pulled: Option<String>,
    /// The shared cache's entry this build pushed for it.
    pub pushed: Option<String>,
    /// Seconds it ran (0 when cached).
    pub seconds: f64,
    /// The digest of its output tree.
    pub output: String,
}

/// One image written.
#[derive(Debug, Clone, Serialize)]
pub struct BuiltImage {
    /// `NAME:TAG`.
    pub name: String,
    /// Manifest digest.
    pub digest: Digest,
    /// The artifact manifests of its SBOM and provenance in the layout.
    pub attestations: crate::attest::Attested,
}

/// The result of a build.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// The layout written.
    pub layout: PathBuf,
    /// Steps in the order they were taken.
    pub steps: Vec<StepResult>,
    /// Images, by name.
    pub images: Vec<BuiltImage>,
    /// Where the images' SBOMs and provenance were written beside the layout.
    pub attestations: PathBuf,
    /// Whether this build wrote `kiln.lock` (there was none).
    pub lock_written: bool,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    output: String,
}

/// Builds every image of `recipe` into `options.out`.
pub fn build(recipe: &Recipe, options: &BuildOptions<'_>, reporter: &dyn Reporter) -> Result<Built> {
    let epoch = epoch(recipe)?;
    let lock = Lock::read(&recipe.dir)?;
    if let Some(lock) = &lock {
        lock.check(recipe)?;
    }
    let mut run = Run {
        recipe,
        options,
        reporter,
        lock: lock.as_ref(),
        epoch,
        fetched: BTreeMap::new(),
        toolchain: None,
        shared: Shared::new(&options.remote, options.threads),
    };
    let order = recipe.order().map_err(|reason| Error::Recipe {
        path: recipe.dir.join(crate::recipe::FILE_NAME),
        line: None,
        reason,
    })?;
    let mut outputs: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    let mut steps = Vec::new();
    // A source that cannot be had blocks the steps that need it, not the others: they are built,
    // and the build then fails naming every missing source.
    let mut missing: BTreeMap<String, String> = BTreeMap::new();
    let mut blocked: Vec<String> = Vec::new();
    for name in order {
        if recipe.inputs(&name).iter().any(|input| blocked.contains(input)) {
            blocked.push(name);
            continue;
        }
        match run.step(&name, &outputs) {
            Ok(result) => {
                outputs.insert(
                    name.clone(),
                    (options.cache.step(&result.key).join("out"), result.output.clone()),
                );
                reporter.step_finished(&result);
                steps.push(result);
            }
            Err(error) => match missing_source(recipe, &error) {
                Some((source, line)) => {
                    missing.insert(source, line);
                    blocked.push(name);
                }
                None => return Err(error),
            },
        }
    }
    let mut images: Vec<crate::attest::ImageInputs> = Vec::new();
    let mut skipped: Vec<&String> = Vec::new();
    for name in image_order(recipe) {
        let image = &recipe.images[name];
        let needs_blocked = image.from.as_ref().is_some_and(|step| blocked.contains(step))
            || image.base.as_ref().is_some_and(|base| skipped.contains(&base));
        if needs_blocked {
            skipped.push(name);
            continue;
        }
        let base_source = image.base.as_ref().filter(|base| recipe.sources.contains_key(*base));
        if let Some(base) = base_source
            && let Err(error) = run.source(base)
        {
            match missing_source(recipe, &error) {
                Some((source, line)) => {
                    missing.insert(source, line);
                    skipped.push(name);
                    continue;
                }
                None => return Err(error),
            }
        }
        let tree = match (&image.from, &image.dir) {
            // A step's output is untrusted code's: the image's tree is reached through no link.
            (Some(step), _) => match &image.path {
                Some(path) => {
                    let out = &outputs[step].0;
                    crate::beneath::path(out, &crate::beneath::relative(out, path)?)?
                }
                None => outputs[step].0.clone(),
            },
            (None, Some(dir)) => recipe.dir.join(dir),
            (None, None) => continue,
        };
        let invalid = |reason: String| Error::Recipe {
            path: recipe.dir.join(crate::recipe::FILE_NAME),
            line: None,
            reason: format!("image {name:?}: {reason}"),
        };
        let reference: Reference = name.parse().map_err(|e: kiln_layers::Error| invalid(e.to_string()))?;
        let compression = image
            .compression
            .parse()
            .map_err(|e: kiln_layers::compress::CompressionError| invalid(e.to_string()))?;
        let (base, base_digest) = match &image.base {
            Some(base) if recipe.images.contains_key(base) => (
                Some(pack::Base { layout: options.out.clone(), reference: base.clone() }),
                images.iter().find(|i| i.name == *base).map(|i| (base.clone(), i.manifest.digest.clone())),
            ),
            Some(base) => {
                let fetched = run.source(base)?;
                let digest = fetched.sha256.as_ref().and_then(|hex| format!("sha256:{hex}").parse().ok());
                (
                    Some(pack::Base { layout: fetched.path, reference: source::IMAGE_NAME.into() }),
                    digest.map(|digest| (base.clone(), digest)),
                )
            }
            None => (None, None),
        };
        let pack_options = PackOptions {
            reference,
            layer: LayerOptions { policy: Policy::with_epoch(epoch), compression, threads: options.threads },
            platform: Platform { architecture: "amd64".into(), os: "linux".into(), variant: None },
            base,
            entrypoint: image.entrypoint.clone(),
        };
        let packed = pack::pack(&tree, &options.out, &pack_options, &pack::Silent)?;
        let (sources, graph_steps) = crate::attest::image_graph(recipe, name);
        images.push(crate::attest::ImageInputs {
            name: name.clone(),
            manifest: packed.manifest,
            tree,
            // Filled in once the lock is final.
            sources: sources
                .into_iter()
                .map(|name| crate::attest::SourceInput {
                    name,
                    origin: String::new(),
                    uri: String::new(),
                    downloadable: false,
                    digests: BTreeMap::new(),
                    overridden: false,
                    package: None,
                })
                .collect(),
            steps: steps
                .iter()
                .filter(|s| graph_steps.contains(&s.step))
                .map(|s| crate::attest::StepInput {
                    name: s.step.clone(),
                    key: s.key.clone(),
                    output: s.output.clone(),
                })
                .collect(),
            base: base_digest,
            kernel_source: recipe
                .kernel
                .as_ref()
                .filter(|_| graph_steps.contains(crate::recipe::KERNEL))
                .map(|kernel| kernel.source.clone()),
        });
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    if !missing.is_empty() {
        // The blocked steps' other sources: each one the lock cannot pin is missing too.
        for step in &blocked {
            for input in recipe.inputs(step).iter().filter(|i| recipe.sources.contains_key(*i)) {
                // A package's file is on this host: one its package replaced stops the build
                // here, naming both versions, not only after the missing sources are had.
                if recipe.sources[input].package.is_some() && !options.fetch.overrides.contains_key(input) {
                    run.source(input)?;
                    continue;
                }
                if !missing.contains_key(input)
                    && !options.fetch.overrides.contains_key(input)
                    && let Err(error) = source::resolve(recipe, input, lock.as_ref())
                    && let Some((source, line)) = missing_source(recipe, &error)
                {
                    missing.insert(source, line);
                }
            }
        }
        for image in &skipped {
            if let Some(base) =
                recipe.images[*image].base.as_ref().filter(|b| recipe.sources.contains_key(*b))
                && !missing.contains_key(base)
                && !options.fetch.overrides.contains_key(base)
                && let Err(error) = source::resolve(recipe, base, lock.as_ref())
                && let Some((source, line)) = missing_source(recipe, &error)
            {
                missing.insert(source, line);
            }
        }
        let mut needing: Vec<String> = blocked.iter().map(|step| format!("step {step}")).collect();
        needing.extend(skipped.iter().map(|image| format!("image {image}")));
        return Err(Error::MissingSources { missing: missing.into_values().collect(), blocked: needing });
    }
    // A lock records the recipe as it is: not from a build with local replacements.
    let lock_written = if lock.is_none() && options.fetch.overrides.is_empty() {
        for (name, source) in &recipe.sources {
            if !source::is_local_dir(recipe, source) {
                run.source(name)?;
            }
        }
        Lock::new(recipe, &run.fetched, &options.cache)?.write(&recipe.dir)?;
        true
    } else {
        false
    };
    let final_lock = Lock::read(&recipe.dir)?;
    for image in &mut images {
        for input in &mut image.sources {
            let name = input.name.clone();
            let fetched = run.fetched.get(&name).cloned();
            *input = crate::attest::source_input(recipe, &name, final_lock.as_ref(), fetched.as_ref())?;
        }
    }
    let context = crate::attest::BuildContext {
        epoch,
        recipe: recipe.meta.name.clone(),
        recipe_sha256: crate::tree::file_sha256(&recipe.dir.join(crate::recipe::FILE_NAME))?,
        lock_sha256: match final_lock {
            Some(_) => Some(crate::tree::file_sha256(&recipe.dir.join(crate::lock::FILE_NAME))?),
            None => None,
        },
        environment: Spec::new(PathBuf::new(), PathBuf::new(), epoch).environment(),
        hostname: HOSTNAME.to_owned(),
        toolchain: run.toolchain.clone(),
    };
    let mut attested = crate::attest::attach(&options.out, &images, &context)?;
    let images = images
        .into_iter()
        .filter_map(|image| {
            let attestations = attested.remove(&image.name)?;
            Some(BuiltImage { name: image.name, digest: image.manifest.digest, attestations })
        })
        .collect();
    Ok(Built {
        layout: options.out.clone(),
        attestations: crate::attest::directory(&options.out),
        steps,
        images,
        lock_written,
    })
}

/// The source an error says cannot be had, and a line saying so.
fn missing_source(recipe: &Recipe, error: &Error) -> Option<(String, String)> {
    match error {
        Error::Unpinned { name, origin } => Some((
            name.clone(),
            format!(
                "source {name:?} ({origin}): locked = true, and kiln.lock does not pin it yet: run `kiln lock {}` \
                 first, where it can be fetched",
                recipe.dir.display()
            ),
        )),
        Error::Offline { name, origin, .. } => Some((
            name.clone(),
            format!("source {name:?} ({origin}): not in the cache, and the build is offline"),
        )),
        Error::Fetch { name, origin, reason } => {
            Some((name.clone(), format!("source {name:?} ({origin}): {reason}")))
        }
        _ => None,
    }
}

/// Images in an order where each comes after its base (by name among equals).
fn image_order(recipe: &Recipe) -> Vec<&String> {
    let mut order: Vec<&String> = Vec::new();
    while order.len() < recipe.images.len() {
        let before = order.len();
        for (name, image) in &recipe.images {
            let ready = match &image.base {
                Some(base) if recipe.images.contains_key(base) => order.contains(&base),
                _ => true,
            };
            if ready && !order.contains(&name) {
                order.push(name);
            }
        }
        if order.len() == before {
            // A cycle, which reading the recipe refuses; keep the rest in name order.
            order.extend(recipe.images.keys().filter(|name| !order.contains(name)).collect::<Vec<_>>());
        }
    }
    order
}

struct Run<'a> {
    recipe: &'a Recipe,
    options: &'a BuildOptions<'a>,
    reporter: &'a dyn Reporter,
    lock: Option<&'a Lock>,
    epoch: Epoch,
    fetched: BTreeMap<String, Fetched>,
    toolchain: Option<String>,
    shared: Option<Shared>,
}

impl Run<'_> {
    fn source(&mut self, name: &str) -> Result<Fetched> {
        if let Some(fetched) = self.fetched.get(name) {
            return Ok(fetched.clone());
        }
        let fetched = source::fetch(self.recipe, name, &self.options.cache, &self.options.fetch, self.lock)?;
        if let Some(lock) = self.lock {
            lock.check_fetched(name, &fetched)?;
        }
        self.fetched.insert(name.to_owned(), fetched.clone());
        Ok(fetched)
    }

    /// What the steps' keys say of the toolchain: the versions its tools report in the sandbox.
    fn toolchain(&mut self, spec: &Spec) -> Result<String> {
        if let Some(identity) = &self.toolchain {
            return Ok(identity.clone());
        }
        let temp = self.options.cache.temp_dir()?;
        let (build, out) = (temp.path().join("build"), temp.path().join("out"));
        for dir in [&build, &out] {
            fs::create_dir(dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
        }
        let root = temp.path().join("root");
        fs::create_dir(&root).map_err(|source| Error::Write { path: root.clone(), source })?;
        let probe =
            Spec { build, out, inputs: Vec::new(), env: BTreeMap::new(), root: Some(root), ..spec.clone() };
        let script = "uname -m; for tool in cc c++ gcc ld as ar make musl-gcc bison flex perl python3; do \
                      if command -v $tool >/dev/null; then echo \"$tool: $($tool --version 2>&1 | head -n 1)\"; fi; done";
        let mut lines = Vec::new();
        sandbox::run_logged(self.options.isolation, &probe, script, &temp.path().join("log"), &mut |line| {
            lines.push(line.to_owned());
        })?;
        let identity = hex::encode(Sha256::digest(lines.join("\n")));
        self.toolchain = Some(identity.clone());
        Ok(identity)
    }

    /// Takes step `name` from a cache or runs it, then shares it where `--cache-to` says.
    fn step(&mut self, name: &str, outputs: &BTreeMap<String, (PathBuf, String)>) -> Result<StepResult> {
        let mut result = self.obtain(name, outputs)?;
        let (cache, epoch, reporter) = (&self.options.cache, self.epoch, self.reporter);
        if let Some(shared) = &mut self.shared {
            let entry = cache.step(&result.key);
            let mut on_event = |event: Event| reporter.cache_event(name, &event);
            result.pushed = shared.push(&result.key, &result.output, &entry, cache, epoch, &mut on_event);
        }
        Ok(result)
    }

    fn obtain(&mut self, name: &str, outputs: &BTreeMap<String, (PathBuf, String)>) -> Result<StepResult> {
        let recipe = self.recipe;
        let kind = Kind::of(recipe, name)?;
        let inputs = recipe.inputs(name);
        let definition = match kind {
            Kind::Kernel(kernel) => crate::kernel::definition(recipe, kernel)?,
            Kind::Module(module) => serde_json::json!({ "module": module }),
            Kind::Extension(extension) => serde_json::json!({
                "extension": extension,
                "talos": recipe.talos.as_ref().map(|talos| &talos.version),
                "signing": recipe.kernel.as_ref().map(|kernel| crate::signing::KeySource::of(recipe, kernel)
                    .map(|key| key.identity()).transpose()).transpose()?.flatten(),
            }),
            Kind::Talos(talos) => {
                serde_json::json!({
                    "talos": talos,
                    "kernel-cmdline": recipe.kernel.as_ref().map(|k| &k.cmdline),
                    "recipe": recipe.meta.name,
                    // Talos's boot-time rules are checked against it.
                    "machine-config": recipe.machine_config,
                })
            }
            Kind::Script(step) => serde_json::json!({ "script": step.script }),
        };
        // Where each input is in the sandbox: the kernel's source at a fixed path, since its
        // build directory refers to it; a module's kernel and source at theirs.
        let mount = |input: &str| match kind {
            Kind::Kernel(kernel) if input == kernel.source => crate::kernel::SOURCE.to_owned(),
            Kind::Kernel(_) => format!("/inputs/{input}"),
            Kind::Module(module) if input == module.source => crate::module::MODULE_SOURCE.to_owned(),
            Kind::Module(_) if input == crate::recipe::KERNEL => crate::module::KERNEL_OUTPUT.to_owned(),
            Kind::Module(_) => crate::kernel::SOURCE.to_owned(),
            Kind::Extension(_) | Kind::Talos(_) | Kind::Script(_) => format!("/inputs/{input}"),
        };
        let mut spec = Spec::new(PathBuf::new(), PathBuf::new(), self.epoch);
        if let Kind::Script(step) = kind {
            spec.env = step.env.clone();
        }
        let mut identities = BTreeMap::new();
        for input in &inputs {
            let identity = match outputs.get(input) {
                Some((_, digest)) => format!("step:sha256:{digest}"),
                None if self.options.fetch.overrides.contains_key(input) => self.source(input)?.identity,
                // Without a lock, a source it would pin is identified by what it resolves to.
                None if self.lock.is_none() && self.recipe.sources[input].pinned_by_lock() => {
                    self.source(input)?.identity
                }
                None => source::identity(self.recipe, &source::resolve(self.recipe, input, self.lock)?)?,
            };
            identities.insert(input.clone(), identity);
        }
        let toolchain = self.toolchain(&spec)?;
        let mounts: BTreeMap<&String, String> = inputs.iter().map(|i| (i, mount(i))).collect();
        let key_document = serde_json::json!({
            "kiln": env!("CARGO_PKG_VERSION"),
            "steps": STEPS_REVISION,
            "step": definition,
            "environment": spec.environment(),
            "inputs": identities,
            "sandbox": {
                "hostname": HOSTNAME,
                "toolchain": toolchain,
                "mounts": mounts,
                "confinement": sandbox::CONFINEMENT,
            },
        });
        let key = hex::encode(Sha256::digest(
            kiln_reproducible::json::to_vec(&key_document)
                .map_err(|e| Error::Sandbox { reason: e.to_string() })?,
        ));
        let cache = &self.options.cache;
        let entry = cache.step(&key);
        let cached = |key: String, output: String, pulled: Option<String>| StepResult {
            step: name.to_owned(),
            key,
            cached: true,
            pulled,
            pushed: None,
            seconds: 0.0,
            output,
        };
        if let Some(output) = cached_output(&entry)? {
            return Ok(cached(key, output, None));
        }
        let _lock = cache.lock(&format!("step-{key}"))?;
        // Another build may have made it while this one waited.
        if let Some(output) = cached_output(&entry)? {
            return Ok(cached(key, output, None));
        }
        if let Some(shared) = &mut self.shared {
            let reporter = self.reporter;
            let mut on_event = |event: Event| reporter.cache_event(name, &event);
            if let Some((pulled, output)) = shared.pull(&key, cache, &entry, &mut on_event) {
                return Ok(cached(key, output, Some(pulled)));
            }
        }
        for input in &inputs {
            let host = match outputs.get(input) {
                Some((path, _)) => path.clone(),
                None => self.source(input)?.path,
            };
            spec.inputs.push(Input { host, path: mount(input) });
        }
        let temp = cache.temp_dir()?;
        let (build, out) = (temp.path().join("build"), temp.path().join("out"));
        for dir in [&build, &out] {
            fs::create_dir(dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
        }
        let root = temp.path().join("root");
        fs::create_dir(&root).map_err(|source| Error::Write { path: root.clone(), source })?;
        spec.build = build;
        spec.out = out.clone();
        spec.root = Some(root);
        self.reporter.step_started(name);
        let started = Instant::now();
        let log = temp.path().join("log");
        let context = StepContext {
            name,
            isolation: self.options.isolation,
            spec: &spec,
            epoch: self.epoch,
            log: &log,
            cache,
            reporter: self.reporter,
            threads: self.options.threads,
        };
        let ran = match kind {
            Kind::Kernel(kernel) => crate::kernel::build(recipe, kernel, &context),
            Kind::Module(_) => match &recipe.kernel {
                Some(kernel) => crate::module::build(recipe, kernel, &context),
                None => Err(Error::Sandbox { reason: format!("module {name:?} needs the recipe's kernel") }),
            },
            Kind::Extension(extension) => crate::extension::build(recipe, name, extension, &context),
            Kind::Talos(talos) => crate::talos::build(recipe, talos, &context),
            Kind::Script(step) => context.run(&step.script),
        };
        if let Err(Error::StepFailed { exit, tail, .. }) = ran {
            let kept = cache.failed_log(&self.recipe.meta.name, name);
            fs::rename(&log, &kept).map_err(|source| Error::Write { path: kept.clone(), source })?;
            return Err(Error::StepFailed { exit, log: kept, tail });
        }
        ran?;
        let seconds = started.elapsed().as_secs_f64();
        let output = crate::tree::digest(&out)?;
        // The entry is the step's out/, log and meta.json; /build and the sandbox's root go.
        for scratch in ["build", "root"] {
            let path = temp.path().join(scratch);
            crate::extract::make_writable(&path);
            fs::remove_dir_all(&path).map_err(|source| Error::Write { path: path.clone(), source })?;
        }
        write_meta(temp.path(), &key, &output)?;
        let staged = temp.keep();
        if let Err(source) = fs::rename(&staged, &entry) {
            return Err(Error::Write { path: entry, source });
        }
        Ok(StepResult {
            step: name.to_owned(),
            key,
            cached: false,
            pulled: None,
            pushed: None,
            seconds,
            output,
        })
    }
}

/// The build's epoch: `SOURCE_DATE_EPOCH`, else the recipe's.
pub(crate) fn epoch(recipe: &Recipe) -> Result<Epoch> {
    Epoch::from_env(recipe.meta.source_date_epoch.map(Epoch::from_secs)).map_err(|error| Error::Recipe {
        path: recipe.dir.join(crate::recipe::FILE_NAME),
        line: None,
        reason: error.to_string(),
    })
}

/// What a running step works with.
pub(crate) struct StepContext<'a> {
    /// The step's name.
    pub(crate) name: &'a str,
    pub(crate) isolation: &'a dyn Isolation,
    pub(crate) spec: &'a Spec,
    pub(crate) epoch: Epoch,
    /// The step's log file.
    pub(crate) log: &'a Path,
    pub(crate) cache: &'a Cache,
    pub(crate) reporter: &'a dyn Reporter,
    /// Threads for work kiln does itself (compression).
    pub(crate) threads: NonZeroUsize,
}

impl StepContext<'_> {
    /// Runs a script in the step's sandbox, its output to the log and the reporter.
    pub(crate) fn run(&self, script: &str) -> Result<()> {
        self.run_with(script, &mut |_| {})
    }

    /// [`run`](Self::run), also handing each output line to `on_line`.
    pub(crate) fn run_with(&self, script: &str, on_line: &mut dyn FnMut(&str)) -> Result<()> {
        sandbox::run_logged(self.isolation, self.spec, script, self.log, &mut |line| {
            on_line(line);
            self.reporter.step_output(self.name, line);
        })
    }

    /// Where an input (`NAME` or `NAME/PATH`) of a step kiln runs itself is on the host.
    pub(crate) fn input_path(&self, reference: &str) -> Result<PathBuf> {
        let (name, path) = crate::recipe::split_reference(reference);
        let mount = format!("/inputs/{name}");
        let input = self.spec.inputs.iter().find(|input| input.path == mount).ok_or_else(|| {
            Error::Sandbox { reason: format!("step {:?} has no input {name:?}", self.name) }
        })?;
        let Some(path) = path else { return Ok(input.host.clone()) };
        // The input is untrusted code's tree: the path is resolved in it, through no link.
        let relative = crate::beneath::relative(&input.host, path)?;
        crate::beneath::path(&input.host, &relative).map_err(|error| match error {
            crate::beneath::Error::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::Read {
                    path: input.host.join(&relative),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("{reference} names nothing"),
                    ),
                }
            }
            error => error.into(),
        })
    }

    /// Appends lines to the step's log and reports them.
    pub(crate) fn note(&self, lines: &[String]) -> Result<()> {
        let mut text = String::new();
        for line in lines {
            self.reporter.step_output(self.name, line);
            text.push_str(line);
            text.push('\n');
        }
        let mut file = fs::File::options()
            .create(true)
            .append(true)
            .open(self.log)
            .map_err(|source| Error::Write { path: self.log.to_owned(), source })?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .map_err(|source| Error::Write { path: self.log.to_owned(), source })
    }
}

/// What a step is.
#[derive(Clone, Copy)]
enum Kind<'r> {
    Kernel(&'r crate::recipe::Kernel),
    Module(&'r crate::recipe::Module),
    Extension(&'r crate::recipe::Extension),
    Talos(&'r crate::recipe::Talos),
    Script(&'r crate::recipe::Step),
}

impl<'r> Kind<'r> {
    fn of(recipe: &'r Recipe, name: &str) -> Result<Kind<'r>> {
        if let Some(kernel) = recipe.kernel.as_ref().filter(|_| recipe.is_kernel(name)) {
            return Ok(Kind::Kernel(kernel));
        }
        if let Some(module) = recipe.modules.get(name) {
            return Ok(Kind::Module(module));
        }
        if let Some(extension) = recipe.extensions.get(name) {
            return Ok(Kind::Extension(extension));
        }
        if let Some(talos) = recipe.talos.as_ref().filter(|_| recipe.is_talos(name)) {
            return Ok(Kind::Talos(talos));
        }
        match recipe.steps.get(name) {
            Some(step) => Ok(Kind::Script(step)),
            None => Err(Error::Sandbox { reason: format!("no step {name:?}") }),
        }
    }
}

/// Writes the `meta.json` of a cache entry being made in `dir`.
pub(crate) fn write_meta(dir: &Path, key: &str, output: &str) -> Result<()> {
    let meta = serde_json::to_vec(&Meta { key: key.to_owned(), output: output.to_owned() })
        .map_err(|e| Error::Sandbox { reason: e.to_string() })?;
    let path = dir.join("meta.json");
    fs::write(&path, meta).map_err(|source| Error::Write { path, source })
}

/// The output digest of a cache entry, if it is complete and its output still has it.
fn cached_output(entry: &Path) -> Result<Option<String>> {
    let Ok(meta) = fs::read(entry.join("meta.json")) else { return Ok(None) };
    let Ok(meta) = serde_json::from_slice::<Meta>(&meta) else { return discard(entry) };
    match crate::tree::digest(&entry.join("out")) {
        Ok(digest) if digest == meta.output => Ok(Some(digest)),
        _ => discard(entry),
    }
}

/// Removes a damaged entry so the step runs again.
fn discard(entry: &Path) -> Result<Option<String>> {
    crate::extract::make_writable(entry);
    fs::remove_dir_all(entry).map_err(|source| Error::Write { path: entry.to_owned(), source })?;
    Ok(None)
}
