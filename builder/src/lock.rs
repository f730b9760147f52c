//! `kiln.lock`: what the sources of a recipe resolved to, and what made the outputs.
//!
//! Written by `kiln lock` (and by the first `kiln build` of a recipe without one): per source
//! its origin, SHA-256 (and SHA-512 when pinned so) and size; the kiln version; the compression
//! backends' identities. `kiln build` refuses a recipe whose sources do not match the lock, and
//! a fetched file that does not match it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

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
}

impl Lock {
    /// The lock for `recipe` with its sources fetched.
    pub fn new(recipe: &Recipe, fetched: &BTreeMap<String, Fetched>) -> Lock {
        let sources = recipe
            .sources
            .iter()
            .filter(|(_, source)| !source::is_local_dir(recipe, source))
            .filter_map(|(name, source)| {
                let fetched = fetched.get(name)?;
                Some((
                    name.clone(),
                    LockedSource {
                        origin: source::recipe_origin(source),
                        sha256: fetched.sha256.clone().unwrap_or_default(),
                        sha512: source.sha512.clone(),
                        size: fetched.size.unwrap_or(0),
                    },
                ))
            })
            .collect();
        Lock {
            version: 1,
            kiln: env!("CARGO_PKG_VERSION").to_owned(),
            compression: kiln_layers::compress::identities()
                .into_iter()
                .map(|(algorithm, identity)| (algorithm.to_owned(), identity))
                .collect(),
            sources,
        }
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

/// Fetches every source of `recipe` and writes its `kiln.lock`. Sources that cannot be had
/// (unreachable, or offline and not cached) are left out of the lock it writes, and then
/// reported together as [`Error::MissingSources`].
pub fn lock(recipe: &Recipe, cache: &crate::cache::Cache, options: &source::FetchOptions) -> Result<Lock> {
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
    let lock = Lock::new(recipe, &fetched);
    lock.write(&recipe.dir)?;
    if missing.is_empty() { Ok(lock) } else { Err(Error::MissingSources { missing, blocked: Vec::new() }) }
}
