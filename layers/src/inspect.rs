//! What a layout holds: its images, their digests, configs and layers.
//!
//! The walk is bounded by [`crate::oci::limits`]: indexes nest at most
//! [`MAX_INDEX_DEPTH`](crate::oci::limits::MAX_INDEX_DEPTH) levels, one inspection reads a
//! bounded number of documents and describes a bounded number of descriptors, and a manifest or
//! index listed again (two names for one image, an index listing a child twice) is read once and
//! its description reused.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::layout::Layout;
use crate::oci::limits::{Budget, LimitError};
use crate::oci::media_type;
use crate::oci::spec::{Descriptor, ImageConfig, Index, Manifest};

/// Where the documents of an image come from: a layout on disk, or a registry.
pub trait Documents {
    /// The source's error; a walk beyond kiln's limits is one too.
    type Error: From<LimitError>;
    /// An image manifest.
    fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, Self::Error>;
    /// An image index.
    fn nested_index(&self, descriptor: &Descriptor) -> Result<Index, Self::Error>;
    /// An image config.
    fn config(&self, descriptor: &Descriptor) -> Result<ImageConfig, Self::Error>;
}

impl Documents for Layout {
    type Error = Error;

    fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        Layout::manifest(self, descriptor)
    }

    fn nested_index(&self, descriptor: &Descriptor) -> Result<Index> {
        Layout::nested_index(self, descriptor)
    }

    fn config(&self, descriptor: &Descriptor) -> Result<ImageConfig> {
        Layout::config(self, descriptor)
    }
}

/// Summary of a whole layout.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The layout's directory.
    pub layout: PathBuf,
    /// Every entry of `index.json`, in order.
    pub images: Vec<Image>,
}

/// One manifest or index.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// `org.opencontainers.image.ref.name`, if set.
    pub name: Option<String>,
    /// Digest of the manifest or index.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// `os/architecture[/variant]` from the descriptor, if set.
    pub platform: Option<String>,
    /// What it contains.
    #[serde(flatten)]
    pub content: Content,
}

/// Contents of a manifest or index.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Content {
    /// An image manifest.
    Image {
        /// Config digest.
        config: Digest,
        /// `created` of the config.
        created: Option<String>,
        /// `os/architecture` of the config.
        config_platform: String,
        /// Layers, base first.
        layers: Vec<Layer>,
        /// Sum of the layer blob sizes.
        layers_size: u64,
    },
    /// An image index.
    Index {
        /// Its entries.
        manifests: Vec<Image>,
    },
    /// An artifact manifest (an SBOM, provenance): a document about another manifest.
    Artifact {
        /// Its `artifactType`.
        artifact_type: String,
        /// The manifest it is about.
        subject: Option<Digest>,
        /// Sum of its blob sizes (the documents).
        layers_size: u64,
    },
    /// Something else (an artifact of a media type kiln does not interpret).
    Other,
}

/// One layer of an image.
#[derive(Debug, Clone, Serialize)]
pub struct Layer {
    /// Blob digest.
    pub digest: Digest,
    /// Media type.
    pub media_type: String,
    /// Blob size.
    pub size: u64,
    /// Uncompressed digest from the config.
    pub diff_id: Option<Digest>,
}

/// Reads the layout's index and every manifest, index and config it references. Documents are
/// checked against their digests; layer blobs are not read.
pub fn inspect(layout: &Layout) -> Result<Summary> {
    let mut walk = Walk::default();
    let entries = &layout.index().manifests;
    walk.budget.descriptors(entries.len(), "index.json")?;
    let images = entries.iter().map(|d| walk.image(layout, d, 0)).collect::<Result<_>>()?;
    Ok(Summary { layout: layout.root().to_owned(), images })
}

/// Describes the manifest or index `descriptor` points at, reading its documents from `source`.
pub fn image<D: Documents>(source: &D, descriptor: &Descriptor) -> Result<Image, D::Error> {
    Walk::default().image(source, descriptor, 0)
}

/// One inspection: what it has spent, and the contents and configs already read, by digest.
#[derive(Default)]
struct Walk {
    budget: Budget,
    described: HashMap<Digest, (Content, usize)>,
    configs: HashMap<Digest, ImageConfig>,
}

impl Walk {
    /// Describes `descriptor`, `depth` levels of indexes below the image asked for.
    fn image<D: Documents>(
        &mut self,
        source: &D,
        descriptor: &Descriptor,
        depth: usize,
    ) -> Result<Image, D::Error> {
        let document =
            media_type::is_manifest(&descriptor.media_type) || media_type::is_index(&descriptor.media_type);
        if !document {
            return Ok(describe(descriptor, Content::Other));
        }
        if let Some((content, count)) = self.described.get(&descriptor.digest) {
            // Shown again in full, and counted again: what is shown stays bounded.
            let content = content.clone();
            self.budget.descriptors(*count, &descriptor.digest)?;
            return Ok(describe(descriptor, content));
        }
        let before = self.budget_descriptors();
        let content = if media_type::is_manifest(&descriptor.media_type) {
            self.budget.document(descriptor, depth, "image manifest")?;
            let manifest = source.manifest(descriptor)?;
            self.budget.descriptors(manifest.layers.len() + 1, &descriptor.digest)?;
            if let Some(artifact_type) = &manifest.artifact_type {
                Content::Artifact {
                    artifact_type: artifact_type.clone(),
                    subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
                    layers_size: manifest.layers.iter().map(|l| l.size).fold(0, u64::saturating_add),
                }
            } else {
                let config = match self.configs.get(&manifest.config.digest) {
                    Some(config) => config.clone(),
                    None => {
                        self.budget.document(&manifest.config, depth, "image config")?;
                        let config = source.config(&manifest.config)?;
                        self.configs.insert(manifest.config.digest.clone(), config.clone());
                        config
                    }
                };
                let layers = manifest
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(i, layer)| Layer {
                        digest: layer.digest.clone(),
                        media_type: layer.media_type.clone(),
                        size: layer.size,
                        diff_id: config.rootfs.diff_ids.get(i).cloned(),
                    })
                    .collect::<Vec<_>>();
                Content::Image {
                    config: manifest.config.digest,
                    created: config.created,
                    config_platform: format!("{}/{}", config.os, config.architecture),
                    layers_size: layers.iter().map(|l| l.size).fold(0, u64::saturating_add),
                    layers,
                }
            }
        } else {
            self.budget.document(descriptor, depth, "image index")?;
            let index = source.nested_index(descriptor)?;
            self.budget.descriptors(index.manifests.len(), &descriptor.digest)?;
            Content::Index {
                manifests: index
                    .manifests
                    .iter()
                    .map(|d| self.image(source, d, depth + 1))
                    .collect::<Result<_, _>>()?,
            }
        };
        let count = self.budget_descriptors() - before;
        self.described.insert(descriptor.digest.clone(), (content.clone(), count));
        Ok(describe(descriptor, content))
    }

    fn budget_descriptors(&self) -> usize {
        self.budget.spent().1
    }
}

fn describe(descriptor: &Descriptor, content: Content) -> Image {
    Image {
        name: descriptor.ref_name().map(str::to_owned),
        digest: descriptor.digest.clone(),
        media_type: descriptor.media_type.clone(),
        size: descriptor.size,
        platform: descriptor.platform.as_ref().map(|p| match &p.variant {
            Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        }),
        content,
    }
}
