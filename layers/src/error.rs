//! Errors of the layers crate. Each names the path, blob or reference it is about.

use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::oci::limits::LimitError;

/// Everything that can go wrong while packing, reading or comparing images.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an input (a tree to pack, a layout to inspect) failed.
    #[error("cannot {action} {}", path.display())]
    Read {
        /// What was being done ("read", "list", …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing an output failed.
    #[error("cannot {action} {}", path.display())]
    Write {
        /// What was being done ("write", "create", …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The tree to pack is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A path was listed in its directory but was gone when kiln came to read it.
    #[error("{} vanished while the tree was being packed", path.display())]
    Vanished {
        /// The path that disappeared.
        path: PathBuf,
    },
    /// A file's size changed between listing and reading.
    #[error("{} changed while it was being packed ({expected} bytes when listed)", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its size when listed.
        expected: u64,
    },
    /// A socket, FIFO or device node in a tree. Layers never take these from the host.
    #[error("{} is a {kind}; a layer holds only directories, regular files and symlinks", path.display())]
    Unsupported {
        /// The path.
        path: PathBuf,
        /// "socket", "FIFO", "character device" or "block device".
        kind: &'static str,
    },
    /// An image reference that is not `NAME:TAG`.
    #[error("invalid image reference {value:?}: {reason}")]
    InvalidReference {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A directory that is not an OCI image layout.
    #[error("{} is not an OCI image layout: {reason}", path.display())]
    NotALayout {
        /// The directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A JSON document in a layout could not be read.
    #[error("{} is not a valid {what}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// "image index", "image manifest", …
        what: &'static str,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A digest string in a document is malformed.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A blob's content does not match its digest.
    #[error("blob {expected} in {} has digest {actual}", layout.display())]
    DigestMismatch {
        /// The layout.
        layout: PathBuf,
        /// The digest it is stored under.
        expected: Digest,
        /// The digest of its content.
        actual: Digest,
    },
    /// A blob's size differs from its descriptor.
    #[error("blob {digest} in {} is {actual} bytes, its descriptor says {expected}", layout.display())]
    SizeMismatch {
        /// The layout.
        layout: PathBuf,
        /// The blob.
        digest: Digest,
        /// Size in the descriptor.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// No image of that name in a layout.
    #[error("{} has no image named {reference:?} (it has: {available})", layout.display())]
    RefNotFound {
        /// The layout.
        layout: PathBuf,
        /// The name asked for.
        reference: String,
        /// The names it has, comma separated.
        available: String,
    },
    /// A layer uses a media type kiln cannot read.
    #[error("layer {digest} has media type {media_type:?}, which kiln cannot read")]
    UnsupportedMediaType {
        /// The layer.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A layer's tar stream is malformed.
    #[error("layer {digest} is not a valid tar stream")]
    Tar {
        /// The layer.
        digest: Digest,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// Canonical JSON could not be produced.
    #[error("cannot encode {what} as canonical JSON")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why.
        #[source]
        source: kiln_reproducible::json::JsonError,
    },
    /// The output path exists and is not an image layout kiln can add to.
    #[error("{} exists and is not an OCI image layout", path.display())]
    OutputInUse {
        /// The path.
        path: PathBuf,
    },
    /// The output layout would be inside the tree being packed (the pack would read itself).
    #[error("{} is inside the tree {} being packed", out.display(), tree.display())]
    OutputInsideTree {
        /// The output.
        out: PathBuf,
        /// The tree.
        tree: PathBuf,
    },
    /// A file of a layout that kiln does not read: not a regular file, or reached through a
    /// symbolic link.
    #[error("refusing {}: {reason}", path.display())]
    UnsafeFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        reason: String,
    },
    /// A blob a descriptor points at is not in the layout.
    #[error("{} has no blob {digest} (blobs/{}/{})", layout.display(), digest.algorithm().name(), digest.encoded())]
    MissingBlob {
        /// The layout.
        layout: PathBuf,
        /// The blob.
        digest: Digest,
    },
    /// A document, or the walk of an image's documents, is beyond kiln's limits.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl Error {
    pub(crate) fn read(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Read { action, path: path.into(), source }
    }

    pub(crate) fn write(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Write { action, path: path.into(), source }
    }

    /// Whether the error is about the user's input (a tree, layout or argument) rather than the
    /// environment kiln runs in.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Error::Write { .. } | Error::Encode { .. })
    }

    /// A suggestion for the user, where there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unsupported { .. } => {
                Some("remove it from the tree, or create it at build time instead".into())
            }
            Error::Vanished { .. } | Error::Changed { .. } => {
                Some("something else is modifying the tree; pack a tree nothing writes to".into())
            }
            Error::InvalidReference { .. } => Some(
                "use NAME:TAG, e.g. kernel:v1.10.3 (NAME lowercase, TAG up to 128 of [A-Za-z0-9_.-])".into(),
            ),
            Error::OutputInUse { .. } => Some("choose another --out, or remove the path".into()),
            Error::OutputInsideTree { .. } => Some("write the layout outside the tree (--out)".into()),
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => {
                Some("the layout is corrupt; build or pull it again".into())
            }
            Error::MissingBlob { .. } => Some("the layout is incomplete; build or pull it again".into()),
            Error::UnsafeFile { .. } => Some(
                "kiln reads a layout's files only as regular files inside it, never through symbolic links; \
                 copy the layout without links (cp -rL) or build or pull it again"
                    .into(),
            ),
            Error::Read { source, .. } | Error::Write { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                Some("check the permissions of that path for the user running kiln".into())
            }
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
