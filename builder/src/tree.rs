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
    visit(root, root, Modes::Exact, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The digest of a tree as version control keeps it: modes reduced to 0755 (directories and
/// files with any execute bit) and 0644, so a checkout under another umask has the same one.
pub fn digest_as_committed(root: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    visit(root, root, Modes::AsCommitted, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Copies the tree at `from` to the new directory `to` with modes as version control keeps
/// them ([`digest_as_committed`]); symbolic links are copied as links, never followed.
pub fn copy_as_committed(from: &Path, to: &Path) -> Result<()> {
    let write_error = |path: &Path, source| Error::Write { path: path.to_owned(), source };
    fs::create_dir(to).map_err(|source| write_error(to, source))?;
    let mut entries: Vec<_> = fs::read_dir(from)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::Read { path: from.to_owned(), source })?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let meta =
            fs::symlink_metadata(&source).map_err(|e| Error::Read { path: source.clone(), source: e })?;
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&source).map_err(|e| Error::Read { path: source.clone(), source: e })?;
            std::os::unix::fs::symlink(link, &target).map_err(|e| write_error(&target, e))?;
        } else if meta.is_dir() {
            copy_as_committed(&source, &target)?;
        } else if meta.is_file() {
            fs::copy(&source, &target).map_err(|e| write_error(&target, e))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| write_error(&target, e))?;
        }
    }
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).map_err(|e| write_error(to, e))
}

/// Copies the tree at `from` into the directory `to`, keeping permission bits and links, and
/// merging with what is there: directories merge, an identical file or link is left alone, and
/// anything else at an existing path is a [`Error::MergeConflict`] between the input `placed`
/// records for that path and `name`. Every path this call creates (relative to `to`) is
/// recorded in `placed` as `name`'s.
pub fn merge_into(
    from: &Path,
    to: &Path,
    name: &str,
    placed: &mut std::collections::BTreeMap<std::path::PathBuf, String>,
) -> Result<()> {
    merge_dir(from, to, Path::new(""), name, placed)
}

fn merge_dir(
    from: &Path,
    to: &Path,
    relative: &Path,
    name: &str,
    placed: &mut std::collections::BTreeMap<std::path::PathBuf, String>,
) -> Result<()> {
    let write_error = |path: &Path, source| Error::Write { path: path.to_owned(), source };
    let mut entries: Vec<_> = fs::read_dir(from)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::Read { path: from.to_owned(), source })?;
    entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for entry in entries {
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let inner = relative.join(entry.file_name());
        let meta =
            fs::symlink_metadata(&source).map_err(|e| Error::Read { path: source.clone(), source: e })?;
        let existing = fs::symlink_metadata(&target).ok();
        let conflict = || Error::MergeConflict {
            path: inner.clone(),
            first: placed.get(&inner).cloned().unwrap_or_else(|| "the tree merged into".into()),
            second: name.to_owned(),
        };
        if meta.is_dir() {
            match existing {
                Some(existing) if existing.is_dir() => {}
                Some(_) => return Err(conflict()),
                None => {
                    fs::create_dir(&target).map_err(|e| write_error(&target, e))?;
                    fs::set_permissions(&target, meta.permissions()).map_err(|e| write_error(&target, e))?;
                    placed.insert(inner.clone(), name.to_owned());
                }
            }
            merge_dir(&source, &target, &inner, name, placed)?;
            continue;
        }
        if let Some(existing) = existing {
            let same = if meta.file_type().is_symlink() {
                existing.file_type().is_symlink()
                    && fs::read_link(&source).ok() == fs::read_link(&target).ok()
            } else {
                existing.is_file()
                    && existing.permissions().mode() == meta.permissions().mode()
                    && file_sha256(&source)? == file_sha256(&target)?
            };
            if same {
                continue;
            }
            return Err(conflict());
        }
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&source).map_err(|e| Error::Read { path: source.clone(), source: e })?;
            std::os::unix::fs::symlink(link, &target).map_err(|e| write_error(&target, e))?;
        } else if !meta.is_file() {
            let reason =
                "a socket, FIFO or device node: a merged tree holds only files, directories and links";
            return Err(Error::Read { path: source, source: std::io::Error::other(reason) });
        } else {
            fs::copy(&source, &target).map_err(|e| write_error(&target, e))?;
            fs::set_permissions(&target, meta.permissions()).map_err(|e| write_error(&target, e))?;
        }
        placed.insert(inner, name.to_owned());
    }
    Ok(())
}

/// Which permission bits a digest covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Modes {
    Exact,
    AsCommitted,
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

fn visit(root: &Path, dir: &Path, modes: Modes, hasher: &mut Sha256) -> Result<()> {
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
        let mode = match modes {
            Modes::Exact => meta.permissions().mode() & 0o7777,
            Modes::AsCommitted if meta.is_dir() || meta.permissions().mode() & 0o111 != 0 => 0o755,
            Modes::AsCommitted => 0o644,
        };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
            hasher.update(b"l\0");
            hasher.update(target.as_os_str().as_bytes());
        } else if meta.is_dir() {
            hasher.update(format!("d\0{mode:o}"));
            hasher.update(b"\n");
            visit(root, &path, modes, hasher)?;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::{Path, PathBuf};

    use super::*;

    fn file(root: &Path, relative: &str, content: &str, mode: u32) {
        let path = root.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Two input trees, `a` and `b`, merged in that order into a new directory.
    fn merge(a: impl Fn(&Path), b: impl Fn(&Path)) -> (tempfile::TempDir, Result<BTreeMap<PathBuf, String>>) {
        let dir = tempfile::tempdir().unwrap();
        let (from_a, from_b, to) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("to"));
        for path in [&from_a, &from_b, &to] {
            fs::create_dir(path).unwrap();
        }
        a(&from_a);
        b(&from_b);
        let mut placed = BTreeMap::new();
        let result = merge_into(&from_a, &to, "step-a", &mut placed)
            .and_then(|()| merge_into(&from_b, &to, "step-b", &mut placed))
            .map(|()| placed);
        (dir, result)
    }

    fn conflict_at(result: Result<BTreeMap<PathBuf, String>>) -> (PathBuf, String, String) {
        match result {
            Err(Error::MergeConflict { path, first, second }) => (path, first, second),
            other => panic!("expected a merge conflict, got {other:?}"),
        }
    }

    #[test]
    fn identical_paths_merge_and_each_path_is_recorded_for_whoever_placed_it() {
        let (dir, result) = merge(
            |a| {
                file(a, "usr/lib/shared", "same", 0o644);
                file(a, "usr/lib/only-a", "a", 0o755);
                symlink("shared", a.join("usr/lib/link")).unwrap();
            },
            |b| {
                file(b, "usr/lib/shared", "same", 0o644);
                file(b, "usr/bin/only-b", "b", 0o755);
                symlink("shared", b.join("usr/lib/link")).unwrap();
            },
        );
        let placed = result.unwrap();
        assert_eq!(placed[Path::new("usr/lib/shared")], "step-a");
        assert_eq!(placed[Path::new("usr/lib/only-a")], "step-a");
        assert_eq!(placed[Path::new("usr/bin/only-b")], "step-b");
        let to = dir.path().join("to");
        assert_eq!(fs::read_to_string(to.join("usr/bin/only-b")).unwrap(), "b");
        assert_eq!(fs::metadata(to.join("usr/lib/only-a")).unwrap().permissions().mode() & 0o7777, 0o755);
        assert_eq!(fs::read_link(to.join("usr/lib/link")).unwrap(), Path::new("shared"));
    }

    #[test]
    fn a_path_two_inputs_disagree_about_names_both() {
        let content = conflict_at(
            merge(|a| file(a, "etc/conf", "one", 0o644), |b| file(b, "etc/conf", "two", 0o644)).1,
        );
        assert_eq!(content, (PathBuf::from("etc/conf"), "step-a".into(), "step-b".into()));

        let mode =
            conflict_at(merge(|a| file(a, "bin/tool", "x", 0o644), |b| file(b, "bin/tool", "x", 0o755)).1);
        assert_eq!(mode.0, Path::new("bin/tool"));

        let kind =
            conflict_at(merge(|a| file(a, "lib/x", "file", 0o644), |b| file(b, "lib/x/y", "", 0o644)).1);
        assert_eq!(kind, (PathBuf::from("lib/x"), "step-a".into(), "step-b".into()));

        let link = conflict_at(
            merge(|a| symlink("one", a.join("l")).unwrap(), |b| symlink("two", b.join("l")).unwrap()).1,
        );
        assert_eq!(link.0, Path::new("l"));
        let error = Error::MergeConflict { path: "etc/conf".into(), first: "a".into(), second: "b".into() };
        assert_eq!(error.to_string(), "etc/conf is in both a and b, with different content");
    }
}
