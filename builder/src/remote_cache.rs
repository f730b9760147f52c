//! The step cache shared through an OCI registry (`kiln build --cache-from/--cache-to`), so a
//! fleet of CI machines builds each step once, on the registry a team already runs.
//!
//! An entry is an OCI artifact in the cache repository, tagged `step-<key>` after the step's
//! input key ([`crate::build`]): an image manifest with `artifactType` [`ARTIFACT_TYPE`], a
//! config ([`CONFIG_MEDIA_TYPE`]: the format, the key, the digest of the step's output tree and
//! the bytes of its files, canonical JSON) and one layer ([`TREE_MEDIA_TYPE`]: the output tree
//! as tar, zstd). The tar is written like an image layer, with the build's epoch for every
//! time, owner 0 and the tree's exact permission bits, so a reproducible step makes the same
//! entry, byte for byte, on every machine: writers racing over one key put the same content.
//! A tree that an entry may not hold — a link leading out of it, a setuid or setgid file, a
//! device — is not shared ([`Event::NotShared`]).
//!
//! Reading (before a step would run, after the local cache missed): every location of
//! `--cache-from`, then `--cache-to`, is asked for the tag. A found entry is used only when
//! everything checks: manifest and blobs against their digests and sizes, the media types, the
//! key in the config against the step's, the extraction (as for any archive: nothing outside
//! the root, no link leading out of it, no more bytes than the config says), and the extracted
//! tree against the output digest in the config. Anything else — a truncated or altered blob,
//! an entry of another key retagged, a tree that is not what its config says — rejects the
//! entry ([`Event::Rejected`]) and the step runs. What cannot be detected is an entry that lies
//! consistently (a config naming the key and a tree matching it, made by someone else): the
//! trust in a shared cache is the trust in who may push to its repository, as with any remote
//! cache.
//!
//! Writing (`--cache-to`): after a step is built, pulled or found locally, the entry is pushed
//! unless the repository has one for the key that this build did not refuse. One already there
//! with another output means the step is not reproducible ([`Event::Differs`]); the first entry
//! stays. The tag is set after every blob is present, so no reader sees an incomplete entry;
//! two writers that both found no entry both push, and the tag ends on one of two complete
//! entries.
//!
//! The registry is an optimisation, never a reason for a build to fail: a registry that cannot
//! be reached or refuses access is reported once for reading and once for writing
//! ([`Event::Unavailable`]) and not used that way again during the build (read-only
//! credentials still pull). Credentials are those of `kiln push`. Without a location nothing
//! touches the network.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use kiln_layers::compress::Compression;
use kiln_layers::digest::Digest;
use kiln_layers::oci::layout::{Layout, LayoutWriter};
use kiln_layers::oci::media_type;
use kiln_layers::oci::reference::Reference;
use kiln_layers::oci::spec::{self, Descriptor, Manifest};
use kiln_layers::pack::{self, LayerOptions};
use kiln_registry::client::{Client, ClientOptions, RetryPolicy};
use kiln_registry::pull::Remote;
use kiln_registry::push::{self, PushOptions};
use kiln_reproducible::{Epoch, ModePolicy, MtimePolicy, Owner, Policy};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;

/// The `artifactType` of a cache entry.
pub const ARTIFACT_TYPE: &str = "application/vnd.kiln.step.v1";
/// The media type of an entry's config: its key and output digest.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.step.config.v1+json";
/// The media type of an entry's layer: the step's output tree as tar, zstd-compressed.
pub const TREE_MEDIA_TYPE: &str = "application/vnd.kiln.step.tree.v1.tar+zstd";

/// The entry format this kiln reads and writes.
const FORMAT: u32 = 1;
/// Larger configs are not entries of this format.
const MAX_CONFIG: u64 = 64 * 1024;
const TREE_COMPRESSION: Compression = Compression::Zstd { level: 3 };

/// The tag of the entry for a step key.
pub fn tag(key: &str) -> String {
    format!("step-{key}")
}

/// A repository holding cache entries: `[http://]REGISTRY/REPOSITORY` (`http://` for a registry
/// speaking plain HTTP, on loopback or a lab network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Host and optional port.
    pub registry: String,
    /// Repository path.
    pub repository: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure_http: bool,
}

/// A location that is not `[http://]REGISTRY/REPOSITORY`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid cache location {value:?}: {reason}")]
pub struct LocationError {
    /// The text given.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| LocationError { value: value.to_owned(), reason };
        let (rest, insecure_http) = match value.strip_prefix("http://") {
            Some(rest) => (rest, true),
            None => (value.strip_prefix("https://").unwrap_or(value), false),
        };
        let Some((registry, repository)) = rest.trim_end_matches('/').split_once('/') else {
            return Err(error("expected [http://]REGISTRY/REPOSITORY, e.g. ghcr.io/org/kiln-cache"));
        };
        if !(registry.contains(['.', ':']) || registry == "localhost") {
            return Err(error("start with the registry host, e.g. ghcr.io/org/kiln-cache"));
        }
        // The repository must name images of a layout (the entries are pushed from one).
        if format!("{repository}:{}", tag(&"0".repeat(64))).parse::<Reference>().is_err() {
            return Err(error("the repository must be lowercase path components"));
        }
        Ok(Location { registry: registry.to_owned(), repository: repository.to_owned(), insecure_http })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.insecure_http { "http://" } else { "" };
        write!(f, "{scheme}{}/{}", self.registry, self.repository)
    }
}

/// Where a build looks steps up and where it shares them.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Repositories to read entries from, in order.
    pub from: Vec<Location>,
    /// The repository to push entries to (also read, after `from`).
    pub to: Option<Location>,
    /// An extra trusted CA certificate (PEM) for the registries' TLS certificates.
    pub ca_cert: Option<PathBuf>,
}

impl RemoteOptions {
    /// Whether any location is configured.
    pub fn is_empty(&self) -> bool {
        self.from.is_empty() && self.to.is_none()
    }
}

/// What the shared cache did for a step.
#[derive(Debug, Clone)]
pub enum Event {
    /// The step's outputs were pulled instead of building it.
    Pulled {
        /// `REGISTRY/REPOSITORY:TAG@DIGEST`.
        entry: String,
        /// Compressed bytes downloaded.
        bytes: u64,
        /// Seconds it took, extraction and checks included.
        seconds: f64,
    },
    /// The step's outputs were pushed.
    Pushed {
        /// `REGISTRY/REPOSITORY:TAG@DIGEST`.
        entry: String,
        /// Compressed bytes uploaded (blobs the registry had are not counted).
        bytes: u64,
        /// Seconds it took, packing included.
        seconds: f64,
    },
    /// An entry was not used; the step runs (and, with `--cache-to`, the entry is replaced).
    Rejected {
        /// The entry.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The repository already holds an entry for the key with another output: the step did not
    /// build reproducibly. The entry there stays.
    Differs {
        /// The entry.
        entry: String,
        /// Its output digest.
        theirs: String,
        /// This build's.
        ours: String,
    },
    /// The step's outputs are not shared: they hold what an entry may not (a link leading out
    /// of the tree, a setuid file, a device), or this machine could not pack or store them.
    NotShared {
        /// Why.
        reason: String,
    },
    /// A registry could not be used for pulls, pushes or both; the build goes on without it.
    Unavailable {
        /// The location.
        location: String,
        /// `"pulls"`, `"pushes"` or `"pulls and pushes"`: what it is no longer used for.
        access: &'static str,
        /// Why.
        reason: String,
    },
}

/// The locations of a build and the clients talking to them.
pub(crate) struct Shared {
    endpoints: Vec<Endpoint>,
    /// Index of the `--cache-to` location in `endpoints`.
    to: Option<usize>,
    ca_cert: Option<PathBuf>,
    threads: NonZeroUsize,
    /// Entries (`REGISTRY/REPOSITORY@DIGEST`) this build refused: replaced when pushing.
    rejected: BTreeSet<String>,
}

struct Endpoint {
    location: Location,
    /// `None` until first used.
    client: Option<Client>,
    /// Set after it failed for reading, or for writing: that is not tried again.
    read_off: bool,
    write_off: bool,
}

/// What a lookup found under a key's tag.
enum Found {
    Missing,
    Entry { manifest: Box<Manifest>, digest: Digest, config: EntryConfig },
}

/// An entry this build pushed.
struct Uploaded {
    entry: String,
    bytes: u64,
    seconds: f64,
}

/// Why a lookup or transfer failed.
enum Failure {
    /// The entry is not usable.
    Rejected(String),
    /// The registry is not.
    Unavailable(String),
    /// This machine could not do its part (a full disk, a tree that cannot be shared).
    Local(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryConfig {
    format: u32,
    key: String,
    /// The output tree's digest ([`crate::tree::digest`]).
    output: String,
    /// The bytes of its files: extraction stops beyond them.
    bytes: u64,
}

impl Shared {
    /// The shared cache for `options`, or `None` without locations.
    pub(crate) fn new(options: &RemoteOptions, threads: NonZeroUsize) -> Option<Shared> {
        if options.is_empty() {
            return None;
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for location in options.from.iter().chain(&options.to) {
            if !endpoints.iter().any(|e| e.location == *location) {
                endpoints.push(Endpoint {
                    location: location.clone(),
                    client: None,
                    read_off: false,
                    write_off: false,
                });
            }
        }
        let to = options.to.as_ref().and_then(|to| endpoints.iter().position(|e| e.location == *to));
        Some(Shared { endpoints, to, ca_cert: options.ca_cert.clone(), threads, rejected: BTreeSet::new() })
    }

    /// Looks `key` up in every location in turn and, at the first usable entry, makes it the
    /// cache entry `entry` of `cache`. Returns the entry's reference and its output digest
    /// (checked against the extracted tree), or `None` when no location had a usable one.
    pub(crate) fn pull(
        &mut self,
        key: &str,
        cache: &Cache,
        entry: &Path,
        on_event: &mut dyn FnMut(Event),
    ) -> Option<(String, String)> {
        for index in 0..self.endpoints.len() {
            if self.endpoints[index].read_off || !self.connect(index, on_event) {
                continue;
            }
            let endpoint = &self.endpoints[index];
            let (Some(client), location) = (&endpoint.client, &endpoint.location) else { continue };
            let started = Instant::now();
            let remote = Remote::new(client, &location.repository);
            let found = match lookup(&remote, key) {
                Ok(found) => found,
                Err(failure) => {
                    self.failed(index, PULLS, tagged(location, key), failure, on_event);
                    continue;
                }
            };
            let Found::Entry { manifest, digest, config } = found else { continue };
            let reference = reference(location, key, &digest);
            match fetch(&remote, &manifest, &config, cache, entry, &reference) {
                Ok(bytes) => {
                    let seconds = started.elapsed().as_secs_f64();
                    on_event(Event::Pulled { entry: reference.clone(), bytes, seconds });
                    return Some((reference, config.output));
                }
                Err(failure) => {
                    if let Failure::Rejected(_) = failure {
                        self.rejected.insert(entry_id(location, &digest));
                    }
                    self.failed(index, PULLS, reference, failure, on_event);
                }
            }
        }
        None
    }

    /// Pushes the cache entry `entry` (made for `key`, with output digest `output`) to the
    /// `--cache-to` location unless a usable entry for `key` is there. Returns the entry's
    /// reference when this build pushed it.
    pub(crate) fn push(
        &mut self,
        key: &str,
        output: &str,
        entry: &Path,
        cache: &Cache,
        epoch: Epoch,
        on_event: &mut dyn FnMut(Event),
    ) -> Option<String> {
        let index = self.to?;
        if self.endpoints[index].write_off || !self.connect(index, on_event) {
            return None;
        }
        let endpoint = &self.endpoints[index];
        let (client, location) = (endpoint.client.as_ref()?, &endpoint.location);
        let remote = Remote::new(client, &location.repository);
        let result = match lookup(&remote, key) {
            Ok(Found::Entry { digest, config, .. })
                if !self.rejected.contains(&entry_id(location, &digest)) =>
            {
                if config.output != output {
                    let entry = reference(location, key, &digest);
                    on_event(Event::Differs { entry, theirs: config.output, ours: output.to_owned() });
                }
                return None;
            }
            // Missing, refused by this build's pull, or not an entry at all: replaced.
            Ok(_) => upload(client, location, key, output, entry, cache, epoch, self.threads),
            Err(Failure::Rejected(reason)) => {
                on_event(Event::Rejected { entry: tagged(location, key), reason });
                upload(client, location, key, output, entry, cache, epoch, self.threads)
            }
            Err(failure) => Err(failure),
        };
        match result {
            Ok(Uploaded { entry, bytes, seconds }) => {
                // Another machine may have tagged its entry meanwhile: the tag is then on a
                // complete entry of the same key, the same one if the step is reproducible.
                if let Ok(Found::Entry { digest, config, .. }) = lookup(&remote, key)
                    && config.output != output
                {
                    let entry = reference(location, key, &digest);
                    on_event(Event::Differs { entry, theirs: config.output, ours: output.to_owned() });
                }
                on_event(Event::Pushed { entry: entry.clone(), bytes, seconds });
                Some(entry)
            }
            Err(failure) => {
                let entry = tagged(location, key);
                self.failed(index, PUSHES, entry, failure, on_event);
                None
            }
        }
    }

    /// Makes the client for location `index` on first use; false when it cannot be made.
    fn connect(&mut self, index: usize, on_event: &mut dyn FnMut(Event)) -> bool {
        let endpoint = &mut self.endpoints[index];
        if endpoint.client.is_some() {
            return true;
        }
        let options = ClientOptions {
            insecure_http: endpoint.location.insecure_http,
            ca_cert: self.ca_cert.clone(),
            // A cache that does not answer is not worth a long wait.
            connect_timeout: Some(Duration::from_secs(5)),
            retry: RetryPolicy {
                attempts: 3,
                first_backoff: Duration::from_millis(250),
                max_backoff: Duration::from_secs(5),
            },
            ..ClientOptions::default()
        };
        match Client::new(&endpoint.location.registry, &options) {
            Ok(client) => {
                endpoint.client = Some(client);
                true
            }
            Err(error) => {
                (endpoint.read_off, endpoint.write_off) = (true, true);
                let (location, reason) = (endpoint.location.to_string(), explain(&error));
                on_event(Event::Unavailable { location, access: "pulls and pushes", reason });
                false
            }
        }
    }

    /// Reports a failure about `entry` of location `index` during `access` ([`PULLS`] or
    /// [`PUSHES`]): a bad entry, a local problem (this step only), or the registry failing
    /// (not used for `access` again).
    fn failed(
        &mut self,
        index: usize,
        access: &'static str,
        entry: String,
        failure: Failure,
        on_event: &mut dyn FnMut(Event),
    ) {
        match failure {
            Failure::Rejected(reason) if access == PULLS => on_event(Event::Rejected { entry, reason }),
            Failure::Local(reason) => on_event(Event::NotShared { reason }),
            Failure::Rejected(reason) | Failure::Unavailable(reason) => {
                let endpoint = &mut self.endpoints[index];
                if access == PULLS {
                    endpoint.read_off = true;
                } else {
                    endpoint.write_off = true;
                }
                on_event(Event::Unavailable { location: endpoint.location.to_string(), access, reason });
            }
        }
    }
}

/// What a location is used for, in [`Event::Unavailable`].
const PULLS: &str = "pulls";
const PUSHES: &str = "pushes";

/// `REGISTRY/REPOSITORY@DIGEST`: one entry, whatever its tag.
fn entry_id(location: &Location, digest: &Digest) -> String {
    format!("{}/{}@{digest}", location.registry, location.repository)
}

/// `REGISTRY/REPOSITORY:TAG` of the entry for `key`.
fn tagged(location: &Location, key: &str) -> String {
    format!("{}/{}:{}", location.registry, location.repository, tag(key))
}

/// `REGISTRY/REPOSITORY:TAG@DIGEST` of an entry for `key`.
fn reference(location: &Location, key: &str, digest: &Digest) -> String {
    format!("{}@{digest}", tagged(location, key))
}

/// An error's message with its causes, and the registry crate's hint where it has one.
fn explain(error: &kiln_registry::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        text.push_str(&format!(" ({hint})"));
    }
    text
}

/// A registry error: the entry's fault, this machine's, or the registry's.
fn failure(error: &kiln_registry::Error) -> Failure {
    match error {
        kiln_registry::Error::DigestMismatch { .. } | kiln_registry::Error::Protocol { .. } => {
            Failure::Rejected(explain(error))
        }
        kiln_registry::Error::Status { status: 404, .. } => Failure::Rejected(explain(error)),
        kiln_registry::Error::Store { .. } | kiln_registry::Error::Read { .. } => {
            Failure::Local(explain(error))
        }
        _ => Failure::Unavailable(explain(error)),
    }
}

/// What the tag for `key` holds: its manifest and config, checked to be an entry of this format
/// for this key.
fn lookup(remote: &Remote<'_>, key: &str) -> Result<Found, Failure> {
    let (descriptor, bytes) = match remote.manifest_bytes(&tag(key)) {
        Ok(found) => found,
        Err(kiln_registry::Error::Status { status: 404, .. }) => return Ok(Found::Missing),
        Err(error) => return Err(failure(&error)),
    };
    let reject = |reason: String| Failure::Rejected(reason);
    if descriptor.media_type != media_type::IMAGE_MANIFEST {
        return Err(reject(format!("a {} is not a cache entry", descriptor.media_type)));
    }
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| reject(format!("not an image manifest: {e}")))?;
    if manifest.artifact_type.as_deref() != Some(ARTIFACT_TYPE)
        || manifest.config.media_type != CONFIG_MEDIA_TYPE
        || manifest.layers.len() != 1
        || manifest.layers[0].media_type != TREE_MEDIA_TYPE
    {
        return Err(reject(format!(
            "not a kiln step entry (artifact type {}, config {}, {} layers)",
            manifest.artifact_type.as_deref().unwrap_or("none"),
            manifest.config.media_type,
            manifest.layers.len()
        )));
    }
    if manifest.config.size > MAX_CONFIG {
        return Err(reject(format!("a config of {} bytes is not an entry's", manifest.config.size)));
    }
    let mut config = Vec::new();
    remote.blob(&manifest.config, &mut config).map_err(|e| failure(&e))?;
    let config: EntryConfig =
        serde_json::from_slice(&config).map_err(|e| reject(format!("its config is not an entry's: {e}")))?;
    if config.format != FORMAT {
        return Err(reject(format!("entry format {} (this kiln reads {FORMAT})", config.format)));
    }
    if config.key != key {
        return Err(reject(format!("it is the entry of another step (key {})", config.key)));
    }
    Ok(Found::Entry { manifest: Box::new(manifest), digest: descriptor.digest, config })
}

/// Downloads and checks an entry's tree, then makes it the cache entry `entry`. Returns the
/// bytes downloaded.
fn fetch(
    remote: &Remote<'_>,
    manifest: &Manifest,
    config: &EntryConfig,
    cache: &Cache,
    entry: &Path,
    reference: &str,
) -> Result<u64, Failure> {
    let local = |what: &str, error: &dyn std::fmt::Display| Failure::Local(format!("{what}: {error}"));
    let work = cache.temp_dir().map_err(|e| local("cannot make a work directory", &e))?;
    let layer = &manifest.layers[0];
    let archive = work.path().join("tree.tar.zst");
    {
        let file = File::create(&archive).map_err(|e| local("cannot store the entry", &e))?;
        let mut sink = BufWriter::new(file);
        remote.blob(layer, &mut sink).map_err(|e| failure(&e))?;
        sink.flush().map_err(|e| local("cannot store the entry", &e))?;
    }
    let out = work.path().join("out");
    fs::create_dir(&out).map_err(|e| local("cannot make a work directory", &e))?;
    let file = File::open(&archive).map_err(|e| local("cannot read the entry back", &e))?;
    // Links must stay inside the tree, as in any archive kiln extracts: kiln itself reads
    // through them when it assembles images from step outputs.
    let options = crate::extract::Options {
        exact_modes: true,
        max_bytes: Some(config.bytes),
        ..crate::extract::Options::default()
    };
    crate::extract::extract_tar(&archive, BufReader::with_capacity(1 << 20, file), &out, options)
        .map_err(|e| Failure::Rejected(format!("its tree cannot be extracted: {e}")))?;
    fs::remove_file(&archive).map_err(|e| local("cannot remove the downloaded tree", &e))?;
    let actual = crate::tree::digest(&out).map_err(|e| local("cannot read the extracted tree", &e))?;
    if actual != config.output {
        return Err(Failure::Rejected(format!(
            "its tree has digest {actual}, its config says {}",
            config.output
        )));
    }
    let log = work.path().join("log");
    fs::write(&log, format!("pulled from {reference}\n")).map_err(|e| local("cannot write the entry", &e))?;
    crate::build::write_meta(work.path(), &config.key, &config.output)
        .map_err(|e| local("cannot write the entry", &e))?;
    let staged = work.keep();
    fs::rename(&staged, entry).map_err(|e| local("cannot move the entry into the cache", &e))?;
    Ok(layer.size)
}

/// Why the tree at `root` cannot be an entry, if it cannot: a link leading out of it (kiln
/// refuses such links when it extracts), a setuid or setgid file, or a special file. Else the
/// bytes of its files.
fn shareable(root: &Path) -> Result<u64, String> {
    fn visit(root: &Path, dir: &Path, bytes: &mut u64) -> Result<(), String> {
        let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?.path();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_owned();
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                continue;
            } else if kind.is_dir() {
                visit(root, &path, bytes)?;
            } else if !kind.is_file() {
                return Err(format!("{} is a socket, FIFO or device", relative.display()));
            } else if meta.mode() & 0o6000 != 0 {
                return Err(format!("{} is setuid or setgid", relative.display()));
            } else {
                *bytes += meta.len();
            }
        }
        Ok(())
    }
    match crate::beneath::leaving_link(root) {
        Ok(None) => {}
        Ok(Some((link, target))) => {
            return Err(format!("{} links to {}, outside the tree", link.display(), target.display()));
        }
        Err(e) => return Err(format!("cannot read {}: {e}", root.display())),
    }
    let mut bytes = 0;
    visit(root, root, &mut bytes)?;
    Ok(bytes)
}

/// Packs the cache entry `entry` as an OCI artifact in a layout and pushes it, tag last.
#[allow(clippy::too_many_arguments)]
fn upload(
    client: &Client,
    location: &Location,
    key: &str,
    output: &str,
    entry: &Path,
    cache: &Cache,
    epoch: Epoch,
    threads: NonZeroUsize,
) -> Result<Uploaded, Failure> {
    let started = Instant::now();
    let tree = entry.join("out");
    let bytes = shareable(&tree).map_err(Failure::Local)?;
    let local = |error: &dyn std::fmt::Display| Failure::Local(format!("cannot pack the entry: {error}"));
    let work = cache.temp_dir().map_err(|e| local(&e))?;
    let layout_path = work.path().join("layout");
    let mut layout = LayoutWriter::create_or_update(&layout_path).map_err(|e| local(&e))?;
    let policy =
        Policy { epoch, mtime: MtimePolicy::Set, owner: Owner::default(), modes: ModePolicy::Preserve };
    let blob = layout.blob().map_err(|e| local(&e))?;
    let options = LayerOptions { policy, compression: TREE_COMPRESSION, threads };
    let layer = pack::write_layer(&tree, blob, &options, &pack::Silent).map_err(|e| local(&e))?;
    let tree = Descriptor::new(TREE_MEDIA_TYPE, layer.descriptor.digest, layer.descriptor.size);
    let config = EntryConfig { format: FORMAT, key: key.to_owned(), output: output.to_owned(), bytes };
    let config = kiln_reproducible::json::to_vec(&config).map_err(|e| local(&e))?;
    let config = layout.put_document(CONFIG_MEDIA_TYPE, &config).map_err(|e| local(&e))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: media_type::IMAGE_MANIFEST.into(),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config,
        layers: vec![tree],
        subject: None,
        annotations: Default::default(),
    };
    let encoded = spec::encode("cache entry", &manifest).map_err(|e| local(&e))?;
    let descriptor = layout.put_document(media_type::IMAGE_MANIFEST, &encoded).map_err(|e| local(&e))?;
    let name = format!("{}:{}", location.repository, tag(key));
    let layout_name: Reference = name.parse().map_err(|e| local(&e))?;
    layout.set(&layout_name, descriptor.clone());
    layout.commit().map_err(|e| local(&e))?;
    let layout = Layout::open(&layout_path).map_err(|e| local(&e))?;
    let options = PushOptions { prefix: String::new(), images: vec![name], extra_tags: Vec::new(), jobs: 2 };
    let pushed = push::push(client, &layout, &options, &push::Silent).map_err(|e| failure(&e))?;
    Ok(Uploaded {
        entry: reference(location, key, &descriptor.digest),
        bytes: pushed.iter().map(|p| p.uploaded_bytes).sum(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let plain: Location = "http://127.0.0.1:5000/kiln/cache/".parse().unwrap();
        assert_eq!(
            plain,
            Location {
                registry: "127.0.0.1:5000".into(),
                repository: "kiln/cache".into(),
                insecure_http: true
            }
        );
        assert_eq!(plain.to_string(), "http://127.0.0.1:5000/kiln/cache");
        let tls: Location = "ghcr.io/org/kiln-cache".parse().unwrap();
        assert!(!tls.insecure_http);
        assert_eq!(tls.to_string(), "ghcr.io/org/kiln-cache");
        assert_eq!("https://ghcr.io/org/c".parse::<Location>().unwrap().repository, "org/c");
        for bad in ["ghcr.io", "org/cache", "ghcr.io/Org/cache", "http://ghcr.io/", "ghcr.io/a//b"] {
            assert!(bad.parse::<Location>().is_err(), "{bad}");
        }
    }

    #[test]
    fn entry_config_is_canonical_and_strict() {
        let config = EntryConfig { format: FORMAT, key: "k".into(), output: "o".into(), bytes: 7 };
        let bytes = kiln_reproducible::json::to_vec(&config).unwrap();
        assert_eq!(bytes, br#"{"bytes":7,"format":1,"key":"k","output":"o"}"#);
        assert!(serde_json::from_slice::<EntryConfig>(br#"{"format":1,"key":"k","output":"o"}"#).is_err());
        assert!(
            serde_json::from_slice::<EntryConfig>(br#"{"bytes":7,"format":1,"key":"k","output":"o","x":1}"#)
                .is_err()
        );
    }

    #[test]
    fn links_must_stay_inside_the_tree() {
        use crate::beneath::stays_inside_lexically as link_stays_inside;
        assert!(link_stays_inside(0, Path::new("a/b")));
        assert!(link_stays_inside(2, Path::new("../../x")));
        assert!(link_stays_inside(1, Path::new("./../x/../y")));
        assert!(!link_stays_inside(1, Path::new("../../x")));
        assert!(!link_stays_inside(3, Path::new("/usr/bin/x")));
        assert!(!link_stays_inside(0, Path::new("..")));
    }

    #[test]
    fn trees_with_what_an_entry_may_not_hold_are_not_shared() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/tool"), "12345").unwrap();
        symlink("tool", root.join("usr/bin/alias")).unwrap();
        symlink("../../usr", root.join("usr/bin/up")).unwrap();
        assert_eq!(shareable(root), Ok(5));
        symlink("/etc/passwd", root.join("usr/bin/passwd")).unwrap();
        assert!(shareable(root).unwrap_err().contains("usr/bin/passwd links to /etc/passwd"));
        fs::remove_file(root.join("usr/bin/passwd")).unwrap();
        symlink("../../../etc", root.join("usr/bin/etc")).unwrap();
        assert!(shareable(root).unwrap_err().contains("outside the tree"));
        fs::remove_file(root.join("usr/bin/etc")).unwrap();
        fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        assert!(shareable(root).unwrap_err().contains("setuid"));
    }

    #[test]
    fn tags_fit_the_distribution_grammar() {
        let key = "a".repeat(64);
        let tag = tag(&key);
        assert!(tag.len() <= 128);
        assert!(format!("kiln/cache:{tag}").parse::<Reference>().is_ok());
    }
}
