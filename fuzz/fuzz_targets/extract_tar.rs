//! Archives made of arbitrary bytes, extracted as a source tarball, as stacked image layers
//! (whiteouts on) and as a shared-cache entry (exact modes, a byte budget): extraction must
//! return an error or a tree, never panic, never change anything outside its root, and leave no
//! link that resolves outside the root.
//!
//! The input is cut at `0xff 0xfe` into up to four archives (layers), each extracted over the
//! last; the first byte of the input picks the options.

#![no_main]

use std::fs;
use std::path::Path;

use kiln_builder::extract::{self, AbsoluteLinks, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let options = match choice % 3 {
        0 => Options::default(),
        1 => Options { absolute_links: AbsoluteLinks::RelativeToRoot, whiteouts: true, ..Options::default() },
        _ => Options { exact_modes: true, max_bytes: Some(4096), ..Options::default() },
    };
    let Ok(work) = tempfile::tempdir() else { return };
    let root = work.path().join("unpacked/root");
    let neighbour = work.path().join("unpacked/neighbour");
    if fs::create_dir_all(&root).is_err() || fs::write(&neighbour, b"another tree").is_err() {
        return;
    }
    let mut failed = false;
    for (i, layer) in split(rest).into_iter().take(4).enumerate() {
        let name = format!("layer{i}.tar");
        if extract::extract_tar(Path::new(&name), layer, &root, options).is_err() {
            failed = true;
            break;
        }
    }
    assert_eq!(fs::read(&neighbour).ok().as_deref(), Some(&b"another tree"[..]), "outside the root changed");
    if !failed {
        assert_eq!(kiln_builder::beneath::leaving_link(&root).ok().flatten(), None, "a link leads out");
    }
    let _ = std::process::Command::new("chmod").arg("-R").arg("u+rwx").arg(&root).status();
});

/// `data` cut at each `0xff 0xfe`.
fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == 0xff && data[i + 1] == 0xfe {
            parts.push(&data[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}
