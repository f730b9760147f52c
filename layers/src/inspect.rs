//! What a layout holds: its images, their digests, configs and layers.

use std::path::PathBuf;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::layout::Layout;
use crate::oci::media_type;
use crate::oci::spec::{Descriptor, ImageConfig, Index, Manifest};

/// Where the documents of an image come from: a layout on disk, or a registry.
pub trait Documents {
    /// The source's error.
    type Error;
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
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The layout's directory.
    pub layout: PathBuf,
    /// Every entry of `index.json`, in order.
    pub images: Vec<Image>,
}

/// One manifest or index.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
    let images = layout.index().manifests.iter().map(|d| image(layout, d)).collect::<Result<_>>()?;
    Ok(Summary { layout: layout.root().to_owned(), images })
}

/// Describes the manifest or index `descriptor` points at, reading its documents from `source`.
pub fn image<D: Documents>(source: &D, descriptor: &Descriptor) -> Result<Image, D::Error> {
    let content = if media_type::is_manifest(&descriptor.media_type) {
        let manifest = source.manifest(descriptor)?;
        if let Some(artifact_type) = &manifest.artifact_type {
            return Ok(describe(
                descriptor,
                Content::Artifact {
                    artifact_type: artifact_type.clone(),
                    subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
                    layers_size: manifest.layers.iter().map(|l| l.size).sum(),
                },
            ));
        }
        let config = source.config(&manifest.config)?;
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
            layers_size: layers.iter().map(|l| l.size).sum(),
            layers,
        }
    } else if media_type::is_index(&descriptor.media_type) {
        let index = source.nested_index(descriptor)?;
        Content::Index {
            manifests: index.manifests.iter().map(|d| image(source, d)).collect::<Result<_, _>>()?,
        }
    } else {
        Content::Other
    };
    Ok(describe(descriptor, content))
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
