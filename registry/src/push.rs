//! Pushing a layout's images and indexes.
//!
//! For each image named in `index.json`: every blob it references (through nested indexes too)
//! is made present — skipped when a `HEAD` finds it, mounted from another repository of the
//! same push when possible, else uploaded with a streamed monolithic `PUT` (or, where the
//! registry or a proxy before it refuses that, in `PATCH` chunks honouring
//! `OCI-Chunk-Min-Length`) — with a bounded number of uploads in parallel. Only then are manifests put, children before the indexes that
//! list them, each by digest with its exact stored bytes and media type; tags come last. So no
//! tag ever points at something incomplete.
//!
//! After an image, the artifacts the layout lists about it (SBOMs, provenance: manifests whose
//! `subject` is the image, see [`kiln_layers::oci::artifact`]) are pushed the same way, by
//! digest and without a tag; where the registry has no referrers API, the referrers tag is
//! updated ([`crate::referrers`]).
//!
//! The layout is input to check before anything is sent: every name and tag must match the
//! distribution grammar (what a URL is built from), the walk of its documents is bounded by
//! [`kiln_layers::oci::limits`], and every blob to send must be in the layout — a regular file
//! of its descriptor's size, no link followed — before the first request, so a broken layout
//! fails at once, naming the blob, and leaves no upload session open.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_layers::digest::Digest;
use kiln_layers::oci::layout::Layout;
use kiln_layers::oci::limits::{self, Budget};
use kiln_layers::oci::media_type;
use kiln_layers::oci::reference;
use kiln_layers::oci::spec::Descriptor;

use crate::client::{Client, Method, RequestBody, Retry, encode, retriable_error};
use crate::error::{Error, Result};

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry had it.
    Present,
    /// Mounted from another repository of the registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// Receives progress of a push. Library code never prints.
pub trait Reporter: Sync {
    /// A blob is about to be checked or sent.
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// Bytes of a blob were sent.
    fn blob_progress(&self, _digest: &Digest, _bytes: u64) {}
    /// An upload of a blob starts over: the bytes reported so far no longer count.
    fn blob_restarted(&self, _digest: &Digest) {}
    /// A blob is present in the registry.
    fn blob_finished(&self, _digest: &Digest, _outcome: BlobOutcome) {}
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Repository prefix on the registry (`org/images`); may be empty.
    pub prefix: String,
    /// Image names (`NAME:TAG` in the layout) to push; empty for all.
    pub images: Vec<String>,
    /// Extra tags for every pushed image.
    pub extra_tags: Vec<String>,
    /// Blob uploads in parallel.
    pub jobs: usize,
}

/// One pushed image.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// Name in the layout.
    pub image: String,
    /// Repository on the registry.
    pub repository: String,
    /// Manifest (or index) digest.
    pub digest: Digest,
    /// Tags set.
    pub tags: Vec<String>,
    /// Blobs uploaded (not present or mounted).
    pub uploaded_blobs: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Artifact manifests about the image pushed after it (by digest).
    pub referrers: Vec<Digest>,
    /// The referrers tag (`sha256-<hex>`) updated for them, where the registry has no referrers
    /// API.
    pub referrers_tag: Option<String>,
}

/// Pushes the layout's named images to `client`'s registry.
pub fn push(
    client: &Client,
    layout: &Layout,
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<Pushed>> {
    let mut selected: Vec<(&str, &Descriptor)> = Vec::new();
    for descriptor in &layout.index().manifests {
        let Some(name) = descriptor.ref_name() else { continue };
        if options.images.is_empty() || options.images.iter().any(|i| i == name) {
            selected.push((name, descriptor));
        }
    }
    for wanted in &options.images {
        if !selected.iter().any(|(name, _)| name == wanted) {
            layout.find(wanted)?;
        }
    }
    for tag in &options.extra_tags {
        reference::check_tag(tag).map_err(|reason| invalid_name(tag, reason))?;
    }
    // Everything is checked before the first request: names, documents, every blob.
    let mut budget = Budget::new();
    let mut images = Vec::new();
    for (name, descriptor) in selected {
        let (repository, tag) = destination(&options.prefix, name)?;
        let plan = Plan::of(layout, descriptor, &mut budget)?;
        let artifacts = layout
            .artifacts_of(name)
            .into_iter()
            .map(|artifact| Ok((artifact, Plan::of(layout, artifact, &mut budget)?)))
            .collect::<Result<Vec<_>>>()?;
        for blob in plan.blobs.iter().chain(artifacts.iter().flat_map(|(_, plan)| &plan.blobs)) {
            layout.open_blob_checked(blob)?;
        }
        images.push((name, descriptor, repository, tag, plan, artifacts));
    }
    let uploads =
        Uploads { client, layout, reporter, transfer: Transfer::new(), pushed: Mutex::new(BTreeMap::new()) };
    let mut results = Vec::new();
    for (name, descriptor, repository, tag, plan, artifacts) in images {
        let (uploaded_blobs, uploaded_bytes) = uploads.upload_all(&repository, &plan.blobs, options.jobs)?;
        for manifest in plan.manifests.iter().chain(std::iter::once(descriptor)) {
            put_manifest(client, layout, &repository, manifest, &manifest.digest.to_string())?;
        }
        let mut tags = vec![tag.clone()];
        tags.extend(options.extra_tags.iter().filter(|t| **t != tag).cloned());
        for tag in &tags {
            put_manifest(client, layout, &repository, descriptor, tag)?;
        }
        let mut pushed = Pushed {
            image: name.to_owned(),
            repository,
            digest: descriptor.digest.clone(),
            tags,
            uploaded_blobs,
            uploaded_bytes,
            referrers: Vec::new(),
            referrers_tag: None,
        };
        push_referrers(client, layout, &uploads, descriptor, &artifacts, &mut pushed, options.jobs)?;
        results.push(pushed);
    }
    Ok(results)
}

/// The repository and tag a layout's image `name` (`NAME:TAG`, or `NAME` for `latest`) is pushed
/// to under `prefix`, both checked against the distribution grammar: a name such as
/// `../victim/app:1` never reaches a URL.
fn destination(prefix: &str, name: &str) -> Result<(String, String)> {
    let invalid = |reason| invalid_name(name, reason);
    let (image, tag) = match name.rsplit_once(':') {
        Some((image, tag)) if !tag.contains('/') => (image, tag),
        _ => (name, "latest"),
    };
    reference::check_tag(tag).map_err(invalid)?;
    let repository = if prefix.is_empty() { image.to_owned() } else { format!("{prefix}/{image}") };
    reference::check_name(image).map_err(invalid)?;
    reference::check_name(&repository).map_err(invalid)?;
    Ok((repository, tag.to_owned()))
}

/// A name or tag of the layout, or given with `--tag`, that the grammar refuses: bad input, with
/// the `NAME:TAG` hint.
fn invalid_name(value: &str, reason: &'static str) -> Error {
    Error::Layout(kiln_layers::Error::InvalidReference { value: value.to_owned(), reason })
}

/// Pushes the layout's artifacts about `image` (blobs, then each manifest by digest) and, where
/// the registry does not list referrers itself, updates the referrers tag.
fn push_referrers(
    client: &Client,
    layout: &Layout,
    uploads: &Uploads<'_>,
    image: &Descriptor,
    artifacts: &[(&Descriptor, Plan)],
    pushed: &mut Pushed,
    jobs: usize,
) -> Result<()> {
    if artifacts.is_empty() {
        return Ok(());
    }
    let mut listed_by_registry = true;
    for (artifact, plan) in artifacts {
        let (blobs, bytes) = uploads.upload_all(&pushed.repository, &plan.blobs, jobs)?;
        pushed.uploaded_blobs += blobs;
        pushed.uploaded_bytes += bytes;
        let subject =
            put_manifest(client, layout, &pushed.repository, artifact, &artifact.digest.to_string())?;
        listed_by_registry &= subject.as_deref() == Some(image.digest.to_string().as_str());
        pushed.referrers.push(artifact.digest.clone());
    }
    if listed_by_registry || crate::referrers::api_supported(client, &pushed.repository, &image.digest)? {
        return Ok(());
    }
    let descriptors: Vec<Descriptor> =
        artifacts.iter().map(|(a, _)| kiln_layers::oci::artifact::referrer(a)).collect();
    let (tag, _) =
        crate::referrers::update_fallback_tag(client, &pushed.repository, &image.digest, &descriptors)?;
    pushed.referrers_tag = Some(tag);
    Ok(())
}

/// What an image needs in the registry: blobs, and the manifests below the top one (children
/// first).
struct Plan {
    blobs: Vec<Descriptor>,
    manifests: Vec<Descriptor>,
}

impl Plan {
    /// The plan of `top`, charging `budget` (one per push) for every document read.
    fn of(layout: &Layout, top: &Descriptor, budget: &mut Budget) -> Result<Plan> {
        let mut plan = Plan { blobs: Vec::new(), manifests: Vec::new() };
        let mut seen = BTreeSet::new();
        plan.visit(layout, top, 0, budget, &mut seen)?;
        Ok(plan)
    }

    /// Visits `descriptor`, `depth` levels of indexes below the image; each digest once.
    fn visit(
        &mut self,
        layout: &Layout,
        descriptor: &Descriptor,
        depth: usize,
        budget: &mut Budget,
        seen: &mut BTreeSet<Digest>,
    ) -> Result<()> {
        if !seen.insert(descriptor.digest.clone()) {
            return Ok(());
        }
        let local = |error: limits::LimitError| Error::Layout(error.into());
        if media_type::is_index(&descriptor.media_type) {
            budget.document(descriptor, depth, "image index").map_err(local)?;
            let index = layout.nested_index(descriptor)?;
            budget.descriptors(index.manifests.len(), &descriptor.digest).map_err(local)?;
            for child in &index.manifests {
                self.visit(layout, child, depth + 1, budget, seen)?;
            }
        } else if media_type::is_manifest(&descriptor.media_type) {
            budget.document(descriptor, depth, "image manifest").map_err(local)?;
            let manifest = layout.manifest(descriptor)?;
            budget.descriptors(manifest.layers.len() + 1, &descriptor.digest).map_err(local)?;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if seen.insert(blob.digest.clone()) {
                    self.blobs.push(blob.clone());
                }
            }
        } else {
            self.blobs.push(descriptor.clone());
            return Ok(());
        }
        if depth > 0 {
            self.manifests.push(descriptor.clone());
        }
        Ok(())
    }
}

/// Blob uploads of one push, shared by its worker threads.
struct Uploads<'a> {
    client: &'a Client,
    layout: &'a Layout,
    reporter: &'a dyn Reporter,
    transfer: Transfer,
    /// Blobs already present, by digest → repository, for cross-repository mounts.
    pushed: Mutex<BTreeMap<Digest, String>>,
}

/// What one upload session achieved.
enum Session {
    Done(BlobOutcome),
    /// The registry, or a proxy before it, refused a monolithic `PUT` with a body.
    MonolithicRefused,
}

impl Uploads<'_> {
    /// Makes every blob present in `repository`, `jobs` at a time; returns the number of blobs
    /// and bytes uploaded.
    fn upload_all(&self, repository: &str, blobs: &[Descriptor], jobs: usize) -> Result<(usize, u64)> {
        let queue = Mutex::new(blobs.iter().collect::<Vec<_>>());
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let totals = Mutex::new((0usize, 0u64));
        std::thread::scope(|scope| {
            for _ in 0..jobs.max(1).min(blobs.len().max(1)) {
                scope.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let Some(blob) = queue.lock().ok().and_then(|mut q| q.pop()) else { return };
                        match self.ensure(repository, blob) {
                            Ok(outcome) => {
                                if outcome == BlobOutcome::Uploaded
                                    && let Ok(mut totals) = totals.lock()
                                {
                                    totals.0 += 1;
                                    totals.1 += blob.size;
                                }
                                if let Ok(mut pushed) = self.pushed.lock() {
                                    pushed.insert(blob.digest.clone(), repository.to_owned());
                                }
                            }
                            Err(error) => {
                                failed.store(true, Ordering::Relaxed);
                                if let Ok(mut first) = first_error.lock() {
                                    first.get_or_insert(error);
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(error) = first_error.into_inner().ok().flatten() {
            return Err(error);
        }
        Ok(totals.into_inner().unwrap_or_default())
    }

    /// Makes one blob present in `repository`: a failed upload session is abandoned and a new
    /// one started, since the old one may hold part of the body.
    fn ensure(&self, repository: &str, blob: &Descriptor) -> Result<BlobOutcome> {
        self.reporter.blob_started(&blob.digest, blob.size);
        let head_url = self.client.url(&format!("{repository}/blobs/{}", blob.digest));
        let head = self.client.send(
            Method::Head,
            &head_url,
            &scope_push(repository),
            &[],
            &RequestBody::Empty,
            Retry::Yes,
        )?;
        if head.status().as_u16() == 200 {
            self.reporter.blob_finished(&blob.digest, BlobOutcome::Present);
            return Ok(BlobOutcome::Present);
        }
        let mount_from = self.pushed.lock().ok().and_then(|p| p.get(&blob.digest).cloned());
        let mut failures = 0;
        loop {
            match self.session(repository, blob, mount_from.as_deref()) {
                Ok(Session::Done(outcome)) => {
                    self.reporter.blob_finished(&blob.digest, outcome);
                    return Ok(outcome);
                }
                Ok(Session::MonolithicRefused) => self.transfer.use_chunks(),
                Err(error)
                    if failures + 1 < self.client.retry_policy().attempts && retriable_error(&error) =>
                {
                    failures += 1;
                    std::thread::sleep(self.client.backoff(failures, error.retry_after()));
                }
                Err(error) => return Err(error),
            }
            self.reporter.blob_restarted(&blob.digest);
        }
    }

    /// One upload session: a mount, or `POST` then the body (one `PUT`, or `PATCH` chunks and
    /// a closing `PUT`).
    fn session(&self, repository: &str, blob: &Descriptor, mount_from: Option<&str>) -> Result<Session> {
        let client = self.client;
        let uploads = client.url(&format!("{repository}/blobs/uploads/"));
        let (start_url, scope) = match mount_from.filter(|from| *from != repository) {
            Some(from) => (
                format!("{uploads}?mount={}&from={}", encode(&blob.digest.to_string()), encode(from)),
                format!("{} repository:{from}:pull", scope_push(repository)),
            ),
            None => (uploads, scope_push(repository)),
        };
        let response = client.send(Method::Post, &start_url, &scope, &[], &RequestBody::Empty, Retry::Yes)?;
        match response.status().as_u16() {
            201 => return Ok(Session::Done(BlobOutcome::Mounted)),
            202 => {}
            _ => return Err(Client::unexpected(Method::Post, &start_url, response)),
        }
        let mut location = location(&start_url, &response)?;
        let min_chunk = response
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let scope = scope_push(repository);
        let octets = ("Content-Type", "application/octet-stream".to_owned());
        let monolithic = self.transfer.chunk().is_none();
        if !monolithic {
            location = self.send_chunks(repository, blob, &location, min_chunk)?;
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url =
            format!("{}{separator}digest={}", client.resolve(&location), encode(&blob.digest.to_string()));
        let progress = |bytes: u64| self.reporter.blob_progress(&blob.digest, bytes);
        let body = if monolithic {
            RequestBody::Blob { layout: self.layout, blob, offset: 0, len: blob.size, progress: &progress }
        } else {
            RequestBody::Empty
        };
        let response = client.send(Method::Put, &put_url, &scope, &[octets], &body, Retry::No)?;
        match response.status().as_u16() {
            201 => Ok(Session::Done(BlobOutcome::Uploaded)),
            413 | 405 | 501 if monolithic => Ok(Session::MonolithicRefused),
            _ => Err(Client::unexpected(Method::Put, &put_url, response)),
        }
    }

    /// Sends the blob in `PATCH` chunks with `Content-Range`, each at least `min_chunk` bytes
    /// but the last; returns the location to close the session at.
    fn send_chunks(
        &self,
        repository: &str,
        blob: &Descriptor,
        location: &str,
        min_chunk: u64,
    ) -> Result<String> {
        let mut location = location.to_owned();
        let mut offset = 0;
        while offset < blob.size {
            let chunk = self.transfer.chunk().unwrap_or(FIRST_CHUNK).max(min_chunk).min(blob.size - offset);
            let last = offset + chunk - 1;
            let url = self.client.resolve(&location);
            let headers = [
                ("Content-Type", "application/octet-stream".to_owned()),
                ("Content-Range", format!("{offset}-{last}")),
            ];
            // Progress counts a chunk once the registry has accepted it.
            let body = RequestBody::Blob { layout: self.layout, blob, offset, len: chunk, progress: &|_| {} };
            let response =
                self.client.send(Method::Patch, &url, &scope_push(repository), &headers, &body, Retry::No)?;
            match response.status().as_u16() {
                202 => {}
                413 if self.transfer.shrink(chunk, min_chunk) => continue,
                _ => return Err(Client::unexpected(Method::Patch, &url, response)),
            }
            if let Some(range) = response.headers().get("range").and_then(|v| v.to_str().ok())
                && range.trim().rsplit('-').next().and_then(|end| end.parse::<u64>().ok()) != Some(last)
            {
                return Err(Error::Protocol {
                    url,
                    reason: format!("the registry holds bytes {range} after receiving 0-{last}"),
                });
            }
            location = self::location(&url, &response)?;
            self.reporter.blob_progress(&blob.digest, chunk);
            offset += chunk;
        }
        Ok(location)
    }
}

/// The first chunk size once a registry refuses monolithic uploads.
const FIRST_CHUNK: u64 = 16 << 20;
/// No chunk is made smaller than this for a proxy's body limit.
const SMALLEST_CHUNK: u64 = 64 << 10;

/// How blob bodies are sent, learned during a push and shared by all its uploads: one
/// monolithic `PUT` until the registry or a proxy before it refuses one (413, 405, 501), then
/// `PATCH` chunks, halved whenever one is refused as too large (413).
struct Transfer {
    chunk: Mutex<Option<u64>>,
}

impl Transfer {
    fn new() -> Self {
        Transfer { chunk: Mutex::new(None) }
    }

    /// The chunk size, or `None` while monolithic uploads work.
    fn chunk(&self) -> Option<u64> {
        *self.chunk.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn use_chunks(&self) {
        self.chunk.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(FIRST_CHUNK);
    }

    /// After a chunk of `tried` bytes was refused as too large: whether a smaller one that the
    /// registry's minimum allows is left to try.
    fn shrink(&self, tried: u64, min_chunk: u64) -> bool {
        let smaller = (tried / 2).max(min_chunk).max(SMALLEST_CHUNK);
        if smaller >= tried {
            return false;
        }
        let mut chunk = self.chunk.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *chunk = Some(chunk.map_or(smaller, |c| c.min(smaller)));
        true
    }
}

fn scope_push(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn location(url: &str, response: &ureq::http::Response<ureq::Body>) -> Result<String> {
    response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or_else(|| {
        Error::Protocol {
            url: url.to_owned(),
            reason: format!("{} without a Location header", response.status().as_u16()),
        }
    })
}

/// `PUT /v2/<repository>/manifests/<reference>` with the stored bytes and media type; returns
/// the `OCI-Subject` header of the answer (a registry that lists referrers itself sets it).
fn put_manifest(
    client: &Client,
    layout: &Layout,
    repository: &str,
    descriptor: &Descriptor,
    reference: &str,
) -> Result<Option<String>> {
    let bytes = layout.read_blob(descriptor)?;
    let url = client.url(&format!("{repository}/manifests/{reference}"));
    let headers = [("Content-Type", descriptor.media_type.clone())];
    let response = client.send(
        Method::Put,
        &url,
        &scope_push(repository),
        &headers,
        &RequestBody::Bytes(&bytes),
        Retry::Yes,
    )?;
    if response.status().as_u16() != 201 {
        return Err(Client::unexpected(Method::Put, &url, response));
    }
    if let Some(returned) = response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok())
        && returned != descriptor.digest.to_string()
    {
        return Err(Error::DigestMismatch {
            what: "manifest",
            url,
            expected: descriptor.digest.to_string(),
            actual: returned.to_owned(),
        });
    }
    Ok(response.headers().get("oci-subject").and_then(|v| v.to_str().ok()).map(str::to_owned))
}
