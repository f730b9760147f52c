//! Pulling images and indexes into a layout, and reading their documents for `inspect`.
//!
//! Every manifest and blob is checked against its digest before it is stored; blobs already in
//! the layout are not fetched again. The layout is written with the atomicity rules of
//! [`kiln_layers::oci::layout`].
//!
//! Nothing the registry sends decides how much kiln reads ([`kiln_layers::oci::limits`]): a
//! document's descriptor larger than the limit is refused before any request, a document is
//! read no further than its descriptor's size (or the limit, for one asked for by tag), indexes
//! nest a bounded number of levels, one pull reads a bounded number of documents, and a
//! document listed twice is fetched once.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use kiln_layers::digest::Digest;
use kiln_layers::oci::layout::LayoutWriter;
use kiln_layers::oci::limits::{self, Budget, MAX_DOCUMENT_SIZE};
use kiln_layers::oci::media_type;
use kiln_layers::oci::reference::Reference;
use kiln_layers::oci::spec::{Descriptor, ImageConfig, Index, Manifest};

use crate::client::{Client, Method, RequestBody, Retry};
use crate::error::{Error, Result};
use crate::reference::ImageRef;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A repository on a registry, read through a client.
pub struct Remote<'a> {
    client: &'a Client,
    repository: String,
}

impl<'a> Remote<'a> {
    /// The repository `repository` on `client`'s registry.
    pub fn new(client: &'a Client, repository: &str) -> Self {
        Remote { client, repository: repository.to_owned() }
    }

    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// Fetches a manifest or index by tag or digest: its descriptor and exact bytes, checked
    /// against the digest when one was asked for. At most
    /// [`MAX_DOCUMENT_SIZE`] bytes are read.
    pub fn manifest_bytes(&self, reference: &str) -> Result<(Descriptor, Vec<u8>)> {
        self.fetch_manifest(reference, MAX_DOCUMENT_SIZE, "the most kiln reads of a document")
    }

    /// Fetches the manifest or index `descriptor` points at: refused before any request when
    /// its size is above the limit, read no further than its size, checked against its size and
    /// digest.
    pub fn manifest_bytes_of(&self, descriptor: &Descriptor) -> Result<(Descriptor, Vec<u8>)> {
        limits::check_document_size(descriptor, limits::document_kind(descriptor))?;
        let (fetched, bytes) = self.fetch_manifest(
            &descriptor.digest.to_string(),
            descriptor.size,
            "the size its descriptor gives",
        )?;
        if fetched.size != descriptor.size {
            return Err(Error::DigestMismatch {
                what: "manifest",
                url: self.client.url(&format!("{}/manifests/{}", self.repository, descriptor.digest)),
                expected: format!("{} ({} bytes)", descriptor.digest, descriptor.size),
                actual: format!("{} bytes", fetched.size),
            });
        }
        Ok((fetched, bytes))
    }

    fn fetch_manifest(&self, reference: &str, limit: u64, why: &str) -> Result<(Descriptor, Vec<u8>)> {
        let url = self.client.url(&format!("{}/manifests/{reference}", self.repository));
        let mut response = self.client.send(
            Method::Get,
            &url,
            &self.scope(),
            &[("Accept", ACCEPT.to_owned())],
            &RequestBody::Empty,
            Retry::Yes,
        )?;
        if response.status().as_u16() != 200 {
            return Err(Client::unexpected(Method::Get, &url, response));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let bytes = Client::read_limited(&url, &mut response, limit, "manifest", why)?;
        let digest = Digest::sha256_of(&bytes);
        if let Ok(expected) = reference.parse::<Digest>()
            && expected != digest
        {
            return Err(Error::DigestMismatch {
                what: "manifest",
                url,
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Typed {
            media_type: Option<String>,
        }
        let media_type = serde_json::from_slice::<Typed>(&bytes)
            .ok()
            .and_then(|t| t.media_type)
            .or(content_type)
            .ok_or_else(|| Error::Protocol {
                url: url.clone(),
                reason: "manifest without a media type".into(),
            })?;
        Ok((Descriptor::new(&media_type, digest, bytes.len() as u64), bytes))
    }

    /// Fetches a blob and passes its bytes to `sink`, checking size and digest at the end (a
    /// [`Error::DigestMismatch`] then; `sink` has seen every byte, so it must not be trusted
    /// before this returns).
    pub fn blob(&self, descriptor: &Descriptor, sink: &mut dyn std::io::Write) -> Result<()> {
        let url = self.client.url(&format!("{}/blobs/{}", self.repository, descriptor.digest));
        let response =
            self.client.send(Method::Get, &url, &self.scope(), &[], &RequestBody::Empty, Retry::Yes)?;
        if response.status().as_u16() != 200 {
            return Err(Client::unexpected(Method::Get, &url, response));
        }
        let mut reader = response.into_body().into_reader();
        let mut verifier = descriptor.digest.verifier();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader
                .read(&mut buffer)
                .map_err(|e| Error::Transport { url: url.clone(), source: e.into() })?;
            if n == 0 {
                break;
            }
            verifier.update(&buffer[..n]);
            size += n as u64;
            if size > descriptor.size {
                // More than the descriptor says: not the blob, whatever follows.
                return Err(Error::DigestMismatch {
                    what: "blob",
                    url,
                    expected: format!("{} ({} bytes)", descriptor.digest, descriptor.size),
                    actual: format!("more than {} bytes", descriptor.size),
                });
            }
            sink.write_all(&buffer[..n]).map_err(|source| Error::Store { url: url.clone(), source })?;
        }
        let actual = verifier.finish();
        if actual != descriptor.digest || size != descriptor.size {
            return Err(Error::DigestMismatch {
                what: "blob",
                url,
                expected: descriptor.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// A document (manifest, index, config), refused before any request when its descriptor
    /// is larger than the limit, and read no further than its descriptor's size.
    fn document<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        what: &'static str,
    ) -> Result<T> {
        limits::check_document_size(descriptor, what)?;
        let mut bytes = Vec::new();
        if media_type::is_manifest(&descriptor.media_type) || media_type::is_index(&descriptor.media_type) {
            bytes = self.manifest_bytes_of(descriptor)?.1;
        } else {
            self.blob(descriptor, &mut bytes)?;
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            url: self.client.url(&format!("{}/…/{}", self.repository, descriptor.digest)),
            reason: format!("not a valid {what}: {e}"),
        })
    }
}

impl kiln_layers::inspect::Documents for Remote<'_> {
    type Error = Error;

    fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        self.document(descriptor, "image manifest")
    }

    fn nested_index(&self, descriptor: &Descriptor) -> Result<Index> {
        self.document(descriptor, "image index")
    }

    fn config(&self, descriptor: &Descriptor) -> Result<ImageConfig> {
        self.document(descriptor, "image config")
    }
}

/// Pulls `image` (every platform of an index) into the layout at `out`, named `name`.
/// Returns the top descriptor.
pub fn pull(client: &Client, image: &ImageRef, out: &Path, name: &Reference) -> Result<Descriptor> {
    let remote = Remote::new(client, &image.repository);
    let mut layout = LayoutWriter::create_or_update(out)?;
    let (top, bytes) = remote.manifest_bytes(&image.reference())?;
    let mut walk = Walk { remote: &remote, layout: &layout, budget: Budget::new(), stored: BTreeSet::new() };
    walk.budget.document(&top, 0, limits::document_kind(&top))?;
    walk.stored.insert(top.digest.clone());
    walk.store(&top, &bytes, 0)?;
    layout.set(name, top.clone());
    layout.commit()?;
    Ok(top)
}

/// One pull: what it has read, and the documents already stored.
struct Walk<'a> {
    remote: &'a Remote<'a>,
    layout: &'a LayoutWriter,
    budget: Budget,
    stored: BTreeSet<Digest>,
}

impl Walk<'_> {
    /// Stores a manifest or index (`depth` levels of indexes below the image), then what it
    /// lists.
    fn store(&mut self, descriptor: &Descriptor, bytes: &[u8], depth: usize) -> Result<()> {
        self.layout.put_blob(bytes)?;
        let parse_error = |e: serde_json::Error| Error::Protocol {
            url: format!("{}@{}", self.remote.repository, descriptor.digest),
            reason: format!("not a valid document: {e}"),
        };
        if media_type::is_index(&descriptor.media_type) {
            let index: Index = serde_json::from_slice(bytes).map_err(parse_error)?;
            self.budget.descriptors(index.manifests.len(), &descriptor.digest)?;
            for child in &index.manifests {
                if media_type::is_index(&child.media_type) || media_type::is_manifest(&child.media_type) {
                    self.budget.document(child, depth + 1, limits::document_kind(child))?;
                    if !self.stored.insert(child.digest.clone()) {
                        continue;
                    }
                    let (_, child_bytes) = self.remote.manifest_bytes_of(child)?;
                    self.store(child, &child_bytes, depth + 1)?;
                } else {
                    self.fetch_blob(child)?;
                }
            }
        } else {
            let manifest: Manifest = serde_json::from_slice(bytes).map_err(parse_error)?;
            self.budget.descriptors(manifest.layers.len() + 1, &descriptor.digest)?;
            // A config is a document kiln reads later: it is bounded like one.
            if manifest.artifact_type.is_none() {
                limits::check_document_size(&manifest.config, "image config")?;
            }
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                self.fetch_blob(blob)?;
            }
        }
        Ok(())
    }

    fn fetch_blob(&self, descriptor: &Descriptor) -> Result<()> {
        if self.layout.has_blob(descriptor) {
            return Ok(());
        }
        let mut writer = self.layout.blob()?;
        self.remote.blob(descriptor, &mut writer)?;
        let (digest, _) = writer.commit()?;
        debug_assert_eq!(digest, descriptor.digest, "verified while streaming");
        Ok(())
    }
}
