//! Deterministic newc cpio archives, as the Linux kernel unpacks them into its initramfs.
//!
//! This module owns the bytes of an initramfs archive (before compression):
//! - [`Writer`] appends directories, files and symlinks in the "new ASCII" format (`070701`)
//!   with uppercase hex fields like the kernel's `usr/gen_init_cpio`: inode numbers 1, 2, … in
//!   write order, `dev`/`rdev` 0, `nlink` 2 for directories and 1 otherwise, the check field 0,
//!   header+name and data each padded to 4 bytes, and a `TRAILER!!!` entry at the end;
//! - [`write_tree`] writes a directory tree in [`crate::walk::Walk`] order (parents first,
//!   sorted by raw name bytes), with owner, modes and mtimes from a
//!   [`kiln_reproducible::Policy`]; hard-linked files are written as independent copies;
//! - [`read`] parses one or more concatenated archives with bounds checks, for tests and
//!   inspection.
//!
//! The archive is not padded to a multiple of 512 bytes after the trailer, unlike GNU cpio's
//! output: neither the kernel nor GNU cpio needs it, and an archive that ends 4-aligned can
//! be concatenated with another one (an early-microcode archive before the main one) as is.
//!
//! Limits of the format and of the kernel are errors rather than silently broken archives:
//! sizes and mtimes must fit the 32-bit fields, and a name must be non-empty, free of NUL
//! bytes and at most [`MAX_NAME`] bytes long (the kernel skips longer names).

mod header;
mod reader;
mod tree;
mod writer;

use std::io;
use std::path::PathBuf;

pub use header::MAX_NAME;
pub use reader::{Entry, read};
pub use tree::write_tree;
pub use writer::Writer;

/// Everything that can go wrong while writing or reading a cpio archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Walking the tree failed; this includes sockets, FIFOs and device nodes, which an
    /// archive never takes from the host.
    #[error(transparent)]
    Walk(#[from] crate::Error),
    /// Reading a file of the tree failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Reading the data given to [`Writer::file`] failed.
    #[error("cannot read the data of cpio entry {name:?}")]
    Data {
        /// The entry, lossily decoded.
        name: String,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// Writing the archive failed.
    #[error("cannot write the cpio entry {name:?}")]
    Write {
        /// The entry being written, lossily decoded.
        name: String,
        /// The writer's error.
        #[source]
        source: io::Error,
    },
    /// A file's size changed between listing and reading, or a reader gave more or fewer
    /// bytes than announced.
    #[error("cpio entry {name:?} has {found} bytes of data instead of {expected}")]
    SizeMismatch {
        /// The entry, lossily decoded.
        name: String,
        /// The size announced.
        expected: u64,
        /// What was read, or "more" as `expected + 1`.
        found: u64,
    },
    /// An entry name the kernel would not unpack.
    #[error("invalid cpio entry name {name:?}: {reason}")]
    InvalidName {
        /// The name, lossily decoded.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value that does not fit its 32-bit header field.
    #[error("cpio entry {name:?}: {field} {value} does not fit the format's 32-bit field")]
    OutOfRange {
        /// The entry, lossily decoded.
        name: String,
        /// "file size", "mtime", "inode number", …
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// Permission bits with type bits or other bits outside `0o7777`.
    #[error("cpio entry {name:?}: mode {mode:#o} is not permission bits only")]
    InvalidMode {
        /// The entry, lossily decoded.
        name: String,
        /// The mode given.
        mode: u32,
    },
    /// Malformed archive bytes.
    #[error("malformed cpio archive at offset {offset}: {reason}")]
    Malformed {
        /// Byte offset in the input where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    fn malformed(offset: usize, reason: impl Into<String>) -> Self {
        Error::Malformed { offset: offset as u64, reason: reason.into() }
    }
}

/// A name for messages.
fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests;
