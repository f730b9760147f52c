//! A depth-first walk of a directory tree in deterministic order.
//!
//! Children of each directory are sorted by the raw bytes of their names
//! ([`kiln_reproducible::order`]), parents come before children, and nothing is followed:
//! a symlink is reported as a symlink. Only the names of one directory per level are held in
//! memory, so the walk's memory does not grow with the size of the tree.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use kiln_reproducible::order;

use crate::error::{Error, Result};

/// What a walked path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory; its children follow it.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link with its target, as stored.
    Symlink(OsString),
}

/// One path found by [`Walk`].
#[derive(Debug)]
pub struct Entry {
    /// Path relative to the walk's root, components joined with `/`; never empty.
    pub relative: Vec<u8>,
    /// Path on the host.
    pub path: PathBuf,
    /// What it is.
    pub kind: Kind,
    /// Its `lstat` metadata.
    pub metadata: Metadata,
}

struct Frame {
    host: PathBuf,
    relative: Vec<u8>,
    /// Sorted names, consumed from the end.
    remaining: Vec<OsString>,
}

/// Iterator over a tree's entries, excluding the root itself.
pub struct Walk {
    stack: Vec<Frame>,
}

impl Walk {
    /// Starts a walk at `root`, which must be a directory (a symlink to one is not followed).
    pub fn new(root: &Path) -> Result<Self> {
        let metadata = fs::symlink_metadata(root).map_err(|e| Error::read("read", root, e))?;
        if !metadata.is_dir() {
            return Err(Error::NotADirectory { path: root.to_owned() });
        }
        let frame = read_frame(root.to_owned(), Vec::new())?;
        Ok(Walk { stack: vec![frame] })
    }

    fn next_entry(&mut self) -> Option<Result<Entry>> {
        loop {
            let frame = self.stack.last_mut()?;
            let Some(name) = frame.remaining.pop() else {
                self.stack.pop();
                continue;
            };
            let path = frame.host.join(&name);
            let mut relative = frame.relative.clone();
            if !relative.is_empty() {
                relative.push(b'/');
            }
            relative.extend_from_slice(name.as_bytes());
            return Some(self.visit(path, relative));
        }
    }

    fn visit(&mut self, path: PathBuf, relative: Vec<u8>) -> Result<Entry> {
        let metadata = fs::symlink_metadata(&path).map_err(|e| vanished_or(e, "read", &path))?;
        let file_type = metadata.file_type();
        let kind = if file_type.is_dir() {
            self.stack.push(read_frame(path.clone(), relative.clone())?);
            Kind::Directory
        } else if file_type.is_file() {
            Kind::File
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| vanished_or(e, "read the link", &path))?;
            Kind::Symlink(target.into_os_string())
        } else {
            let kind = if file_type.is_socket() {
                "socket"
            } else if file_type.is_fifo() {
                "FIFO"
            } else if file_type.is_char_device() {
                "character device"
            } else {
                "block device"
            };
            return Err(Error::Unsupported { path, kind });
        };
        Ok(Entry { relative, path, kind, metadata })
    }
}

impl Iterator for Walk {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.next_entry();
        if matches!(item, Some(Err(_))) {
            self.stack.clear();
        }
        item
    }
}

fn read_frame(host: PathBuf, relative: Vec<u8>) -> Result<Frame> {
    let entries = fs::read_dir(&host).map_err(|e| vanished_or(e, "list", &host))?;
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry.map_err(|e| Error::read("list", &host, e))?.file_name());
    }
    order::sort_names(&mut names);
    names.reverse();
    Ok(Frame { host, relative, remaining: names })
}

/// A path that is gone is [`Error::Vanished`]; anything else is an I/O error on it.
pub(crate) fn vanished_or(error: io::Error, action: &'static str, path: &Path) -> Error {
    if error.kind() == io::ErrorKind::NotFound {
        Error::Vanished { path: path.to_owned() }
    } else {
        Error::read(action, path, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path) -> Vec<String> {
        Walk::new(root).unwrap().map(|e| String::from_utf8(e.unwrap().relative).unwrap()).collect()
    }

    #[test]
    fn depth_first_sorted_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for path in ["b/z", "a.txt", "a/y/x", "B", "a/c"] {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        std::os::unix::fs::symlink("nowhere", dir.path().join("link")).unwrap();
        assert_eq!(names(dir.path()), ["B", "a", "a/c", "a/y", "a/y/x", "a.txt", "b", "b/z", "link"]);
    }

    #[test]
    fn root_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "").unwrap();
        assert!(matches!(Walk::new(&file), Err(Error::NotADirectory { .. })));
        assert!(matches!(Walk::new(&dir.path().join("missing")), Err(Error::Read { .. })));
    }
}
