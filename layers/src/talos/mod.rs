//! Talos system extensions: the `manifest.yaml` format, the rules an extension directory must
//! follow, extension service specs, compatibility ranges and `/extensions.yaml`.
//!
//! kiln checks what Talos checks, and a little more: allowed paths end at a `/` boundary
//! (`/usr/localfoo` is not under `/usr/local`), world-writable entries are really rejected, and
//! every violation is collected instead of stopping at the first.
//!
//! - [`Manifest`]: `manifest.yaml`, parsed and written.
//! - [`validate()`] with [`ValidateOptions`]: an extension directory against every rule,
//!   reported as [`Violation`]s in [`Error::Invalid`].
//! - [`extensions_yaml()`]: the `/extensions.yaml` Talos's init reads from the initramfs.
//! - [`version`]: Talos compatibility ranges (blang/semver range semantics).
//! - [`yaml`]: the small deterministic YAML scalar writer used for every output.

use std::fmt;
use std::io;
use std::path::PathBuf;

mod extensions_yaml;
mod manifest;
mod service;
mod validate;
pub mod version;
pub mod yaml;

pub use extensions_yaml::{Layer, extensions_yaml, parse_extensions_yaml};
pub use manifest::{Manifest, is_valid_version};
pub use validate::{Rule, ValidateOptions, Violation, validate};

/// Paths an extension's rootfs may place non-directories under (`AllowedPaths` of Talos).
/// An entry is under one when it equals it or continues it after a `/`.
pub const ALLOWED_PATHS: [&str; 10] = [
    "/etc/cri/conf.d",
    "/usr/lib/firmware",
    "/usr/lib/modules",
    "/usr/lib/ld-linux-x86-64.so.2",
    "/usr/bin/ldconfig",
    "/usr/lib/udev/rules.d",
    "/usr/local",
    "/usr/share/glvnd",
    "/usr/share/egl",
    "/etc/vulkan",
];

/// Everything that can go wrong reading, checking or writing Talos extension formats.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The extension directory breaks one or more rules; all of them are listed.
    #[error("{} is not a valid Talos extension:{}", dir.display(), ListViolations(violations))]
    Invalid {
        /// The extension directory.
        dir: PathBuf,
        /// Every rule broken, in a deterministic order.
        violations: Vec<Violation>,
    },
    /// A YAML document could not be read as the expected schema.
    #[error("{}{}: {message}", path.display(), Position(*line, *column))]
    Parse {
        /// The file the text came from.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<u64>,
        /// 1-based column of the problem, when known.
        column: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// Reading the extension failed.
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
    /// The Talos version given in [`ValidateOptions`] is not a version.
    #[error("Talos version {value:?} is not a semantic version: {reason}")]
    TalosVersion {
        /// The text given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// ":line:column" when known.
struct Position(Option<u64>, Option<u64>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position(Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            Position(Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// One violation a line.
struct ListViolations<'a>(&'a [Violation]);

impl fmt::Display for ListViolations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for violation in self.0 {
            write!(f, "\n  {violation}")?;
        }
        Ok(())
    }
}
