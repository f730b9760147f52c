//! Errors of the builder, each naming the file, source or step it is about.

use std::path::PathBuf;

use crate::sandbox::Exit;

/// Everything that can go wrong preparing or running a build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A recipe that cannot be read or is inconsistent.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// The line, for syntax errors.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A source did not match its pin.
    #[error("source {name:?} from {origin} has {algorithm} {actual}, but the recipe pins {expected}")]
    ChecksumMismatch {
        /// The source's name.
        name: String,
        /// Its path or URL.
        origin: String,
        /// `sha256` or `sha512`.
        algorithm: &'static str,
        /// The pinned digest.
        expected: String,
        /// The digest of what was fetched.
        actual: String,
    },
    /// A source does not match `kiln.lock`.
    #[error("source {name:?} does not match kiln.lock: {reason}")]
    LockMismatch {
        /// The source's name.
        name: String,
        /// How.
        reason: String,
    },
    /// A source a Debian package provides is not the file `kiln.lock` pins: the package was
    /// updated (or removed, or its file changed) on this host since the lock was written.
    #[error("{0}")]
    PackageChanged(Box<crate::lock::StalePackage>),
    /// The host's package database does not vouch for a source a Debian package provides.
    #[error("source {name:?}")]
    Package {
        /// The source's name.
        name: String,
        /// What the database says.
        #[source]
        source: Box<crate::dpkg::Error>,
    },
    /// A source could not be fetched.
    #[error("cannot fetch source {name:?} from {origin}: {reason}")]
    Fetch {
        /// The source's name.
        name: String,
        /// Its path or URL.
        origin: String,
        /// What failed.
        reason: String,
    },
    /// Offline, and a source is not in the cache.
    #[error("source {name:?} ({origin}) is not in the cache {}, and the build is offline", cache.display())]
    Offline {
        /// The source's name.
        name: String,
        /// Its path or URL.
        origin: String,
        /// The cache directory.
        cache: PathBuf,
    },
    /// A source pinned by `kiln.lock` that the lock does not have yet.
    #[error("source {name:?} ({origin}) is pinned by kiln.lock, which does not have it")]
    Unpinned {
        /// The source's name.
        name: String,
        /// Its URL or image.
        origin: String,
    },
    /// Sources the build could not get; every step that does not need them was built.
    #[error("{} source(s) missing:\n{}{}", missing.len(), missing.join("\n"), needing(blocked))]
    MissingSources {
        /// One line per source: name, origin, why.
        missing: Vec<String>,
        /// The steps and images that need them (none for `kiln lock`).
        blocked: Vec<String>,
    },
    /// An archive entry that would escape the extraction root or is not allowed in a source.
    #[error("{}: refusing entry {entry:?}: {reason}", archive.display())]
    UnsafeEntry {
        /// The archive.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// What it is or does.
        reason: String,
    },
    /// An archive that cannot be read.
    #[error("{}{}: {reason}", archive.display(), entry.as_ref().map(|e| format!(" (entry {e:?})")).unwrap_or_default())]
    CorruptArchive {
        /// The archive.
        archive: PathBuf,
        /// The entry being read, if any.
        entry: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// Requested kernel options that `make olddefconfig` dropped or changed.
    #[error(
        "{} requested kernel option(s) did not stick:\n{}\nwhy, from the kernel's Kconfig:\n{}",
        dropped.len(),
        dropped.join("\n"),
        explanations.join("\n")
    )]
    KernelConfig {
        /// For each, `merge_config.sh`'s report (requested and actual value).
        dropped: Vec<String>,
        /// For each, why: what set the value it has, and the unmet dependencies of the request.
        explanations: Vec<String>,
    },
    /// The module signing key cannot be used, or signing failed.
    #[error("module signing: {reason}")]
    Signing {
        /// What is wrong.
        reason: String,
    },
    /// A built module does not fit the kernel it was built for.
    #[error("module {} does not fit the kernel: {reason}", path.display())]
    ModuleMismatch {
        /// The module.
        path: PathBuf,
        /// The mismatches.
        reason: String,
    },
    /// A Talos system extension breaks Talos's rules or does not fit the kernel.
    #[error("extension {name:?}: {reason}")]
    Extension {
        /// The extension's step.
        name: String,
        /// Every problem found.
        reason: String,
    },
    /// The Talos boot assets cannot be assembled.
    #[error("talos: {reason}")]
    Talos {
        /// What is wrong.
        reason: String,
    },
    /// The image would break rules Talos enforces when it boots.
    #[error(
        "the image breaks {} of Talos {version}'s boot-time rules:\n{}",
        violations.len(),
        violations.iter().map(|v| format!("  {v}")).collect::<Vec<_>>().join("\n")
    )]
    TalosRules {
        /// The Talos version of the recipe.
        version: String,
        /// Each rule broken, and how.
        violations: Vec<String>,
    },
    /// Two inputs merged into one tree disagree about a path.
    #[error("{} is in both {first} and {second}, with different content", path.display())]
    MergeConflict {
        /// The path inside the merged tree.
        path: PathBuf,
        /// The input that placed it first.
        first: String,
        /// The input that disagrees.
        second: String,
    },
    /// What `kiln boot` was given cannot be booted.
    #[error("cannot boot: {reason}")]
    Boot {
        /// Why.
        reason: String,
    },
    /// The machine-config patch cannot be written as asked.
    #[error("machine config: {reason}")]
    MachineConfig {
        /// Why.
        reason: String,
    },
    /// A verification build could not run or report.
    #[error("verify: {reason}")]
    Verify {
        /// Why.
        reason: String,
    },
    /// QEMU could not be started.
    #[error("cannot start {program}: {source}")]
    Qemu {
        /// The program.
        program: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An image's SBOM or provenance cannot be made.
    #[error("attestations of image {image}: {reason}")]
    Attestation {
        /// The image, `NAME:TAG`.
        image: String,
        /// What failed.
        reason: String,
    },
    /// A path in a tree untrusted code made goes through a link or out of the tree.
    #[error(transparent)]
    Beneath(#[from] crate::beneath::Error),
    /// Reading or indexing kernel modules failed.
    #[error(transparent)]
    Modules(#[from] kiln_modules::Error),
    /// Packing an image failed.
    #[error(transparent)]
    Layers(#[from] kiln_layers::Error),
    /// The host refuses unprivileged user namespaces.
    #[error("the sandbox cannot start: this host refuses user namespaces ({reason})")]
    UserNamespacesRefused {
        /// What failed.
        reason: String,
        /// The host settings that decide it, as `name = value`.
        settings: Vec<String>,
    },
    /// The sandbox could not be set up.
    #[error("the sandbox cannot start: {reason}")]
    Sandbox {
        /// What failed.
        reason: String,
    },
    /// A step's command failed.
    #[error("the step failed ({exit}); its log is {}{}", log.display(), tail_text(tail))]
    StepFailed {
        /// How it ended.
        exit: Exit,
        /// The full log.
        log: PathBuf,
        /// Its last lines.
        tail: Vec<String>,
    },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let mut text = String::from("; it ended with:");
    for line in tail {
        text.push_str("\n  | ");
        text.push_str(line);
    }
    text
}

impl Error {
    /// A suggestion for the user, where there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::UserNamespacesRefused { settings, .. } => Some(format!(
                "allow unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1 \
                 (Debian), sysctl -w user.max_user_namespaces=15000, or on Ubuntu \
                 sysctl -w kernel.apparmor_restrict_unprivileged_userns=0; in a container, run it \
                 with a seccomp profile that allows unshare/clone with CLONE_NEWUSER{}",
                if settings.is_empty() { String::new() } else { format!(" (now: {})", settings.join(", ")) }
            )),
            Error::Offline { name, .. } => Some(format!(
                "run the build once without --offline (or `kiln lock`) to fetch it, or pass --source {name}=PATH"
            )),
            Error::Unpinned { name, .. } => Some(format!(
                "run `kiln lock` where it can be fetched and keep the kiln.lock it writes, or pass --source {name}=PATH"
            )),
            Error::MissingSources { .. } => Some(
                "give each with --source NAME=PATH (a file, an unpacked tree, or an OCI image layout for an \
                 image), or run `kiln lock` on a machine that can reach them and keep the kiln.lock it writes"
                    .into(),
            ),
            Error::PackageChanged(stale) => Some(stale.hint()),
            Error::Package { source, .. }
                if let crate::dpkg::Error::NotInstalled { package, .. } = &**source =>
            {
                Some(format!("install it: apt-get install {package}"))
            }
            Error::LockMismatch { .. } => {
                Some("if the recipe's change is intended, run `kiln lock` to record it".into())
            }
            Error::Layers(error) => error.hint(),
            Error::KernelConfig { .. } => Some(
                "make olddefconfig drops an option whose dependencies are not met (or that another \
                 option excludes): enable what it depends on in a fragment, or drop the request"
                    .into(),
            ),
            Error::TalosRules { .. } => Some(
                "a node would not boot, or would not apply the setting: fix the recipe's [talos] cmdline, \
                 kernel fragments or [machine-config]; `kiln check RECIPE` checks these without compiling"
                    .into(),
            ),
            Error::ChecksumMismatch { .. } => {
                Some("if the new content is intended, update the pin in kiln.toml and run `kiln lock`".into())
            }
            _ => None,
        }
    }

    /// Whether the error is about the user's input (recipe, sources) rather than the host.
    pub fn is_input_error(&self) -> bool {
        if let Error::Layers(error) = self {
            return error.is_input_error();
        }
        if let Error::Modules(error) = self {
            return error.is_input_error();
        }
        if let Error::Package { source, .. } = self {
            return source.is_input_error();
        }
        if let Error::Beneath(error) = self {
            return !matches!(error, crate::beneath::Error::Open { .. });
        }
        matches!(
            self,
            Error::StepFailed { .. }
                | Error::UnsafeEntry { .. }
                | Error::CorruptArchive { .. }
                | Error::Recipe { .. }
                | Error::ChecksumMismatch { .. }
                | Error::LockMismatch { .. }
                | Error::PackageChanged(_)
                | Error::KernelConfig { .. }
                | Error::Signing { .. }
                | Error::ModuleMismatch { .. }
                | Error::Extension { .. }
                | Error::Talos { .. }
                | Error::TalosRules { .. }
                | Error::MergeConflict { .. }
                | Error::Boot { .. }
                | Error::MachineConfig { .. }
        )
    }
}

fn needing(blocked: &[String]) -> String {
    if blocked.is_empty() {
        String::new()
    } else {
        format!("\nnot built for want of them: {}", blocked.join(", "))
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
