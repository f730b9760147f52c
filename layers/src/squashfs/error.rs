//! Errors of the squashfs writer. Each names the path it is about.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while writing a squashfs image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options cannot describe an image the kernel reads.
    #[error("invalid squashfs options: {reason}")]
    Options {
        /// What is wrong.
        reason: String,
    },
    /// The tree to pack is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A socket, FIFO or device node in the tree.
    #[error("{} is a {kind}; a squashfs image from kiln holds only directories, regular files and symlinks", path.display())]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// "socket", "FIFO", "character device" or "block device".
        kind: &'static str,
    },
    /// A file name longer than the 256 bytes squashfs stores.
    #[error("the name of {} is longer than 256 bytes", path.display())]
    NameTooLong {
        /// The path.
        path: PathBuf,
    },
    /// Reading the tree failed (listing, reading or a path vanishing mid-walk).
    #[error(transparent)]
    Tree(crate::Error),
    /// Reading a file of the tree failed.
    #[error("cannot {action} {}", path.display())]
    Read {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file's size changed between listing and reading.
    #[error("{} changed while it was being packed ({expected} bytes when listed)", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its size when listed.
        expected: u64,
    },
    /// Writing the image (or its temporary file next to it) failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The image's path, or the directory its temporary file was to be made in.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// zstd failed to compress a block.
    #[error("zstd compression failed")]
    Compress {
        /// zstd's error.
        #[source]
        source: io::Error,
    },
    /// The compression threads could not be started.
    #[error("cannot start compression threads")]
    Threads {
        /// rayon's error.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A table outgrew the fields squashfs 4.0 has for it.
    #[error("the tree is too large for squashfs: its {what} exceeds the format's limits")]
    TooLarge {
        /// Which part.
        what: &'static str,
    },
}

impl Error {
    pub(super) fn read(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read { action, path: path.into(), source }
    }

    /// A suggestion for the user, where there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unsupported { .. } => {
                Some("remove it from the tree, or create it at run time instead".into())
            }
            Error::Changed { .. } => {
                Some("something else is modifying the tree; pack a tree nothing writes to".into())
            }
            Error::Tree(error) => error.hint(),
            _ => None,
        }
    }
}

impl From<crate::Error> for Error {
    fn from(error: crate::Error) -> Self {
        match error {
            crate::Error::Unsupported { path, kind } => Error::Unsupported { path, kind },
            crate::Error::NotADirectory { path } => Error::NotADirectory { path },
            crate::Error::Changed { path, expected } => Error::Changed { path, expected },
            other => Error::Tree(other),
        }
    }
}
