//! The crate's error type: every variant names the file it is about.

use std::path::PathBuf;

/// What went wrong reading modules or writing indexes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A compressed module could not be decompressed (truncated or corrupt).
    #[error("cannot decompress {} ({format})", path.display())]
    Decompress {
        /// The module file.
        path: PathBuf,
        /// `xz`, `zstd` or `gzip`.
        format: &'static str,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a kernel module ELF object kiln can read.
    #[error("{} is not a valid kernel module: {reason}", path.display())]
    Malformed {
        /// The module file.
        path: PathBuf,
        /// What is wrong, e.g. "section headers extend past the end of the file".
        reason: String,
    },
    /// A directory that must exist does not.
    #[error("module directory {} does not exist", path.display())]
    NoModuleDirectory {
        /// The directory looked for.
        path: PathBuf,
    },
    /// A line of a depmod.d configuration file or of Module.symvers is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Modules depend on each other in a cycle; depmod cannot order them (kmod fails too).
    #[error("dependency cycle among these modules (and what they need): {}", modules.join(", "))]
    Cycle {
        /// The modules left unordered: those in cycles and the modules they depend on.
        modules: Vec<String>,
    },
    /// A key or value holds a byte outside 7-bit ASCII, which kmod's index format cannot hold.
    #[error("{} cannot go into {index}: only 7-bit ASCII is supported in kmod indexes", key.escape_debug())]
    NotAscii {
        /// The index file name.
        index: &'static str,
        /// The offending key or value.
        key: String,
    },
    /// An output file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the error is about input kiln was given (a module, tree or configuration), as
    /// opposed to the environment (permissions, full disk).
    pub fn is_input_error(&self) -> bool {
        match self {
            Error::Read { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::Write { .. } => false,
            _ => true,
        }
    }

    /// A next step for the user, where there is an obvious one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoModuleDirectory { .. } => {
                Some("modules are looked for in BASEDIR/lib/modules/KVER; use --moduledir for another layout")
            }
            Error::Decompress { .. } => {
                Some("the file may be truncated; check it with xz -t, zstd -t or gzip -t")
            }
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
