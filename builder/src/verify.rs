//! `kiln verify`: a recipe rebuilt from clean caches in perturbed environments, every image
//! digest compared with the first build's or with a release's digest file.
//!
//! Each rebuild runs `kiln build` as its own process (the program given, normally kiln itself)
//! with an empty cache of its own, on a copy of the recipe made elsewhere, in a different
//! order, with other modification times — and with a different umask, time zone, locale,
//! environment noise, compression thread count, and, where the host allows it, another user id,
//! another host name and a clock shifted by a year (`faketime`), all in the first rebuild; the
//! second runs on a single CPU (so `make -j` differs). What each rebuild changed is reported
//! with it; what the host did not allow is said, not silently skipped.
//!
//! A mismatch is explained image → layer → file, down to the first differing bytes of a file
//! ([`kiln_layers::diff`]), with the `diffoscope` command that shows it in full; the layouts are
//! kept for that.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::recipe::Recipe;

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The `kiln` program to run for each build.
    pub program: PathBuf,
    /// The recipe directory.
    pub recipe: PathBuf,
    /// How many perturbed rebuilds.
    pub rebuilds: usize,
    /// Digests to compare with (`NAME:TAG sha256:…` lines, as `kiln build` prints); when
    /// `None`, a first, unperturbed build gives them.
    pub expect: Option<Digests>,
    /// Where the builds, their caches and layouts go (kept for inspection).
    pub work: PathBuf,
}

/// Image digests by `NAME:TAG`, and the digests of their attestations' artifact manifests by
/// `NAME:TAG#sbom` and `NAME:TAG#provenance`.
pub type Digests = BTreeMap<String, String>;

/// What joins an image's name and an attestation's kind in [`Digests`].
const ATTESTATION_MARK: char = '#';
const ATTESTATIONS: [&str; 2] = ["sbom", "provenance"];

/// Reads `NAME:TAG sha256:…` lines (blank lines and `#` comments skipped).
pub fn parse_digests(text: &str, path: &Path) -> Result<Digests> {
    let mut digests = Digests::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(name, digest)| {
            let digest = digest.trim().parse::<kiln_layers::digest::Digest>().ok()?;
            (digest.algorithm().name() == "sha256" && is_digest_name(name)).then_some((name, digest))
        });
        match parsed {
            Some((name, digest)) => {
                digests.insert(name.to_owned(), digest.to_string());
            }
            None => {
                return Err(Error::Recipe {
                    path: path.to_owned(),
                    line: Some(number + 1),
                    reason: format!(
                        "{:?} is not `NAME:TAG sha256:<64 hex digits>` (NAME:TAG as kiln build prints it, or with #sbom or #provenance)",
                        line.chars().take(200).collect::<String>()
                    ),
                });
            }
        }
    }
    Ok(digests)
}

/// Whether `name` is an image's `NAME:TAG`, or one with `#sbom` or `#provenance` after it.
fn is_digest_name(name: &str) -> bool {
    let image = match name.split_once(ATTESTATION_MARK) {
        Some((image, kind)) if ATTESTATIONS.contains(&kind) => image,
        Some(_) => return false,
        None => name,
    };
    image.parse::<kiln_layers::oci::reference::Reference>().is_ok()
}

/// Hears what verification does.
pub trait Reporter {
    /// A build starts: which, and what it perturbs.
    fn build_started(&self, _label: &str, _perturbations: &[String]) {}
    /// A build ended with these digests.
    fn build_finished(&self, _label: &str, _digests: &Digests, _seconds: f64) {}
}

/// One build's result.
#[derive(Debug, Clone)]
pub struct BuildRun {
    /// `first` or `rebuild N`.
    pub label: String,
    /// What it changed.
    pub perturbations: Vec<String>,
    /// Its layout.
    pub layout: PathBuf,
    /// Its images.
    pub digests: Digests,
    /// Seconds it took.
    pub seconds: f64,
}

/// What verification found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The digests everything was compared with.
    pub expected: Digests,
    /// Where they came from: the first build's layout, or `None` for a digest file.
    pub reference: Option<PathBuf>,
    /// Every build.
    pub runs: Vec<BuildRun>,
    /// For each rebuild that differs: the image names and how (explained).
    pub mismatches: Vec<Mismatch>,
}

/// A rebuild that does not reproduce the expected digests.
#[derive(Debug, Clone)]
pub struct Mismatch {
    /// Which rebuild.
    pub label: String,
    /// Image → (expected, got); `None` for an image one side lacks.
    pub images: BTreeMap<String, (Option<String>, Option<String>)>,
    /// The explanation, line by line (image → layer → file → bytes).
    pub explanation: Vec<String>,
    /// Commands that show each difference in full.
    pub diffoscope: Vec<String>,
}

/// Runs the builds and compares them.
pub fn verify(options: &VerifyOptions, reporter: &dyn Reporter) -> Result<Verified> {
    // The builds run elsewhere: the recipe by its absolute path.
    let dir = fs::canonicalize(&options.recipe)
        .map_err(|source| Error::Read { path: options.recipe.clone(), source })?;
    let recipe = Recipe::load(&dir)?;
    fs::create_dir_all(&options.work)
        .map_err(|source| Error::Write { path: options.work.clone(), source })?;
    if rustix::process::geteuid().is_root() {
        // The rebuild as user nobody must reach its directory inside.
        fs::set_permissions(&options.work, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|source| Error::Write { path: options.work.clone(), source })?;
    }
    let mut runs = Vec::new();
    let (expected, reference) = match &options.expect {
        Some(digests) => (digests.clone(), None),
        None => {
            let first = run_build(options, &recipe, "first", &Perturbation::none(), reporter)?;
            let digests = first.digests.clone();
            let layout = first.layout.clone();
            runs.push(first);
            (digests, Some(layout))
        }
    };
    let mut mismatches = Vec::new();
    for index in 1..=options.rebuilds {
        let perturbation = Perturbation::for_rebuild(index);
        let run = run_build(options, &recipe, &format!("rebuild {index}"), &perturbation, reporter)?;
        // A digest file from a release lists images only; a first build's also attestations.
        let compared: Digests = run
            .digests
            .iter()
            .filter(|(name, _)| !name.contains(ATTESTATION_MARK) || expected.contains_key(*name))
            .map(|(name, digest)| (name.clone(), digest.clone()))
            .collect();
        if compared != expected {
            let shown = BuildRun { digests: compared, ..run.clone() };
            mismatches.push(explain(&shown, &expected, reference.as_deref())?);
        }
        runs.push(run);
    }
    Ok(Verified { expected, reference, runs, mismatches })
}

/// What one rebuild changes about its environment.
#[derive(Debug, Clone)]
struct Perturbation {
    umask: Option<&'static str>,
    tz: Option<&'static str>,
    lang: Option<&'static str>,
    threads: Option<&'static str>,
    reversed_copy: bool,
    noise: bool,
    one_cpu: bool,
    other_user: bool,
    hostname: bool,
    shifted_clock: bool,
}

impl Perturbation {
    fn none() -> Perturbation {
        Perturbation {
            umask: None,
            tz: None,
            lang: None,
            threads: None,
            reversed_copy: false,
            noise: false,
            one_cpu: false,
            other_user: false,
            hostname: false,
            shifted_clock: false,
        }
    }

    /// Rebuild 1 changes everything it can at once but the CPU count (as reprotest's one
    /// experiment build does), so a single rebuild at full speed already covers every kind of
    /// input but `make -j`'s; rebuild 2 runs on one CPU (serial `make`, twice as long on two
    /// cores) under another host name; rebuild 3 changes the files and the process's settings
    /// only, which narrows down a difference the first two found; later ones cycle.
    fn for_rebuild(index: usize) -> Perturbation {
        let round = (index - 1) % 3;
        Perturbation {
            umask: Some(["077", "002", "027"][round]),
            tz: Some(["Pacific/Chatham", "Asia/Kolkata", "America/St_Johns"][round]),
            lang: Some(["tr_TR.UTF-8", "C.UTF-8", "de_DE.ISO-8859-1"][round]),
            threads: Some(["1", "3", "7"][round]),
            reversed_copy: true,
            noise: true,
            one_cpu: round == 1,
            other_user: round == 0,
            hostname: round <= 1,
            shifted_clock: round == 0,
        }
    }
}

fn run_build(
    options: &VerifyOptions,
    recipe: &Recipe,
    label: &str,
    perturbation: &Perturbation,
    reporter: &dyn Reporter,
) -> Result<BuildRun> {
    let dir = options.work.join(label.replace(' ', "-"));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    }
    fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    let mut notes = Vec::new();
    let recipe_dir = if perturbation.reversed_copy {
        notes.push("recipe copied elsewhere, in reverse order, with other mtimes".to_owned());
        copy_recipe(recipe, &dir.join("src"))?
    } else {
        recipe.dir.clone()
    };
    let cache = dir.join("cache");
    let layout = dir.join("out");
    notes.push("empty cache".to_owned());

    let root = rustix::process::geteuid().is_root();
    let mut shell = String::new();
    let mut wrapper: Vec<String> = Vec::new();
    if let Some(umask) = perturbation.umask {
        shell.push_str(&format!("umask {umask}; "));
        notes.push(format!("umask {umask}"));
    }
    if perturbation.hostname {
        if root && tool("unshare") {
            wrapper.extend(["unshare".into(), "--uts".into()]);
            shell.push_str("hostname kiln-verify-$$; ");
            notes.push("another host name".into());
        } else {
            notes.push("host name not changed (needs root for a UTS namespace)".into());
        }
    }
    if perturbation.one_cpu {
        if tool("taskset") {
            wrapper.splice(0..0, ["taskset".to_owned(), "-c".to_owned(), "0".to_owned()]);
            notes.push("one CPU (make -j1)".into());
        } else {
            notes.push("CPU count not changed (no taskset)".into());
        }
    }
    if perturbation.shifted_clock {
        if tool("faketime") {
            shell.push_str("exec faketime -f +365d \"$@\"");
            notes.push("kiln's clock a year ahead (faketime; steps see the real clock)".into());
        } else {
            shell.push_str("exec \"$@\"");
            notes.push("clock not shifted (no faketime)".into());
        }
    } else {
        shell.push_str("exec \"$@\"");
    }
    let mut args: Vec<String> = wrapper;
    args.extend(["sh".into(), "-c".into(), shell, "sh".into()]);
    if perturbation.other_user {
        if root && tool("setpriv") {
            for path in [&dir, &cache] {
                fs::create_dir_all(path).map_err(|source| Error::Write { path: path.clone(), source })?;
            }
            chown_tree(&dir, 65534, 65534)?;
            args.extend(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].map(String::from));
            notes.push("user nobody (uid 65534)".into());
        } else {
            notes.push("user not changed (needs root)".into());
        }
    }
    args.push(options.program.display().to_string());
    args.extend(["build".to_owned(), recipe_dir.display().to_string(), "--out".to_owned()]);
    args.push(layout.display().to_string());
    args.push("--json".into());
    if let Some(threads) = perturbation.threads {
        args.extend(["--threads".to_owned(), threads.to_owned()]);
        notes.push(format!("{threads} compression thread(s)"));
    }
    let mut command = Command::new(&args[0]);
    // From an empty cache, and never from a shared one: a pulled step proves nothing.
    command
        .args(&args[1..])
        .current_dir(&dir)
        .env("KILN_CACHE", &cache)
        .env("HOME", &dir)
        .env_remove("KILN_CACHE_FROM")
        .env_remove("KILN_CACHE_TO");
    if let Some(tz) = perturbation.tz {
        command.env("TZ", tz);
        notes.push(format!("TZ={tz}"));
    }
    if let Some(lang) = perturbation.lang {
        command.env("LANG", lang).env("LC_ALL", lang);
        notes.push(format!("LANG={lang}"));
    }
    if perturbation.noise {
        command
            .env("KILN_VERIFY_NOISE", label)
            .env("CFLAGS", "-O0 -g3")
            .env("MAKEFLAGS", "-j64")
            .env("CC", "false");
        notes.push("noise in the environment (CFLAGS, MAKEFLAGS, CC, …)".into());
    }
    reporter.build_started(label, &notes);
    let started = std::time::Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Verify { reason: format!("cannot run {}: {e}", args[0]) })?;
    if !output.status.success() {
        return Err(Error::Verify {
            reason: format!(
                "the {label} build failed ({}); its files are in {}",
                output.status,
                dir.display()
            ),
        });
    }
    let built: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Verify { reason: format!("the {label} build's report: {e}") })?;
    let mut digests = Digests::new();
    for image in built["images"].as_array().into_iter().flatten() {
        let Some(name) = image["name"].as_str() else { continue };
        if let Some(digest) = image["digest"].as_str() {
            digests.insert(name.to_owned(), digest.to_owned());
        }
        for kind in ATTESTATIONS {
            if let Some(digest) = image["attestations"][kind].as_str() {
                digests.insert(format!("{name}{ATTESTATION_MARK}{kind}"), digest.to_owned());
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    reporter.build_finished(label, &digests, seconds);
    Ok(BuildRun { label: label.to_owned(), perturbations: notes, layout, digests, seconds })
}

fn tool(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|source| Error::Write { path: path.to_owned(), source })?;
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        for entry in fs::read_dir(path).map_err(|source| Error::Read { path: path.to_owned(), source })? {
            let entry = entry.map_err(|source| Error::Read { path: path.to_owned(), source })?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Copies the recipe (and the directories of path sources outside it, at the same relative
/// places) under `to`, creating entries in reverse name order with an old mtime; returns the
/// copy's recipe directory.
fn copy_recipe(recipe: &Recipe, to: &Path) -> Result<PathBuf> {
    let recipe_dir =
        fs::canonicalize(&recipe.dir).map_err(|source| Error::Read { path: recipe.dir.clone(), source })?;
    let mut roots = vec![recipe_dir.clone()];
    for source in recipe.sources.values() {
        if let Some(path) = source.path.as_ref().filter(|p| p.is_relative())
            && let Ok(full) = fs::canonicalize(recipe_dir.join(path))
            && !full.starts_with(&recipe_dir)
        {
            roots.push(full);
        }
    }
    // The deepest directory holding them all keeps their relative places.
    let mut base = recipe_dir.clone();
    while !roots.iter().all(|root| root.starts_with(&base)) {
        if !base.pop() {
            break;
        }
    }
    for root in &roots {
        let relative = root.strip_prefix(&base).unwrap_or(root);
        copy_reversed(root, &to.join(relative))?;
    }
    Ok(to.join(recipe_dir.strip_prefix(&base).unwrap_or(&recipe_dir)))
}

fn copy_reversed(from: &Path, to: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(from).map_err(|source| Error::Read { path: from.to_owned(), source })?;
    if meta.is_file() {
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|source| Error::Write { path: parent.to_owned(), source })?;
        }
        fs::copy(from, to).map_err(|source| Error::Write { path: to.to_owned(), source })?;
        return Ok(());
    }
    fs::create_dir_all(to).map_err(|source| Error::Write { path: to.to_owned(), source })?;
    let mut entries: Vec<PathBuf> = fs::read_dir(from)
        .map_err(|source| Error::Read { path: from.to_owned(), source })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries.reverse();
    for entry in entries {
        let name = entry.file_name().map(PathBuf::from).unwrap_or_default();
        let target = to.join(&name);
        let meta =
            fs::symlink_metadata(&entry).map_err(|source| Error::Read { path: entry.clone(), source })?;
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&entry).map_err(|source| Error::Read { path: entry.clone(), source })?;
            std::os::unix::fs::symlink(link, &target)
                .map_err(|source| Error::Write { path: target, source })?;
        } else {
            copy_reversed(&entry, &target)?;
            let old = fs::FileTimes::new()
                .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(981_173_106));
            if let Ok(file) = fs::File::open(&target) {
                let _ = file.set_times(old);
            }
        }
    }
    Ok(())
}

/// Explains how a rebuild differs from the expected digests.
fn explain(run: &BuildRun, expected: &Digests, reference: Option<&Path>) -> Result<Mismatch> {
    let mut images = BTreeMap::new();
    for name in expected.keys().chain(run.digests.keys()) {
        let (want, got) = (expected.get(name), run.digests.get(name));
        if want != got {
            images.insert(name.clone(), (want.cloned(), got.cloned()));
        }
    }
    let mut explanation = Vec::new();
    let mut diffoscope = Vec::new();
    let Some(reference) = reference else {
        for (name, (want, got)) in &images {
            explanation.push(format!(
                "image {name}: expected {}, built {}",
                want.as_deref().unwrap_or("(none)"),
                got.as_deref().unwrap_or("(none)")
            ));
        }
        diffoscope.push(format!("kiln inspect {}", run.layout.display()));
        return Ok(Mismatch { label: run.label.clone(), images, explanation, diffoscope });
    };
    let a = kiln_layers::oci::layout::Layout::open(reference)?;
    let b = kiln_layers::oci::layout::Layout::open(&run.layout)?;
    for name in images.keys() {
        if let Some((image, kind)) = name.split_once(ATTESTATION_MARK) {
            let suffix = if kind == "sbom" { "spdx.json" } else { "intoto.json" };
            let file = format!("{}.{suffix}", crate::attest::file_stem(image));
            let document = |layout: &Path| crate::attest::directory(layout).join(&file);
            explanation.push(format!("image {image}: its {kind} differs ({file})"));
            diffoscope.push(format!(
                "diffoscope {} {}",
                document(reference).display(),
                document(&run.layout).display()
            ));
            continue;
        }
        let side_a = kiln_layers::diff::Side { layout: &a, reference: Some(name.as_str()) };
        let side_b = kiln_layers::diff::Side { layout: &b, reference: Some(name.as_str()) };
        let report = match kiln_layers::diff::diff(&side_a, &side_b) {
            Ok(report) => report,
            Err(error) => {
                explanation.push(format!("image {name}: {error}"));
                continue;
            }
        };
        for image in &report.images {
            explanation.push(format!("image {}", image.name));
            for field in image.manifest_fields.iter().chain(&image.config_fields) {
                explanation.push(format!("  {}: {} → {}", field.field, field.a, field.b));
            }
            for layer in &image.layers {
                let digests = |d: &Option<kiln_layers::digest::Digest>| {
                    d.as_ref().map(ToString::to_string).unwrap_or_else(|| "(none)".into())
                };
                explanation.push(format!(
                    "  layer {}: {} → {}",
                    layer.index,
                    digests(&layer.a),
                    digests(&layer.b)
                ));
                for entry in &layer.entries {
                    explanation.push(format!("    {} {}", change_word(&entry.change), entry.path));
                    if let kiln_layers::diff::Change::Changed(fields) = &entry.change {
                        for field in fields {
                            explanation.push(format!("      {}: {} → {}", field.field, field.a, field.b));
                        }
                        if let (Some(da), Some(db)) = (&layer.a, &layer.b)
                            && let Some(bytes) =
                                kiln_layers::diff::first_difference(&a, da, &b, db, &entry.path)?
                        {
                            explanation.push(format!(
                                "      first difference at byte {}: {} → {}",
                                bytes.offset,
                                hex::encode(&bytes.a),
                                hex::encode(&bytes.b)
                            ));
                        }
                    }
                }
                if let Some(note) = &layer.stream_note {
                    explanation.push(format!("    {note}"));
                }
                if let (Some(da), Some(db)) = (&layer.a, &layer.b) {
                    diffoscope.push(format!(
                        "diffoscope {} {}",
                        a.blob_path(da).display(),
                        b.blob_path(db).display()
                    ));
                }
            }
        }
    }
    Ok(Mismatch { label: run.label.clone(), images, explanation, diffoscope })
}

fn change_word(change: &kiln_layers::diff::Change) -> &'static str {
    match change {
        kiln_layers::diff::Change::Added => "added",
        kiln_layers::diff::Change::Removed => "removed",
        kiln_layers::diff::Change::Changed(_) => "changed",
    }
}
