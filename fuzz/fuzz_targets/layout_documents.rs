//! Index walking over arbitrary documents, linked in any shape.
//!
//! The input, cut at `0xff` bytes, is a set of documents; a descriptor's document is the one its
//! digest's first hex digit picks, so the fuzzer shapes any graph — cycles, fan-outs, chains —
//! without computing digests. `inspect::image` must return (a description or an error) having
//! read no more documents than kiln's limit, and never panic.

#![no_main]

use std::cell::Cell;

use kiln_layers::digest::Digest;
use kiln_layers::inspect::{self, Documents};
use kiln_layers::oci::limits::{LimitError, MAX_DOCUMENTS};
use kiln_layers::oci::media_type;
use kiln_layers::oci::spec::{Descriptor, ImageConfig, Index, Manifest};
use libfuzzer_sys::fuzz_target;

struct Chunks<'a> {
    chunks: Vec<&'a [u8]>,
    reads: Cell<usize>,
}

#[derive(Debug)]
enum FuzzError {
    Parse,
    Limit,
}

impl From<LimitError> for FuzzError {
    fn from(_: LimitError) -> Self {
        FuzzError::Limit
    }
}

impl Chunks<'_> {
    fn read<T: serde::de::DeserializeOwned>(&self, descriptor: &Descriptor) -> Result<T, FuzzError> {
        self.reads.set(self.reads.get() + 1);
        // The walk charges every document before it reads it.
        assert!(self.reads.get() <= MAX_DOCUMENTS, "read more documents than kiln's limit");
        let pick = usize::from(descriptor.digest.encoded().as_bytes()[0]) % self.chunks.len();
        serde_json::from_slice(self.chunks[pick]).map_err(|_| FuzzError::Parse)
    }
}

impl Documents for Chunks<'_> {
    type Error = FuzzError;

    fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, FuzzError> {
        self.read(descriptor)
    }

    fn nested_index(&self, descriptor: &Descriptor) -> Result<Index, FuzzError> {
        self.read(descriptor)
    }

    fn config(&self, descriptor: &Descriptor) -> Result<ImageConfig, FuzzError> {
        self.read(descriptor)
    }
}

fuzz_target!(|data: &[u8]| {
    let chunks: Vec<&[u8]> = data.split(|b| *b == 0xff).take(64).collect();
    let source = Chunks { chunks, reads: Cell::new(0) };
    let media = if data.first().is_some_and(|b| b & 1 == 1) {
        media_type::IMAGE_INDEX
    } else {
        media_type::IMAGE_MANIFEST
    };
    let top = Descriptor::new(media, Digest::sha256_of(data), data.len() as u64);
    let _ = inspect::image(&source, &top);
});
