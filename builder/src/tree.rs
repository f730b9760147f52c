//! A digest of a directory tree's content, for cache keys and cache checks.
//!
//! It covers every entry's path (raw bytes, sorted), kind, permission bits, file content and
//! link target — not times or owners, which the sandbox does not fix and images do not keep.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// SHA-256 (hex) of the tree at `root`; a file gives the digest of its content alone.
pub fn digest(root: &Path) -> Result<String> {
    let meta = fs::symlink_metadata(root).map_err(|source| Error::Read { path: root.to_owned(), source })?;
    if meta.is_file() {
        return file_sha256(root);
    }
    let mut hasher = Sha256::new();
    visit(root, root, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 (hex) of a file's content.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn visit(root: &Path, dir: &Path, hasher: &mut Sha256) -> Result<()> {
    let read_error = |source| Error::Read { path: dir.to_owned(), source };
    let mut entries: Vec<_> =
        fs::read_dir(dir).map_err(read_error)?.collect::<Result<_, _>>().map_err(read_error)?;
    entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for entry in entries {
        let path = entry.path();
        let meta =
            fs::symlink_metadata(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let relative = path.strip_prefix(root).unwrap_or(&path);
        hasher.update(relative.as_os_str().as_bytes());
        hasher.update([0]);
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
            hasher.update(b"l\0");
            hasher.update(target.as_os_str().as_bytes());
        } else if meta.is_dir() {
            hasher.update(format!("d\0{mode:o}"));
            hasher.update(b"\n");
            visit(root, &path, hasher)?;
            continue;
        } else if meta.is_file() {
            hasher.update(format!("f\0{mode:o}\0{}", file_sha256(&path)?));
        } else {
            hasher.update(b"?");
        }
        hasher.update(b"\n");
    }
    Ok(())
}
