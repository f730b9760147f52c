//! Why a Kconfig tree could not be loaded. Every error about the tree names the file and line.

use std::path::PathBuf;

/// A Kconfig tree that cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file of the tree (or its top Makefile) could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A statement the Kconfig language does not allow.
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The Kconfig file, as `source` named it.
        file: PathBuf,
        /// 1-based line of the statement.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A macro that cannot be expanded, or an `$(error-if,…)` that fired.
    #[error("{}:{line}: {message}", file.display())]
    Macro {
        /// The Kconfig file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A `source` statement names a file that does not exist.
    #[error("{}:{line}: can't open file \"{name}\"", file.display())]
    MissingSource {
        /// The file with the `source` statement.
        file: PathBuf,
        /// Its line.
        line: usize,
        /// The file it names.
        name: String,
    },
    /// A `source` statement of a tree that is not trusted names a file outside it.
    #[error("{}:{line}: \"{name}\" is outside the source tree", file.display())]
    OutsideSource {
        /// The file with the `source` statement.
        file: PathBuf,
        /// Its line.
        line: usize,
        /// The file it names.
        name: String,
    },
    /// A file sources itself, directly or through others.
    #[error("{}:{line}: recursive inclusion of \"{name}\"", file.display())]
    RecursiveSource {
        /// The file with the `source` statement.
        file: PathBuf,
        /// Its line.
        line: usize,
        /// The file it names.
        name: String,
    },
    /// Replaying probes, and one the tree runs is not in the record.
    #[error("{}:{line}: shell command not in the probe record: {command}", file.display())]
    NotRecorded {
        /// The Kconfig file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The command.
        command: String,
    },
    /// A probe record that is not a JSON object of strings.
    #[error("{}: not a probe record: {message}", path.display())]
    ProbeRecord {
        /// The record.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The top Makefile does not say which kernel version the tree is.
    #[error("{}: no VERSION line", path.display())]
    KernelVersion {
        /// The Makefile.
        path: PathBuf,
    },
    /// `/bin/sh` could not be started for a probe.
    #[error("cannot run /bin/sh -c {command:?}")]
    Shell {
        /// The command.
        command: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No thread could be started to run the probes.
    #[error("cannot start a thread to run the probes")]
    Threads {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No scratch directory for the probes.
    #[error("cannot create a scratch directory for the probes")]
    Scratch {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl LoadError {
    /// Whether the tree (or a record) given is at fault, rather than the environment.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, LoadError::Shell { .. } | LoadError::Threads { .. } | LoadError::Scratch { .. })
    }
}
