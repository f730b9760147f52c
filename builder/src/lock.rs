//! `kiln.lock`: what the sources of a recipe resolved to, and what made the outputs.
//!
//! Written by `kiln lock` (and by the first `kiln build` of a recipe without one): per source
//! its origin, SHA-256 (and SHA-512 when pinned so) and size; the kiln version; the compression
//! backends' identities. `kiln build` refuses a recipe whose sources do not match the lock, and
//! a fetched file that does not match it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::dpkg::Database;
use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::source::{self, Fetched};

/// The lock file's name in a recipe directory.
pub const FILE_NAME: &str = "kiln.lock";

const HEADER: &str = "# Written by `kiln lock`. It records what the recipe's sources resolved to;\n\
                      # `kiln build` refuses sources that do not match it.\n";

/// The lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Format version, 1.
    pub version: u32,
    /// The kiln version that wrote it.
    pub kiln: String,
    /// Compression backends by algorithm (see `kiln_layers::compress::identities`).
    pub compression: BTreeMap<String, String>,
    /// Sources by name.
    #[serde(default)]
    pub sources: BTreeMap<String, LockedSource>,
}

/// One resolved source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedSource {
    /// The recipe's path or URL.
    pub origin: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// SHA-512 of the file, when the recipe pins it so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// For a file a Debian package installs: the package, as the recipe names it…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// …its version when the file was locked…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// …and its architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// A source a Debian package installs whose file on this host is not the one `kiln.lock`
/// pins (or is gone): what a build says before it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StalePackage {
    /// The source's name.
    pub name: String,
    /// The file the package installs.
    pub path: PathBuf,
    /// The package.
    pub package: String,
    /// The version kiln.lock was written with.
    pub locked_version: String,
    /// The version installed here, if any.
    pub installed_version: Option<String>,
    /// Whether there is a file at `path` (with other bytes).
    pub found: bool,
    /// The recipe directory (for the command that re-locks it).
    pub recipe: PathBuf,
}

impl StalePackage {
    /// The two ways on: re-lock to this host's package, or install the locked version.
    pub fn hint(&self) -> String {
        let StalePackage { name, package, locked_version, recipe, .. } = self;
        format!(
            "to build with this host's package, re-lock that source: `kiln lock --update {name} {}` \
             (its outputs change; keep the new kiln.lock); to build what the lock pins, install \
             {package}={locked_version} (`apt-get install {package}={locked_version}` where the \
             archive still has it)",
            recipe.display()
        )
    }
}

impl std::fmt::Display for StalePackage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let StalePackage { name, path, package, locked_version: locked, .. } = self;
        let what = if self.found { "is not the file kiln.lock pins" } else { "is missing" };
        write!(f, "source {name:?}: {} {what}: ", path.display())?;
        match self.installed_version.as_deref() {
            None => write!(f, "Debian package {package} is not installed here; kiln.lock has {locked}"),
            Some(installed) if installed == locked => write!(
                f,
                "Debian package {package} is {installed} as kiln.lock has, but its file was changed \
                 since (dpkg --verify {package})"
            ),
            Some(installed) => {
                write!(f, "Debian package {package} is {installed} on this host, kiln.lock has {locked}")
            }
        }
    }
}

/// What `kiln lock --update` did to one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The source's name.
    pub name: String,
    /// Its entry before, if it had one.
    pub before: Option<LockedSource>,
    /// Its entry now.
    pub after: LockedSource,
}

impl Lock {
    /// The lock for `recipe` with its sources fetched. A file a Debian package installs is
    /// recorded with the package's version, once the host's package database vouches for the
    /// bytes fetched into `cache`.
    pub fn new(recipe: &Recipe, fetched: &BTreeMap<String, Fetched>, cache: &Cache) -> Result<Lock> {
        let mut sources = BTreeMap::new();
        for name in recipe.sources.iter().filter(|(_, s)| !source::is_local_dir(recipe, s)).map(|(n, _)| n) {
            if let Some(fetched) = fetched.get(name) {
                sources.insert(name.clone(), entry(recipe, name, fetched, cache)?);
            }
        }
        Ok(Lock {
            version: 1,
            kiln: env!("CARGO_PKG_VERSION").to_owned(),
            compression: kiln_layers::compress::identities()
                .into_iter()
                .map(|(algorithm, identity)| (algorithm.to_owned(), identity))
                .collect(),
            sources,
        })
    }

    /// Reads `DIR/kiln.lock`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Lock>> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        toml::from_str(&text).map(Some).map_err(|error| Error::Recipe {
            line: error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1),
            path,
            reason: error.message().to_owned(),
        })
    }

    /// Writes `DIR/kiln.lock` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let body = toml::to_string(self).map_err(|error| Error::Recipe {
            path: path.clone(),
            line: None,
            reason: error.to_string(),
        })?;
        let write_error = |source| Error::Write { path: path.clone(), source };
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
        std::io::Write::write_all(&mut temp, format!("{HEADER}\n{body}").as_bytes()).map_err(write_error)?;
        temp.persist(&path).map_err(|error| write_error(error.error))?;
        Ok(())
    }

    /// Whether the recipe's sources are the ones locked.
    pub fn check(&self, recipe: &Recipe) -> Result<()> {
        let mismatch = |name: &str, reason: String| Error::LockMismatch { name: name.to_owned(), reason };
        for (name, source) in recipe.sources.iter().filter(|(_, s)| !source::is_local_dir(recipe, s)) {
            // Not locked yet (it could not be fetched when the lock was written): a recipe pin
            // still governs it, and a source pinned only by the lock is reported by the steps
            // that need it.
            let Some(locked) = self.sources.get(name) else {
                continue;
            };
            let origin = source::origin(recipe, source);
            let recipe_origin = source::recipe_origin(source);
            if locked.origin != recipe_origin {
                return Err(mismatch(
                    name,
                    format!("the recipe takes it from {origin}, kiln.lock from {}", locked.origin),
                ));
            }
            if let Some(package) = &source.package {
                match (&locked.package, &locked.version) {
                    (Some(locked_package), Some(_)) if locked_package == package => {}
                    (Some(locked_package), _) => {
                        return Err(mismatch(
                            name,
                            format!(
                                "the recipe says package {package} installs it, kiln.lock {locked_package}"
                            ),
                        ));
                    }
                    (None, _) => {
                        return Err(mismatch(
                            name,
                            format!(
                                "kiln.lock does not record the version of package {package}, which installs it"
                            ),
                        ));
                    }
                }
            }
            let pinned_sha256 = source
                .sha256
                .clone()
                .or_else(|| source::image_digest(source).map(|d| d.encoded().to_owned()));
            if let Some(sha256) = &pinned_sha256
                && *sha256 != locked.sha256
            {
                return Err(mismatch(
                    name,
                    format!("the recipe pins sha256 {sha256}, kiln.lock has {}", locked.sha256),
                ));
            }
            if let Some(sha512) = &source.sha512
                && Some(sha512) != locked.sha512.as_ref()
            {
                return Err(mismatch(
                    name,
                    format!("the recipe pins sha512 {sha512}, kiln.lock has another"),
                ));
            }
        }
        let locked =
            |name: &String| recipe.sources.get(name).is_some_and(|s| !source::is_local_dir(recipe, s));
        if let Some(name) = self.sources.keys().find(|name| !locked(name)) {
            return Err(mismatch(name, "kiln.lock has it, the recipe does not".into()));
        }
        Ok(())
    }

    /// Whether a fetched source is the file locked.
    pub fn check_fetched(&self, name: &str, fetched: &Fetched) -> Result<()> {
        match (self.sources.get(name), &fetched.sha256) {
            (Some(locked), Some(sha256)) if fetched.overridden || locked.sha256 == *sha256 => Ok(()),
            (Some(locked), Some(sha256)) => Err(Error::LockMismatch {
                name: name.to_owned(),
                reason: format!("kiln.lock has sha256 {}, the fetched file {sha256}", locked.sha256),
            }),
            _ => Ok(()),
        }
    }
}

/// The lock's entry for a fetched source.
fn entry(recipe: &Recipe, name: &str, fetched: &Fetched, cache: &Cache) -> Result<LockedSource> {
    let source = &recipe.sources[name];
    let sha256 = fetched.sha256.clone().unwrap_or_default();
    let mut entry = LockedSource {
        origin: source::recipe_origin(source),
        sha256: sha256.clone(),
        sha512: source.sha512.clone(),
        size: fetched.size.unwrap_or(0),
        package: None,
        version: None,
        architecture: None,
    };
    if let (Some(package), Some(path)) = (&source.package, &source.path) {
        if fetched.overridden {
            return Err(Error::Fetch {
                name: name.to_owned(),
                origin: path.display().to_string(),
                reason: format!(
                    "kiln.lock records the file package {package} installs, not a --source replacement"
                ),
            });
        }
        let package_error = |source| Error::Package { name: name.to_owned(), source: Box::new(source) };
        let installed = Database::host().holding(package, path).map_err(package_error)?;
        // The bytes kept in the cache, which builds use, are the ones the package installed.
        installed.verify(path, &cache.source(&sha256)).map_err(package_error)?;
        entry.package = Some(installed.package);
        entry.version = Some(installed.version);
        entry.architecture = Some(installed.architecture);
    }
    Ok(entry)
}

/// Re-locks the sources `names` of `recipe` and nothing else: each is fetched afresh (a
/// Debian package's file as the host has it now) and its entry replaced; every other entry of
/// the existing `kiln.lock` is kept as it is, fetched or not.
pub fn update(
    recipe: &Recipe,
    names: &[String],
    cache: &Cache,
    options: &source::FetchOptions,
) -> Result<(Lock, Vec<Update>)> {
    let lock_path = recipe.dir.join(FILE_NAME);
    let invalid = |reason: String| Error::Recipe { path: lock_path.clone(), line: None, reason };
    let Some(mut lock) = Lock::read(&recipe.dir)? else {
        return Err(invalid(format!(
            "there is no {FILE_NAME} to update: `kiln lock {}` writes one",
            recipe.dir.display()
        )));
    };
    let mut updates = Vec::new();
    for name in names {
        let lockable = recipe.sources.get(name).filter(|source| !source::is_local_dir(recipe, source));
        if lockable.is_none() {
            let known: Vec<&str> = recipe
                .sources
                .iter()
                .filter(|(_, source)| !source::is_local_dir(recipe, source))
                .map(|(name, _)| name.as_str())
                .collect();
            return Err(invalid(format!(
                "--update {name}: the recipe has no source {name:?} that kiln.lock pins (those it pins: {})",
                known.join(", ")
            )));
        }
        let fetched = source::fetch(recipe, name, cache, options, None)?;
        let after = entry(recipe, name, &fetched, cache)?;
        let before = lock.sources.insert(name.clone(), after.clone());
        updates.push(Update { name: name.clone(), before, after });
    }
    lock.write(&recipe.dir)?;
    Ok((lock, updates))
}

/// Fetches every source of `recipe` and writes its `kiln.lock`. Sources that cannot be had
/// (unreachable, or offline and not cached) are left out of the lock it writes, and then
/// reported together as [`Error::MissingSources`].
pub fn lock(recipe: &Recipe, cache: &Cache, options: &source::FetchOptions) -> Result<Lock> {
    let mut fetched = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, source) in &recipe.sources {
        if source::is_local_dir(recipe, source) {
            continue;
        }
        match source::fetch(recipe, name, cache, options, None) {
            Ok(one) => {
                fetched.insert(name.clone(), one);
            }
            Err(Error::Fetch { name, origin, reason }) => {
                missing.push(format!("source {name:?} ({origin}): {reason}"));
            }
            Err(Error::Offline { name, origin, .. }) => {
                missing.push(format!("source {name:?} ({origin}): not in the cache, and offline"));
            }
            Err(error) => return Err(error),
        }
    }
    let lock = Lock::new(recipe, &fetched, cache)?;
    lock.write(&recipe.dir)?;
    if missing.is_empty() { Ok(lock) } else { Err(Error::MissingSources { missing, blocked: Vec::new() }) }
}
