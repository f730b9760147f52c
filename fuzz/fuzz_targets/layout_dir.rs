//! Layouts on disk made of arbitrary bytes: `Layout::open`, `inspect::inspect` and the blob
//! readers must return an error or a result, read nothing beyond a descriptor's size, and never
//! panic.
//!
//! The input, cut at `0xff` bytes, is `index.json` followed by up to ten blobs. So the fuzzer can
//! write valid references, `@N` in any of them is replaced by the digest of blob N and `#N` by
//! its size (blob N's own references to later blobs resolved first: references point forward).

#![no_main]

use std::path::Path;

use kiln_layers::digest::Digest;
use kiln_layers::inspect;
use kiln_layers::oci::layout::Layout;
use libfuzzer_sys::fuzz_target;

/// `text` with `@N` and `#N` (N > `after`, when given) replaced by blob N's digest and size.
fn resolve(text: &[u8], blobs: &[Option<Vec<u8>>], after: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let marker = text[i];
        let target = text.get(i + 1).filter(|d| d.is_ascii_digit()).map(|d| usize::from(d - b'0'));
        match (marker, target) {
            (b'@' | b'#', Some(n))
                if after.is_none_or(|a| n > a) && blobs.get(n).is_some_and(Option::is_some) =>
            {
                let blob = blobs[n].as_deref().unwrap_or_default();
                if marker == b'@' {
                    out.extend_from_slice(Digest::sha256_of(blob).to_string().as_bytes());
                } else {
                    out.extend_from_slice(blob.len().to_string().as_bytes());
                }
                i += 2;
            }
            _ => {
                out.push(marker);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0xff);
    let index = parts.next().unwrap_or_default();
    let raw: Vec<&[u8]> = parts.take(10).collect();
    let mut blobs: Vec<Option<Vec<u8>>> = vec![None; raw.len()];
    for n in (0..raw.len()).rev() {
        blobs[n] = Some(resolve(raw[n], &blobs, Some(n)));
    }
    let index = resolve(index, &blobs, None);
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = dir.path();
    let written = std::fs::create_dir_all(root.join("blobs/sha256")).is_ok()
        && std::fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).is_ok()
        && std::fs::write(root.join("index.json"), &index).is_ok()
        && blobs.iter().flatten().all(|blob| {
            let path = Path::new("blobs/sha256").join(Digest::sha256_of(blob).encoded());
            std::fs::write(root.join(path), blob).is_ok()
        });
    if !written {
        return;
    }
    let Ok(layout) = Layout::open(root) else { return };
    let _ = inspect::inspect(&layout);
    for descriptor in &layout.index().manifests {
        if let Ok(bytes) = layout.read_blob(descriptor) {
            assert_eq!(bytes.len() as u64, descriptor.size, "read_blob returned another size");
            assert_eq!(Digest::sha256_of(&bytes), descriptor.digest, "read_blob returned other bytes");
        }
        let _ = layout.open_blob_checked(descriptor);
        let _ = layout.has_blob(descriptor);
    }
});
