//! How much kiln reads of image documents, from a layout or a registry: the one place the
//! limits are named.
//!
//! A layout or a registry is input that someone else may have made, so nothing in it decides
//! how much kiln reads or how deep it walks:
//! - a document (manifest, index, config, `index.json`, `oci-layout`, a referrers index) is at
//!   most [`MAX_DOCUMENT_SIZE`] bytes, refused by its descriptor's size before a byte is read,
//!   and never read past its descriptor's size (or the limit, where no descriptor gives one);
//! - image indexes nest at most [`MAX_INDEX_DEPTH`] levels below the image asked for;
//! - one operation (an `inspect`, a `pull`, a `push`) reads at most [`MAX_DOCUMENTS`] documents
//!   and meets at most [`MAX_DESCRIPTORS`] descriptors (index entries, configs, layers), and
//!   reads a document listed twice once. Work and memory grow with what the source holds, never
//!   with how often it lists the same thing.
//!
//! The size is containerd's order (4 MiB for a manifest): a real image's manifest or config is a
//! few KiB, an index listing every platform and attestation a few tens. Real indexes nest one or
//! two levels (an index of platforms, a layout's `index.json` naming an index); eight leave room
//! for any layering a tool makes and stop a chain of thousands long before the stack or the
//! clock matter. The counts are far above a layout of a thousand images, and keep what an
//! operation holds in memory to a few tens of MiB.

use crate::digest::Digest;
use crate::oci::media_type;
use crate::oci::spec::Descriptor;

/// Largest document kiln reads: 4 MiB.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// Deepest level of nested image indexes below the image asked for.
pub const MAX_INDEX_DEPTH: usize = 8;

/// Most documents (manifests, indexes, configs) read in one operation.
pub const MAX_DOCUMENTS: usize = 4096;

/// Most descriptors (index entries, configs, layers) met in one operation.
pub const MAX_DESCRIPTORS: usize = 65_536;

/// A limit an image exceeds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A document's descriptor gives a size above [`MAX_DOCUMENT_SIZE`].
    #[error(
        "{what} {digest} is {size} bytes; kiln reads documents of at most {} MiB",
        MAX_DOCUMENT_SIZE >> 20
    )]
    DocumentTooLarge {
        /// "image manifest", "image index", "image config".
        what: &'static str,
        /// The document.
        digest: Digest,
        /// The size its descriptor gives.
        size: u64,
    },
    /// An image index nests deeper than [`MAX_INDEX_DEPTH`].
    #[error(
        "{digest} is listed {depth} levels of image indexes below the image; kiln follows at most {MAX_INDEX_DEPTH}"
    )]
    TooDeep {
        /// The descriptor found too deep.
        digest: Digest,
        /// Its depth.
        depth: usize,
    },
    /// One operation would read more than [`MAX_DOCUMENTS`] documents.
    #[error("reading {digest} would make more than {MAX_DOCUMENTS} documents in one operation, kiln's limit")]
    TooManyDocuments {
        /// The document that went over.
        digest: Digest,
    },
    /// One operation would meet more than [`MAX_DESCRIPTORS`] descriptors.
    #[error("{at} brings the descriptors met in one operation over {MAX_DESCRIPTORS}, kiln's limit")]
    TooManyDescriptors {
        /// The document whose entries went over (a digest, or `index.json`).
        at: String,
    },
}

/// What a descriptor's document is called in messages.
pub fn document_kind(descriptor: &Descriptor) -> &'static str {
    if media_type::is_index(&descriptor.media_type) {
        "image index"
    } else if media_type::is_manifest(&descriptor.media_type) {
        "image manifest"
    } else {
        "document"
    }
}

/// Refuses a document whose descriptor is larger than [`MAX_DOCUMENT_SIZE`], before it is read.
pub fn check_document_size(descriptor: &Descriptor, what: &'static str) -> Result<(), LimitError> {
    if descriptor.size > MAX_DOCUMENT_SIZE {
        return Err(LimitError::DocumentTooLarge {
            what,
            digest: descriptor.digest.clone(),
            size: descriptor.size,
        });
    }
    Ok(())
}

/// What one operation has read so far; each walk of documents charges it before it reads.
#[derive(Debug, Default)]
pub struct Budget {
    documents: usize,
    descriptors: usize,
}

impl Budget {
    /// A budget with nothing spent.
    pub fn new() -> Self {
        Budget::default()
    }

    /// Charges the document `descriptor` points at, `depth` levels of indexes below the image
    /// asked for (0 for that image), before it is read: refused when too deep, too large or one
    /// too many.
    pub fn document(
        &mut self,
        descriptor: &Descriptor,
        depth: usize,
        what: &'static str,
    ) -> Result<(), LimitError> {
        if depth > MAX_INDEX_DEPTH {
            return Err(LimitError::TooDeep { digest: descriptor.digest.clone(), depth });
        }
        check_document_size(descriptor, what)?;
        self.documents += 1;
        if self.documents > MAX_DOCUMENTS {
            return Err(LimitError::TooManyDocuments { digest: descriptor.digest.clone() });
        }
        Ok(())
    }

    /// Charges `count` descriptors listed by the document `at` (entries of an index, a
    /// manifest's config and layers), or already described and shown again.
    pub fn descriptors(&mut self, count: usize, at: impl std::fmt::Display) -> Result<(), LimitError> {
        self.descriptors = self.descriptors.saturating_add(count);
        if self.descriptors > MAX_DESCRIPTORS {
            return Err(LimitError::TooManyDescriptors { at: at.to_string() });
        }
        Ok(())
    }

    /// Documents read and descriptors met so far.
    pub fn spent(&self) -> (usize, usize) {
        (self.documents, self.descriptors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(size: u64) -> Descriptor {
        Descriptor::new(media_type::IMAGE_INDEX, Digest::sha256_of(&size.to_le_bytes()), size)
    }

    #[test]
    fn depth_size_and_counts_are_bounded() {
        let mut budget = Budget::new();
        assert!(budget.document(&descriptor(10), MAX_INDEX_DEPTH, "image index").is_ok());
        assert!(matches!(
            budget.document(&descriptor(10), MAX_INDEX_DEPTH + 1, "image index"),
            Err(LimitError::TooDeep { depth, .. }) if depth == MAX_INDEX_DEPTH + 1
        ));
        assert!(matches!(
            budget.document(&descriptor(MAX_DOCUMENT_SIZE + 1), 0, "image index"),
            Err(LimitError::DocumentTooLarge { size, .. }) if size == MAX_DOCUMENT_SIZE + 1
        ));
        assert!(budget.document(&descriptor(MAX_DOCUMENT_SIZE), 0, "image index").is_ok());
        let mut budget = Budget::new();
        for _ in 0..MAX_DOCUMENTS {
            budget.document(&descriptor(1), 0, "image index").unwrap();
        }
        assert!(matches!(
            budget.document(&descriptor(1), 0, "image index"),
            Err(LimitError::TooManyDocuments { .. })
        ));
        let digest = Digest::sha256_of(b"x");
        budget.descriptors(MAX_DESCRIPTORS, &digest).unwrap();
        assert!(budget.descriptors(1, &digest).is_err());
        assert!(budget.descriptors(usize::MAX, &digest).is_err());
    }

    #[test]
    fn messages_name_the_limit() {
        let digest = Digest::sha256_of(b"x");
        let deep = LimitError::TooDeep { digest: digest.clone(), depth: 9 };
        assert!(deep.to_string().contains("at most 8"), "{deep}");
        let large = LimitError::DocumentTooLarge { what: "image manifest", digest, size: 5 << 20 };
        assert!(large.to_string().contains("at most 4 MiB"), "{large}");
    }
}
