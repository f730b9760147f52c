//! Deterministic tar streams from directory trees.
//!
//! [`TarBuilder`] turns [`crate::walk`] entries into POSIX ustar (PAX where needed) entries:
//! ownership, modes and mtimes from the [`kiln_reproducible::Policy`], user and group names
//! empty, symlinks kept as symlinks, hard links (same device and inode) written once as a file
//! and then as links to the first path in walk order, extended attributes only from the
//! policy's allowlist, and no sparse entries. File data is streamed; a file that changes size
//! while it is read is an error, not a silently truncated entry.

mod header;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use kiln_reproducible::{EntryKind, Policy};

use crate::error::{Error, Result};
use crate::walk::{self, Entry, Kind};
use header::{EntryType, Header};

const COPY_BUFFER: usize = 256 * 1024;

/// Writes tar entries to `W`.
pub(crate) struct TarBuilder<W: Write> {
    out: W,
    policy: Policy,
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    buffer: Vec<u8>,
    /// Where errors writing `out` are reported.
    sink: std::path::PathBuf,
}

impl<W: Write> TarBuilder<W> {
    pub(crate) fn new(out: W, policy: Policy, sink: &Path) -> Self {
        TarBuilder {
            out,
            policy,
            hardlinks: HashMap::new(),
            buffer: vec![0; COPY_BUFFER],
            sink: sink.to_owned(),
        }
    }

    /// Appends one walked entry (and its data).
    pub(crate) fn append(&mut self, entry: &Entry) -> Result<()> {
        let meta = &entry.metadata;
        let mut path = entry.relative.clone();
        let (kind, policy_kind) = match &entry.kind {
            Kind::Directory => {
                path.push(b'/');
                (EntryType::Directory, EntryKind::Directory)
            }
            Kind::Symlink(target) => {
                (EntryType::Symlink { target: target.as_bytes().to_vec() }, EntryKind::Symlink)
            }
            Kind::File => {
                let key = (meta.dev(), meta.ino());
                match self.hardlinks.get(&key) {
                    Some(first) if meta.nlink() > 1 => {
                        (EntryType::Hardlink { target: first.clone() }, EntryKind::File)
                    }
                    _ => {
                        if meta.nlink() > 1 {
                            self.hardlinks.insert(key, entry.relative.clone());
                        }
                        (EntryType::File { size: meta.len() }, EntryKind::File)
                    }
                }
            }
        };
        let xattrs = match kind {
            EntryType::Symlink { .. } | EntryType::Hardlink { .. } => Vec::new(),
            _ => read_xattrs(&entry.path, &self.policy)?,
        };
        let header = Header {
            path,
            mode: self.policy.mode(policy_kind, meta.mode()),
            uid: self.policy.owner.uid,
            gid: self.policy.owner.gid,
            mtime: self.policy.mtime(meta.mtime()),
            xattrs,
            kind,
        };
        let sink = &self.sink;
        header.write_to(&mut self.out).map_err(|e| Error::write("write", sink, e))?;
        if let EntryType::File { size } = header.kind {
            self.copy_data(&entry.path, size)?;
        }
        Ok(())
    }

    fn copy_data(&mut self, path: &Path, size: u64) -> Result<()> {
        let mut file = File::options()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| walk::vanished_or(e, "read", path))?;
        let changed = || Error::Changed { path: path.to_owned(), expected: size };
        let mut remaining = size;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let n = file.read(&mut self.buffer[..want]).map_err(|e| Error::read("read", path, e))?;
            if n == 0 {
                return Err(changed());
            }
            self.out.write_all(&self.buffer[..n]).map_err(|e| Error::write("write", &self.sink, e))?;
            remaining -= n as u64;
        }
        if file.read(&mut self.buffer[..1]).map_err(|e| Error::read("read", path, e))? != 0 {
            return Err(changed());
        }
        let padding = header::padding(size);
        self.out.write_all(&[0u8; header::BLOCK][..padding]).map_err(|e| Error::write("write", &self.sink, e))
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.out.write_all(&[0u8; 2 * header::BLOCK]).map_err(|e| Error::write("write", &self.sink, e))?;
        Ok(self.out)
    }
}

/// The allowlisted extended attributes of `path`, sorted by name.
fn read_xattrs(path: &Path, policy: &Policy) -> Result<Vec<(String, Vec<u8>)>> {
    let unsupported = |e: &rustix::io::Errno| *e == rustix::io::Errno::NOTSUP;
    let mut names = vec![0u8; 4096];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(len) => break len,
            Err(e) if e == rustix::io::Errno::RANGE => names.resize(names.len() * 4, 0),
            Err(e) if unsupported(&e) => return Ok(Vec::new()),
            Err(e) => return Err(walk::vanished_or(io::Error::from(e), "list extended attributes of", path)),
        }
    };
    let mut xattrs = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else { continue };
        if !policy.keeps_xattr(name) {
            continue;
        }
        let mut value = vec![0u8; 256];
        let size = loop {
            match rustix::fs::lgetxattr(path, name, &mut value[..]) {
                Ok(size) => break size,
                Err(e) if e == rustix::io::Errno::RANGE => value.resize(value.len() * 4, 0),
                Err(e) => {
                    return Err(walk::vanished_or(io::Error::from(e), "read extended attributes of", path));
                }
            }
        };
        value.truncate(size);
        xattrs.push((name.to_owned(), value));
    }
    xattrs.sort();
    Ok(xattrs)
}
