//! What an image's tree holds, for its SBOM: every regular file with its SHA-1 and SHA-256, what
//! kind of ELF object it is, the kernels (bzImage files) and the kernel modules.

use std::fs;
use std::io::Read;
use std::path::Path;

use kiln_layers::walk::{Kind, Walk};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// One regular file of the tree.
#[derive(Debug)]
pub(crate) struct ScannedFile {
    /// Path relative to the tree, `/`-separated, as raw bytes.
    pub(crate) relative: Vec<u8>,
    /// SHA-1, lowercase hex.
    pub(crate) sha1: String,
    /// SHA-256, lowercase hex.
    pub(crate) sha256: String,
    /// What kind of ELF object it is, if it is one.
    pub(crate) elf: Option<Elf>,
    /// The kernel release a bzImage names in its header (`kernel_version`), first word.
    pub(crate) kernel_release: Option<String>,
}

/// Kinds of ELF objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elf {
    /// An executable (`ET_EXEC`, or `ET_DYN` without a `.so` name).
    Executable,
    /// A shared library (`ET_DYN` with a `.so` name).
    SharedLibrary,
    /// A relocatable object (`ET_REL`): kernel modules and object files.
    Relocatable,
    /// Another ELF type (core files).
    Other,
}

/// Every regular file of `tree`, in the walk's order (raw bytes, parents first).
pub(crate) fn files(tree: &Path) -> Result<Vec<ScannedFile>> {
    let mut files = Vec::new();
    for entry in Walk::new(tree)? {
        let entry = entry?;
        if entry.kind != Kind::File {
            continue;
        }
        files.push(scan(&entry.path, entry.relative)?);
    }
    Ok(files)
}

/// Hashes one file and reads its header.
fn scan(path: &Path, relative: Vec<u8>) -> Result<ScannedFile> {
    let read_error = |source| Error::Read { path: path.to_owned(), source };
    let mut file = fs::File::open(path).map_err(read_error)?;
    let (mut sha1, mut sha256) = (Sha1::new(), Sha256::new());
    let mut head = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            break;
        }
        if head.len() < HEAD {
            let take = (HEAD - head.len()).min(n);
            head.extend_from_slice(&buffer[..take]);
        }
        sha1.update(&buffer[..n]);
        sha256.update(&buffer[..n]);
    }
    let name = relative.rsplit(|&b| b == b'/').next().unwrap_or(&relative);
    Ok(ScannedFile {
        elf: elf_kind(&head, name),
        kernel_release: bzimage_release(&head),
        relative,
        sha1: hex::encode(sha1.finalize()),
        sha256: hex::encode(sha256.finalize()),
    })
}

/// How much of a file's start is kept: the ELF header, a bzImage's setup header and the
/// version string it points at (within the first 32 KiB of setup code).
const HEAD: usize = 32 * 1024;

fn elf_kind(head: &[u8], name: &[u8]) -> Option<Elf> {
    if head.len() < 18 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let kind = match head[5] {
        2 => u16::from_be_bytes([head[16], head[17]]),
        _ => u16::from_le_bytes([head[16], head[17]]),
    };
    let shared_name = name.windows(3).any(|w| w == b".so");
    Some(match kind {
        1 => Elf::Relocatable,
        2 => Elf::Executable,
        3 if shared_name => Elf::SharedLibrary,
        3 => Elf::Executable,
        _ => Elf::Other,
    })
}

/// The release a Linux bzImage names: the boot protocol's `kernel_version` string (at 0x200
/// plus the offset at 0x20e, when the header `HdrS` is at 0x202), up to the first space.
fn bzimage_release(head: &[u8]) -> Option<String> {
    if head.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let offset = usize::from(u16::from_le_bytes([*head.get(0x20e)?, *head.get(0x20f)?]));
    let start = 0x200usize.checked_add(offset)?;
    let text = head.get(start..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_kinds_follow_the_header_and_name() {
        let mut header = b"\x7fELF\x02\x01\x01".to_vec();
        header.resize(18, 0);
        header[16] = 3;
        assert_eq!(elf_kind(&header, b"libc.so.6"), Some(Elf::SharedLibrary));
        assert_eq!(elf_kind(&header, b"busybox"), Some(Elf::Executable));
        header[16] = 1;
        assert_eq!(elf_kind(&header, b"a.ko"), Some(Elf::Relocatable));
        assert_eq!(elf_kind(b"#!/bin/sh\n", b"x"), None);
    }

    #[test]
    fn a_bzimage_names_its_release() {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"6.12.117-kiln (kiln@x) #1";
        image[0x300..0x300 + version.len()].copy_from_slice(version);
        assert_eq!(bzimage_release(&image).as_deref(), Some("6.12.117-kiln"));
        image[0x202] = 0;
        assert_eq!(bzimage_release(&image), None);
    }
}
