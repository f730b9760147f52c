//! Sources: fetched into the cache, verified against their pins, extracted when asked.
//!
//! A `path` source is copied into the cache, an `http(s)` source downloaded into it, both
//! hashed on the way and renamed into place only when the checksum matches the recipe. A
//! cached file is checked again before each use, so a damaged cache entry is fetched anew.
//! `--offline` takes URL and image sources from the cache only (files on this host are read
//! where they are). `--source NAME=PATH` replaces a source for local
//! development: a directory is used as the extracted tree, a file as the source file, neither
//! checked against the pin.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256, Sha512};

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::extract::{self, Options};
use crate::recipe::{Recipe, Source};

/// How sources are obtained.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Use the cache only.
    pub offline: bool,
    /// Local replacements by source name.
    pub overrides: std::collections::BTreeMap<String, PathBuf>,
}

/// A source ready for the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The file or extracted tree the steps see.
    pub path: PathBuf,
    /// What the steps' cache keys use: the pinned SHA-256 or SHA-512 (`sha256:…`), or for an
    /// override the digest of what is there now.
    pub identity: String,
    /// SHA-256 of the file (not of an override directory).
    pub sha256: Option<String>,
    /// Size of the file in bytes.
    pub size: Option<u64>,
    /// Whether a local override replaced it.
    pub overridden: bool,
}

/// The name the image of an image source has in its cached layout.
pub const IMAGE_NAME: &str = "source:pinned";

/// The digest a source's pin promises, as `algorithm:hex` (SHA-256 when both are given; an
/// image's manifest digest).
pub fn pinned_identity(source: &Source) -> String {
    if let Some(digest) = image_digest(source) {
        return format!("image:{digest}");
    }
    match (&source.sha256, &source.sha512) {
        (Some(sha256), _) => format!("sha256:{sha256}"),
        (None, Some(sha512)) => format!("sha512:{sha512}"),
        (None, None) => String::new(),
    }
}

/// Whether a source is a directory of the recipe itself: used in place, identified by its
/// content, never pinned or locked.
pub fn is_local_dir(recipe: &Recipe, source: &Source) -> bool {
    source.url.is_none() && recipe.source_path(source).is_some_and(|path| path.is_dir())
}

/// The identity a step's key uses for a source: its pin, or the content of a local directory.
pub fn identity(recipe: &Recipe, source: &Source) -> Result<String> {
    match recipe.source_path(source).filter(|_| is_local_dir(recipe, source)) {
        Some(path) => Ok(format!("tree:sha256:{}", crate::tree::digest_as_committed(&path)?)),
        None => Ok(pinned_identity(source)),
    }
}

/// Source `name` with its pin: the recipe's, or for a `locked` source the one `kiln.lock`
/// records (a URL's SHA-256, an image tag's manifest digest). A locked source the lock does not
/// have is [`Error::Unpinned`].
pub fn resolve(recipe: &Recipe, name: &str, lock: Option<&crate::lock::Lock>) -> Result<Source> {
    let source = &recipe.sources[name];
    if !source.pinned_by_lock() {
        return Ok(source.clone());
    }
    let entry =
        lock.and_then(|lock| lock.sources.get(name)).filter(|entry| entry.origin == recipe_origin(source));
    let Some(entry) = entry else {
        return Err(Error::Unpinned { name: name.to_owned(), origin: origin(recipe, source) });
    };
    let mut pinned = source.clone();
    match &source.image {
        Some(image) => {
            let reference: kiln_registry::reference::ImageRef =
                image.parse().map_err(|e: kiln_registry::Error| Error::Fetch {
                    name: name.to_owned(),
                    origin: image.clone(),
                    reason: e.to_string(),
                })?;
            pinned.image =
                Some(format!("{}/{}@sha256:{}", reference.registry, reference.repository, entry.sha256));
        }
        None => {
            pinned.sha256 = Some(entry.sha256.clone());
            pinned.sha512 = entry.sha512.clone();
        }
    }
    Ok(pinned)
}

/// Makes source `name` available: cached, verified, extracted if the recipe says so. `lock`
/// pins `locked` sources; without it they are resolved afresh (what `kiln lock` does).
pub fn fetch(
    recipe: &Recipe,
    name: &str,
    cache: &Cache,
    options: &FetchOptions,
    lock: Option<&crate::lock::Lock>,
) -> Result<Fetched> {
    if let Some(path) = options.overrides.get(name) {
        let digest = crate::tree::digest(path)?;
        let is_file = path.is_file();
        let source = &recipe.sources[name];
        // A file given for a source the recipe unpacks (a release tarball) is unpacked the same
        // way; an image source's override is its layout or tree, used as it is.
        let unpacked_path = if is_file && source.unpack && source.image.is_none() {
            let tree = cache.unpacked(&digest, source.strip_components);
            let options = Options { strip_components: source.strip_components, ..Options::default() };
            unpacked(&tree, |dest| extract::extract(path, dest, options))?;
            tree
        } else {
            path.clone()
        };
        return Ok(Fetched {
            path: unpacked_path,
            identity: format!("override:sha256:{digest}"),
            sha256: is_file.then(|| digest.clone()),
            size: if is_file { fs::metadata(path).ok().map(|m| m.len()) } else { None },
            overridden: true,
        });
    }
    let resolved = match lock {
        Some(_) => resolve(recipe, name, lock)?,
        None => recipe.sources[name].clone(),
    };
    let source = &resolved;
    if let Some(path) = recipe.source_path(source).filter(|_| is_local_dir(recipe, source)) {
        return local_dir(cache, &path);
    }
    if source.image.is_some() {
        return fetch_image(recipe, name, source, cache, options);
    }
    let lock_name = match pinned_identity(source) {
        pin if pin.is_empty() => format!("url-{}", hex::encode(Sha256::digest(origin(recipe, source)))),
        pin => format!("source-{}", pin.replace(':', "-")),
    };
    let _lock = cache.lock(&lock_name)?;
    let file = match cached(cache, source)? {
        Some(file) => file,
        // Offline means no network: a file on this host is read where it is.
        None if options.offline && source.url.is_some() => {
            return Err(Error::Offline {
                name: name.to_owned(),
                origin: origin(recipe, source),
                cache: cache.root().to_owned(),
            });
        }
        None => download(recipe, name, source, cache).map_err(|error| match (&source.package, lock) {
            (Some(package), Some(lock)) => package_changed(recipe, name, package, lock, error),
            _ => error,
        })?,
    };
    let size = fs::metadata(&file).map_err(|e| Error::Read { path: file.clone(), source: e })?.len();
    let sha256 = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let path = if source.unpack {
        let sha = sha256.clone().unwrap_or_default();
        let tree = cache.unpacked(&sha, source.strip_components);
        let options = Options { strip_components: source.strip_components, ..Options::default() };
        unpacked(&tree, |dest| extract::extract(&file, dest, options))?;
        tree
    } else {
        file
    };
    // A locked source fetched without the lock is identified by what it resolved to.
    let identity = match pinned_identity(source) {
        pin if pin.is_empty() => format!("sha256:{}", sha256.clone().unwrap_or_default()),
        pin => pin,
    };
    Ok(Fetched { path, identity, sha256, size: Some(size), overridden: false })
}

/// Whether the file a path source names, as it is on this host now, matches its pin (the
/// build takes a source's pinned bytes from the cache when they are there, without reading the
/// path again). A package's file that does not is [`Error::PackageChanged`]. A directory, or a
/// source with no path, holds.
pub fn verify_here(recipe: &Recipe, name: &str, lock: Option<&crate::lock::Lock>) -> Result<()> {
    let source = resolve(recipe, name, lock)?;
    let Some(path) = recipe.source_path(&source).filter(|_| !is_local_dir(recipe, &source)) else {
        return Ok(());
    };
    let checked = hash_file(&path)
        .and_then(|(sha256, sha512)| matches_pins(name, &origin(recipe, &source), &source, &sha256, &sha512));
    match (checked, &source.package, lock) {
        (Err(error), Some(package), Some(lock)) => Err(package_changed(recipe, name, package, lock, error)),
        (checked, ..) => checked,
    }
}

/// A package's file that is not the one `lock` pins, or is gone, as [`Error::PackageChanged`]:
/// the package, its locked version and the one installed now.
fn package_changed(
    recipe: &Recipe,
    name: &str,
    package: &str,
    lock: &crate::lock::Lock,
    error: Error,
) -> Error {
    let found = match &error {
        Error::ChecksumMismatch { .. } => true,
        Error::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => false,
        _ => return error,
    };
    let (Some(locked), Some(path)) = (lock.sources.get(name), recipe.sources[name].path.clone()) else {
        return error;
    };
    Error::PackageChanged(Box::new(crate::lock::StalePackage {
        name: name.to_owned(),
        path,
        package: package.to_owned(),
        locked_version: locked.version.clone().unwrap_or_default(),
        installed_version: crate::dpkg::Database::host().version(package).ok().flatten(),
        found,
        recipe: recipe.dir.clone(),
    }))
}

/// A directory of the recipe, as the steps see it: a copy in the cache with the modes version
/// control keeps, so a checkout made under another umask gives the same inputs.
fn local_dir(cache: &Cache, path: &Path) -> Result<Fetched> {
    let digest = crate::tree::digest_as_committed(path)?;
    let copy = cache.local(&digest);
    let _lock = cache.lock(&format!("local-{digest}"))?;
    let intact = copy.is_dir() && crate::tree::digest_as_committed(&copy)? == digest;
    if !intact {
        if copy.exists() {
            extract::make_writable(&copy);
            fs::remove_dir_all(&copy).map_err(|source| Error::Write { path: copy.clone(), source })?;
        }
        let work = cache.temp_dir()?;
        let staged = work.path().join("tree");
        crate::tree::copy_as_committed(path, &staged)?;
        fs::rename(&staged, &copy).map_err(|source| Error::Write { path: copy.clone(), source })?;
    }
    Ok(Fetched {
        identity: format!("tree:sha256:{digest}"),
        path: copy,
        sha256: None,
        size: None,
        overridden: false,
    })
}

/// Where the source comes from, for messages.
pub fn origin(recipe: &Recipe, source: &Source) -> String {
    match (&source.url, &source.image, recipe.source_path(source)) {
        (Some(url), _, _) => url.clone(),
        (None, Some(image), _) => image.clone(),
        (None, None, Some(path)) => path.display().to_string(),
        (None, None, None) => String::new(),
    }
}

/// Where the source comes from, as the recipe writes it (what `kiln.lock` records).
pub fn recipe_origin(source: &Source) -> String {
    source
        .url
        .clone()
        .or_else(|| source.image.clone())
        .or_else(|| source.path.as_ref().map(|p| p.display().to_string()))
        .unwrap_or_default()
}

/// The manifest digest an image source is pinned to.
pub fn image_digest(source: &Source) -> Option<kiln_layers::digest::Digest> {
    source.image.as_ref()?.parse::<kiln_registry::reference::ImageRef>().ok()?.digest
}

/// Pulls an image source into the cache (an OCI layout holding it as [`IMAGE_NAME`]), and
/// extracts it if asked.
fn fetch_image(
    recipe: &Recipe,
    name: &str,
    source: &Source,
    cache: &Cache,
    options: &FetchOptions,
) -> Result<Fetched> {
    let origin = origin(recipe, source);
    let fetch_error = |reason: String| Error::Fetch { name: name.to_owned(), origin: origin.clone(), reason };
    let reference: kiln_registry::reference::ImageRef =
        source
            .image
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e: kiln_registry::Error| fetch_error(e.to_string()))?;
    let digest = match reference.digest.clone() {
        Some(digest) => digest,
        None if source.locked && !options.offline => resolve_tag(&reference, source, cache, &fetch_error)?,
        None if source.locked => {
            return Err(Error::Offline { name: name.to_owned(), origin, cache: cache.root().to_owned() });
        }
        None => return Err(fetch_error("the image is not pinned by a digest".into())),
    };
    let hex = digest.encoded().to_owned();
    let layout = cache.image(&hex);
    let _lock = cache.lock(&format!("image-{hex}"))?;
    if !layout.join("index.json").is_file() {
        if options.offline {
            return Err(Error::Offline { name: name.to_owned(), origin, cache: cache.root().to_owned() });
        }
        let client_options = kiln_registry::client::ClientOptions {
            insecure_http: source.insecure_http,
            ..Default::default()
        };
        let client = kiln_registry::client::Client::new(&reference.registry, &client_options)
            .map_err(|e| fetch_error(e.to_string()))?;
        let temp = cache.temp_dir()?;
        let staged = temp.path().join("layout");
        let image_name = IMAGE_NAME.parse().map_err(|e: kiln_layers::Error| fetch_error(e.to_string()))?;
        kiln_registry::pull::pull(&client, &reference, &staged, &image_name)
            .map_err(|e| fetch_error(error_chain(&e)))?;
        fs::rename(&staged, &layout).map_err(|e| Error::Write { path: layout.clone(), source: e })?;
    }
    let path = if source.unpack {
        let tree = cache.unpacked(&hex, 0).with_extension("image");
        unpacked(&tree, |dest| extract::extract_image(&layout, IMAGE_NAME, dest))?;
        tree
    } else {
        layout
    };
    let identity = match pinned_identity(source) {
        pin if pin.is_empty() => format!("image:sha256:{hex}"),
        pin => pin,
    };
    Ok(Fetched { path, identity, sha256: Some(hex), size: None, overridden: false })
}

/// Pulls a tagged image (for `kiln lock`) into the cache under the digest the tag resolves to.
fn resolve_tag(
    reference: &kiln_registry::reference::ImageRef,
    source: &Source,
    cache: &Cache,
    fetch_error: &dyn Fn(String) -> Error,
) -> Result<kiln_layers::digest::Digest> {
    let client_options =
        kiln_registry::client::ClientOptions { insecure_http: source.insecure_http, ..Default::default() };
    let client = kiln_registry::client::Client::new(&reference.registry, &client_options)
        .map_err(|e| fetch_error(e.to_string()))?;
    let temp = cache.temp_dir()?;
    let staged = temp.path().join("layout");
    let image_name = IMAGE_NAME.parse().map_err(|e: kiln_layers::Error| fetch_error(e.to_string()))?;
    kiln_registry::pull::pull(&client, reference, &staged, &image_name)
        .map_err(|e| fetch_error(error_chain(&e)))?;
    let layout = kiln_layers::oci::layout::Layout::open(&staged)?;
    let digest = layout.find(IMAGE_NAME)?.digest.clone();
    let target = cache.image(digest.encoded());
    let _lock = cache.lock(&format!("image-{}", digest.encoded()))?;
    if !target.join("index.json").is_file() {
        fs::rename(&staged, &target).map_err(|e| Error::Write { path: target.clone(), source: e })?;
    }
    Ok(digest)
}

/// Makes `tree` an extracted source whose content still has the digest recorded when it was
/// extracted (in `TREE.digest`); a missing or damaged tree is extracted again.
fn unpacked(tree: &Path, extract: impl Fn(&Path) -> Result<extract::Extracted>) -> Result<()> {
    let record = tree.with_extension(match tree.extension() {
        Some(extension) => format!("{}.digest", extension.to_string_lossy()),
        None => "digest".to_owned(),
    });
    if tree.is_dir() {
        let recorded = fs::read_to_string(&record).unwrap_or_default();
        if !recorded.is_empty() && crate::tree::digest(tree)? == recorded.trim() {
            return Ok(());
        }
        extract::make_writable(tree);
        fs::remove_dir_all(tree).map_err(|source| Error::Write { path: tree.to_owned(), source })?;
    }
    extract(tree)?;
    let digest = crate::tree::digest(tree)?;
    let temp = record.with_extension("digest.tmp");
    fs::write(&temp, &digest).map_err(|source| Error::Write { path: temp.clone(), source })?;
    fs::rename(&temp, &record).map_err(|source| Error::Write { path: record, source })
}

/// An error and its causes on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// The cached file for a source, if present and still matching its pin.
fn cached(cache: &Cache, source: &Source) -> Result<Option<PathBuf>> {
    let candidates: Vec<PathBuf> = match (&source.sha256, &source.sha512) {
        (Some(sha256), _) => vec![cache.source(sha256)],
        // Pinned by SHA-512 only: the cache is indexed by SHA-256, so look the pin up.
        (None, Some(sha512)) => {
            fs::read_to_string(cache.root().join("sources").join(format!("sha512-{sha512}")))
                .ok()
                .map(|sha256| vec![cache.source(sha256.trim())])
                .unwrap_or_default()
        }
        (None, None) => Vec::new(),
    };
    for file in candidates {
        if !file.is_file() {
            continue;
        }
        let (sha256, sha512) = hash_file(&file)?;
        let matches = source.sha256.as_ref().is_none_or(|s| *s == sha256)
            && source.sha512.as_ref().is_none_or(|s| *s == sha512)
            && file.file_name().is_some_and(|n| n.to_string_lossy() == sha256);
        if matches {
            return Ok(Some(file));
        }
        // A damaged entry: fetch it again.
        fs::remove_file(&file).map_err(|e| Error::Write { path: file.clone(), source: e })?;
    }
    Ok(None)
}

fn hash_file(path: &Path) -> Result<(String, String)> {
    let mut file = fs::File::open(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let mut hashes = Hashes::default();
    io::copy(&mut file, &mut hashes).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    Ok(hashes.finish())
}

#[derive(Default)]
struct Hashes {
    sha256: Sha256,
    sha512: Sha512,
}

impl Hashes {
    fn finish(self) -> (String, String) {
        (hex::encode(self.sha256.finalize()), hex::encode(self.sha512.finalize()))
    }
}

impl Write for Hashes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha256.update(buf);
        self.sha512.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copies or downloads a source into the cache, hashing on the way; keeps it only if it
/// matches the pin.
fn download(recipe: &Recipe, name: &str, source: &Source, cache: &Cache) -> Result<PathBuf> {
    let temp_dir = cache.temp_dir()?;
    let temp = temp_dir.path().join("download");
    let origin = origin(recipe, source);
    let mut out = fs::File::create(&temp).map_err(|e| Error::Write { path: temp.clone(), source: e })?;
    let mut tee = Tee { file: &mut out, hashes: Hashes::default() };
    let copy_error = |reason: String| Error::Fetch { name: name.to_owned(), origin: origin.clone(), reason };
    match (&source.url, recipe.source_path(source)) {
        (Some(url), _) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_connect(Some(std::time::Duration::from_secs(30)))
                .timeout_recv_body(None)
                .http_status_as_error(false)
                .build()
                .into();
            let mut response = agent.get(url).call().map_err(|e| copy_error(e.to_string()))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(copy_error(format!("the server answered {status}")));
            }
            let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
            io::copy(&mut body, &mut tee).map_err(|e| copy_error(e.to_string()))?;
        }
        (None, Some(path)) => {
            let mut file =
                fs::File::open(&path).map_err(|e| Error::Read { path: path.clone(), source: e })?;
            io::copy(&mut file, &mut tee).map_err(|e| copy_error(e.to_string()))?;
        }
        (None, None) => return Err(copy_error("no path or url".into())),
    }
    let (sha256, sha512) = tee.hashes.finish();
    out.sync_all().map_err(|e| Error::Write { path: temp.clone(), source: e })?;
    matches_pins(name, &origin, source, &sha256, &sha512)?;
    let target = cache.source(&sha256);
    fs::rename(&temp, &target).map_err(|e| Error::Write { path: target.clone(), source: e })?;
    if let Some(sha512) = &source.sha512 {
        let index = cache.root().join("sources").join(format!("sha512-{sha512}"));
        fs::write(&index, &sha256).map_err(|e| Error::Write { path: index, source: e })?;
    }
    Ok(target)
}

/// Whether a file's digests are the ones `source` pins, as [`Error::ChecksumMismatch`] if not.
fn matches_pins(name: &str, origin: &str, source: &Source, sha256: &str, sha512: &str) -> Result<()> {
    for (algorithm, expected, actual) in
        [("sha256", &source.sha256, sha256), ("sha512", &source.sha512, sha512)]
    {
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(Error::ChecksumMismatch {
                name: name.to_owned(),
                origin: origin.to_owned(),
                algorithm,
                expected: expected.clone(),
                actual: actual.to_owned(),
            });
        }
    }
    Ok(())
}

struct Tee<'a> {
    file: &'a mut fs::File,
    hashes: Hashes,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hashes.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
