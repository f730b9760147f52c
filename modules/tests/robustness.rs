//! Malformed modules give errors, never panics: truncations, bit flips and garbage applied to a
//! real module (Debian's `dummy.ko.xz` from the fixture package).
//!
//! This is the fuzzing of the module reader. cargo-fuzz needs a nightly toolchain, which this
//! project does not use; proptest drives the same mutations (truncate, flip bits, overwrite
//! header and section-table bytes, append garbage) over real module bytes on stable, in CI.

#![expect(clippy::unwrap_used, reason = "tests fail on any unexpected error")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kiln_modules::module::Compression;
use kiln_modules::{Error, Module};
use proptest::prelude::*;

const DEB: &str = "/var/cache/kiln-fixtures/linux-image-6.12-amd64.deb";

/// (compressed, decompressed) bytes of a real signed module, or `None` without the fixture.
fn real_module() -> Option<&'static (Vec<u8>, Vec<u8>)> {
    static MODULE: OnceLock<Option<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            if !Path::new(DEB).exists() {
                assert!(std::env::var_os("CI").is_none(), "CI requires {DEB}; run scripts/install-deps");
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "dpkg-deb --fsys-tarfile {DEB} | tar -x -C {} --wildcards '*/kernel/drivers/net/dummy.ko.xz'",
                    dir.path().display()
                ))
                .status()
                .unwrap();
            assert!(status.success());
            let path = find(dir.path()).unwrap();
            let compressed = std::fs::read(&path).unwrap();
            let (plain, _) = kiln_modules::module::read_decompressed(&path).unwrap();
            Some((compressed, plain))
        })
        .as_ref()
}

fn find(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find(&path) {
                return Some(found);
            }
        } else if path.to_string_lossy().ends_with(".ko.xz") {
            return Some(path);
        }
    }
    None
}

/// Parsing must return, and an error must name the file.
fn parse(bytes: &[u8]) {
    let path = Path::new("/mutated/dummy.ko");
    if let Err(error) = Module::parse(bytes, path) {
        assert!(error.to_string().contains("/mutated/dummy.ko"), "{error}");
    }
}

#[test]
fn the_real_module_parses() {
    let Some((_, plain)) = real_module() else { return };
    let module = Module::parse(plain, Path::new("dummy.ko")).unwrap();
    assert_eq!(module.name, "dummy");
    assert!(module.signature.is_some());
    assert!(module.value("vermagic").is_some());
    assert!(module.needed.iter().any(|n| n.symbol == "module_layout"));
}

#[test]
fn every_truncation_is_an_error_or_a_module() {
    let Some((compressed, plain)) = real_module() else { return };
    for len in (0..plain.len()).step_by(7) {
        parse(&plain[..len]);
    }
    let dir = tempfile::tempdir().unwrap();
    for len in (0..compressed.len()).step_by(compressed.len() / 50 + 1) {
        let path = dir.path().join("cut.ko.xz");
        std::fs::write(&path, &compressed[..len]).unwrap();
        match Module::read(&path) {
            Err(Error::Decompress { path: p, .. }) => assert_eq!(p, path),
            Err(Error::Malformed { .. }) if len < 6 => {}
            other => panic!("{len}: {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn bit_flips_anywhere(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..16)) {
        let Some((_, plain)) = real_module() else { return Ok(()) };
        let mut bytes = plain.clone();
        for (at, mask) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        parse(&bytes);
    }

    #[test]
    fn header_and_section_table_overwrites(
        writes in proptest::collection::vec((any::<bool>(), any::<prop::sample::Index>(), any::<u64>()), 1..8),
    ) {
        let Some((_, plain)) = real_module() else { return Ok(()) };
        let mut bytes = plain.clone();
        let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
        let table = shoff..bytes.len().min(shoff + 64 * usize::from(u16::from_le_bytes([bytes[0x3c], bytes[0x3d]])));
        for (in_header, at, value) in writes {
            // Header fields, or section-header fields (offsets, sizes, name and link indexes).
            let at = if in_header || table.is_empty() { at.index(56) } else { table.start + at.index(table.len() - 8) };
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        parse(&bytes);
    }

    #[test]
    fn compressed_bit_flips(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let Some((compressed, plain)) = real_module() else { return Ok(()) };
        let mut bytes = compressed.clone();
        for (at, mask) in flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flipped.ko.xz");
        std::fs::write(&path, &bytes).unwrap();
        // Corruption is found by a check (then an error) or lands where it changes nothing.
        if let Ok((decoded, _)) = kiln_modules::module::read_decompressed(&path) {
            prop_assert!(decoded == *plain || Compression::detect(&bytes).is_none());
        }
        let _ = Module::read(&path);
    }

    #[test]
    fn garbage_after_an_elf_header(tail in proptest::collection::vec(any::<u8>(), 0..4096), keep in 0usize..2048) {
        let Some((_, plain)) = real_module() else { return Ok(()) };
        let mut bytes = plain[..keep.min(plain.len())].to_vec();
        bytes.extend_from_slice(&tail);
        parse(&bytes);
        parse(&tail);
    }
}
