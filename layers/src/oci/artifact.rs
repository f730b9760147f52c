//! Artifact manifests: a document about an image (an SBOM, provenance) stored as an OCI image
//! manifest with an `artifactType`, the empty config (`application/vnd.oci.empty.v1+json`, the
//! bytes `{}`), one layer holding the document, and the image's manifest as its `subject` —
//! what an OCI 1.1 registry lists as the image's referrers.
//!
//! In a layout, an artifact is listed in `index.json` with its `artifactType` and the annotation
//! [`annotation::SUBJECT`] naming the image (`NAME:TAG`), never with a `ref.name`, so tools that
//! list images do not take it for one.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::oci::layout::LayoutWriter;
use crate::oci::media_type;
use crate::oci::spec::{self, Descriptor, Manifest, annotation};

/// The content of the empty config blob.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// A document to attach to an image.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    /// The artifact type, also the layer's media type (`application/spdx+json`).
    pub artifact_type: &'a str,
    /// The document's exact bytes.
    pub document: &'a [u8],
    /// `org.opencontainers.image.created` of the manifest (the build's epoch, RFC 3339).
    pub created: &'a str,
}

/// The artifact manifest for `attachment`, whose document and config blobs are `layer` and
/// `config`, about the image manifest `subject`.
pub fn manifest(
    subject: &Descriptor,
    attachment: &Attachment<'_>,
    config: Descriptor,
    layer: Descriptor,
) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: media_type::IMAGE_MANIFEST.into(),
        artifact_type: Some(attachment.artifact_type.to_owned()),
        config,
        layers: vec![layer],
        subject: Some(Descriptor::new(&subject.media_type, subject.digest.clone(), subject.size)),
        annotations: [(annotation::CREATED.to_owned(), attachment.created.to_owned())].into(),
    }
}

/// Stores `attachment` as an artifact manifest about the image `subject` (named `subject_name`
/// in the layout) and lists it in the layout's index, replacing an artifact of the same type
/// about that image. Returns the descriptor listed (with `artifactType` and the manifest's
/// annotations, as a referrers index lists it, plus [`annotation::SUBJECT`]).
pub fn attach(
    layout: &mut LayoutWriter,
    subject_name: &str,
    subject: &Descriptor,
    attachment: &Attachment<'_>,
) -> Result<Descriptor> {
    let config = layout.put_document(media_type::EMPTY, EMPTY_CONFIG)?;
    let layer = layout.put_document(attachment.artifact_type, attachment.document)?;
    let manifest = manifest(subject, attachment, config, layer);
    let mut descriptor =
        layout.put_document(media_type::IMAGE_MANIFEST, &spec::encode("artifact manifest", &manifest)?)?;
    descriptor.artifact_type = manifest.artifact_type.clone();
    descriptor.annotations = manifest.annotations.clone();
    layout.attach(subject_name, descriptor.clone());
    descriptor.annotations.insert(annotation::SUBJECT.to_owned(), subject_name.to_owned());
    Ok(descriptor)
}

/// The descriptor of an artifact as a referrers index lists it: media type, digest, size,
/// `artifactType` and the manifest's annotations, without kiln's layout-only ones.
pub fn referrer(descriptor: &Descriptor) -> Descriptor {
    let annotations: BTreeMap<String, String> = descriptor
        .annotations
        .iter()
        .filter(|(key, _)| key.as_str() != annotation::SUBJECT && key.as_str() != annotation::REF_NAME)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Descriptor { platform: None, annotations, ..descriptor.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn an_artifact_manifest_names_its_subject_without_platform_or_annotations() {
        let digest = Digest::sha256_of(EMPTY_CONFIG);
        let mut subject = Descriptor::new(media_type::IMAGE_MANIFEST, digest.clone(), 10);
        subject.annotations.insert(annotation::REF_NAME.into(), "a:b".into());
        let attachment = Attachment {
            artifact_type: media_type::SPDX_JSON,
            document: b"{}",
            created: "1970-01-01T00:00:00Z",
        };
        let empty = Descriptor::new(media_type::EMPTY, digest.clone(), 2);
        let manifest = manifest(&subject, &attachment, empty.clone(), empty);
        let subject = manifest.subject.as_ref().map(|s| (s.annotations.len(), s.platform.is_none(), s.size));
        assert_eq!(subject, Some((0, true, 10)));
        assert_eq!(manifest.artifact_type.as_deref(), Some(media_type::SPDX_JSON));
    }
}
