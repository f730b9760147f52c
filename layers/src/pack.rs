//! `kiln pack`: one reproducible single-layer image from a directory tree.
//!
//! The tree is walked ([`crate::walk`]), written as tar, hashed for the
//! `diff_id`, compressed ([`crate::compress`]) and hashed again for the blob digest in one pass,
//! straight into the layout's blob directory. Memory use does not grow with the tree's size.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use kiln_reproducible::Policy;

use crate::compress::{Compression, Encoder};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::oci::layout::{BlobWriter, Layout, LayoutWriter};
use crate::oci::media_type;
use crate::oci::reference::Reference;
use crate::oci::spec::{
    self, Descriptor, ExecConfig, History, ImageConfig, Manifest, Platform, RootFs, annotation,
};
use crate::tar::TarBuilder;
use crate::walk::Walk;

/// Receives progress while a layer is written. Library code never prints; the CLI implements
/// this to draw progress.
pub trait Reporter {
    /// Called after each entry (path relative to the tree) has been written, with the size of
    /// its data.
    fn entry_written(&self, _relative: &[u8], _bytes: u64) {}
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {}

/// How to write a layer.
#[derive(Debug, Clone, Copy)]
pub struct LayerOptions {
    /// Normalisation policy for every entry.
    pub policy: Policy,
    /// Compression of the layer blob.
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub threads: NonZeroUsize,
}

/// A layer written to a layout.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Descriptor of the (compressed) blob.
    pub descriptor: Descriptor,
    /// Digest of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub uncompressed_size: u64,
}

/// Writes `tree` as one layer blob into `blob`.
pub fn write_layer(
    tree: &Path,
    blob: BlobWriter,
    options: &LayerOptions,
    reporter: &dyn Reporter,
) -> Result<Layer> {
    let sink = blob.temp_path();
    let encoder = Encoder::new(blob, options.compression, options.threads)
        .map_err(|e| Error::write("write", &sink, e))?;
    let mut tar = TarBuilder::new(HashingWriter::new(encoder), options.policy, &sink);
    for entry in Walk::new(tree)? {
        let entry = entry?;
        tar.append(&entry)?;
        let bytes = if entry.metadata.is_file() { entry.metadata.len() } else { 0 };
        reporter.entry_written(&entry.relative, bytes);
    }
    let (encoder, diff_id, uncompressed_size) = tar.finish()?.finish();
    let blob = encoder.finish().map_err(|e| Error::write("write", &sink, e))?;
    let (digest, size) = blob.commit()?;
    Ok(Layer {
        descriptor: Descriptor::new(options.compression.layer_media_type(), digest, size),
        diff_id,
        uncompressed_size,
    })
}

/// What `kiln pack` makes.
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// Name of the image in the layout.
    pub reference: Reference,
    /// Layer options.
    pub layer: LayerOptions,
    /// Platform recorded in the config and the index.
    pub platform: Platform,
    /// An image to start from: its layers come first and its configuration is kept.
    pub base: Option<Base>,
    /// The entrypoint, replacing the base's.
    pub entrypoint: Option<Vec<String>>,
}

/// A base image in an OCI image layout.
#[derive(Debug, Clone)]
pub struct Base {
    /// The layout holding it (may be the layout being written).
    pub layout: PathBuf,
    /// Its name in the layout's `index.json` (an image manifest, or an index with one for the
    /// platform being packed).
    pub reference: String,
}

/// The result of [`pack`].
#[derive(Debug, Clone)]
pub struct Packed {
    /// The layout written.
    pub layout: PathBuf,
    /// The image's name.
    pub reference: Reference,
    /// Descriptor of the image manifest.
    pub manifest: Descriptor,
    /// Descriptor of the image config.
    pub config: Descriptor,
    /// The layer made from the tree (the last one, after the base's).
    pub layer: Layer,
}

/// Refuses an output layout inside the tree (or the tree itself): the layout and its staging
/// directory would be packed into it, differently on each run. Where `out` does not exist yet,
/// its nearest existing ancestor decides.
fn refuse_output_inside(tree: &Path, out: &Path) -> Result<()> {
    let Ok(tree_real) = std::fs::canonicalize(tree) else { return Ok(()) };
    let mut existing = std::path::absolute(out).map_err(|e| Error::write("read", out, e))?;
    let mut rest = Vec::new();
    let out_real = loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => break rest.iter().rev().fold(real, |path: std::path::PathBuf, part| path.join(part)),
            Err(_) => match (existing.file_name().map(ToOwned::to_owned), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_owned();
                }
                _ => return Ok(()),
            },
        }
    };
    if out_real.starts_with(&tree_real) {
        return Err(Error::OutputInsideTree { out: out.to_owned(), tree: tree.to_owned() });
    }
    Ok(())
}

/// Packs `tree` as one layer named `options.reference` into the layout at `out` (created if
/// needed; an image of the same name is replaced), on top of `options.base`'s layers if given.
///
/// From a base, kiln keeps its layers (blobs copied unchanged), its environment, entrypoint,
/// command and labels, and its history; the config's `created` is the epoch, never the base's
/// or the current time.
pub fn pack(tree: &Path, out: &Path, options: &PackOptions, reporter: &dyn Reporter) -> Result<Packed> {
    refuse_output_inside(tree, out)?;
    let mut layout = LayoutWriter::create_or_update(out)?;
    let (mut layers, mut config) = match &options.base {
        Some(base) => base_image(base, &layout, &options.platform)?,
        None => (Vec::new(), None),
    };
    let layer = write_layer(tree, layout.blob()?, &options.layer, reporter)?;
    let created = options.layer.policy.epoch.to_rfc3339();
    let (mut diff_ids, mut history, mut exec) = match config.take() {
        Some(base) => (base.rootfs.diff_ids, base.history, base.config.unwrap_or_default()),
        None => (Vec::new(), Vec::new(), ExecConfig::default()),
    };
    if let Some(entrypoint) = &options.entrypoint {
        exec.entrypoint = entrypoint.clone();
    }
    diff_ids.push(layer.diff_id.clone());
    history.push(History {
        created: Some(created.clone()),
        created_by: Some("kiln pack".into()),
        comment: None,
        empty_layer: false,
    });
    layers.push(layer.descriptor.clone());

    let config = ImageConfig {
        created: Some(created.clone()),
        architecture: options.platform.architecture.clone(),
        os: options.platform.os.clone(),
        config: Some(exec),
        rootfs: RootFs { kind: "layers".into(), diff_ids },
        history,
    };
    let config = layout.put_document(media_type::IMAGE_CONFIG, &spec::encode("image config", &config)?)?;

    let manifest = Manifest {
        schema_version: 2,
        media_type: media_type::IMAGE_MANIFEST.into(),
        artifact_type: None,
        config: config.clone(),
        layers,
        subject: None,
        annotations: [(annotation::CREATED.to_owned(), created)].into(),
    };
    let mut manifest_descriptor =
        layout.put_document(media_type::IMAGE_MANIFEST, &spec::encode("image manifest", &manifest)?)?;
    let manifest_only = manifest_descriptor.clone();
    manifest_descriptor.platform = Some(options.platform.clone());
    layout.set(&options.reference, manifest_descriptor);
    let layout = layout.commit()?;
    Ok(Packed { layout, reference: options.reference.clone(), manifest: manifest_only, config, layer })
}

/// The base's layer descriptors (their blobs now in `layout`) and its config.
fn base_image(
    base: &Base,
    layout: &LayoutWriter,
    platform: &Platform,
) -> Result<(Vec<Descriptor>, Option<ImageConfig>)> {
    let source = Layout::open(&base.layout)?;
    let mut descriptor = source.find(&base.reference)?.clone();
    if media_type::is_index(&descriptor.media_type) {
        let index = source.nested_index(&descriptor)?;
        descriptor = index
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.architecture == platform.architecture && p.os == platform.os)
            })
            .cloned()
            .ok_or_else(|| Error::NotALayout {
                path: base.layout.clone(),
                reason: format!(
                    "{} has no image for {}/{}",
                    base.reference, platform.os, platform.architecture
                ),
            })?;
    }
    let manifest = source.manifest(&descriptor)?;
    let config = source.config(&manifest.config)?;
    for layer in &manifest.layers {
        if layout.has_blob(layer) {
            continue;
        }
        let mut from = std::io::Read::take(source.open_blob_checked(layer)?, layer.size);
        let mut blob = layout.blob()?;
        let temp = blob.temp_path();
        std::io::copy(&mut from, &mut blob).map_err(|e| Error::write("copy a base layer to", &temp, e))?;
        let (digest, size) = blob.commit()?;
        if digest != layer.digest || size != layer.size {
            return Err(Error::NotALayout {
                path: source.blob_path(&layer.digest),
                reason: format!("the blob's content has digest {digest} ({size} bytes)"),
            });
        }
    }
    Ok((manifest.layers, Some(config)))
}
