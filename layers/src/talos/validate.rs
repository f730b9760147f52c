//! Validation of an extension directory: its two top-level entries, its manifest and
//! compatibility, every entry of its rootfs and its service specs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kiln_reproducible::order;

use super::version::{Range, Version};
use super::{ALLOWED_PATHS, Error, Manifest, is_valid_version, service};

/// What to check an extension against beyond its own content.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions<'a> {
    /// e.g. "v1.10.3": check the compatibility constraint against it. Without it, the
    /// constraint is only checked to parse.
    pub talos_version: Option<&'a str>,
    /// e.g. "6.12.63-talos": modules must sit under `usr/lib/modules/<this>/`.
    pub kernel_release: Option<&'a str>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// "/usr/..." inside rootfs, or "manifest.yaml" (or another top-level name).
    pub path: String,
    /// The rule broken.
    pub rule: Rule,
    /// What is wrong, and where useful, what to do instead.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.path, self.rule, self.detail)
    }
}

/// The rules of an extension directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// A top-level entry other than `manifest.yaml` and `rootfs/`, or one of the wrong type.
    UnexpectedEntry,
    /// `manifest.yaml` or `rootfs/` is missing.
    MissingEntry,
    /// The manifest does not parse, or its version has an unaccepted format.
    Manifest,
    /// The compatibility constraint does not parse or excludes the Talos version.
    Compatibility,
    /// An entry (directory or not) that others may write to.
    WorldWritable,
    /// A socket, FIFO or device node.
    SpecialFile,
    /// A non-directory outside the allowed paths.
    DisallowedPath,
    /// An entry where Talos 1.10's merged `/usr` has a symlink (`/lib`, `/bin`, …).
    UsrMerge,
    /// A module file outside `/usr/lib/modules/<kernel release>/`.
    ModuleRelease,
    /// A service spec that is invalid, or whose container rootfs or entrypoint is wrong.
    Service,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::UnexpectedEntry => "unexpected-entry",
            Rule::MissingEntry => "missing-entry",
            Rule::Manifest => "manifest",
            Rule::Compatibility => "compatibility",
            Rule::WorldWritable => "world-writable",
            Rule::SpecialFile => "special-file",
            Rule::DisallowedPath => "disallowed-path",
            Rule::UsrMerge => "usr-merge",
            Rule::ModuleRelease => "module-release",
            Rule::Service => "service",
        })
    }
}

/// Paths Talos 1.10 makes symlinks into `/usr`, with where their content belongs.
const USR_MERGE: [(&str, &str); 6] = [
    ("/lib", "/usr/lib"),
    ("/lib64", "/usr/lib"),
    ("/bin", "/usr/bin"),
    ("/sbin", "/usr/bin"),
    ("/usr/lib64", "/usr/lib"),
    ("/usr/sbin", "/usr/bin"),
];

const MODULES: &str = "/usr/lib/modules";

/// Validates an extension directory holding exactly manifest.yaml and rootfs/; returns its manifest.
/// All violations are collected and returned together in Error::Invalid.
///
/// I/O errors (other than missing paths) and a malformed `options.talos_version` are returned as
/// such, not as violations.
pub fn validate(dir: &Path, options: &ValidateOptions<'_>) -> Result<Manifest, Error> {
    let talos = options
        .talos_version
        .map(|value| {
            Version::parse_talos(value)
                .map_err(|reason| Error::TalosVersion { value: value.to_owned(), reason })
        })
        .transpose()?;
    let mut violations = Vec::new();
    let mut report =
        |path: &str, rule, detail: String| violations.push(Violation { path: path.to_owned(), rule, detail });

    let (manifest_file, rootfs) = top_level(dir, &mut report)?;
    let manifest = match manifest_file {
        Some(path) => check_manifest(&path, talos.as_ref(), &mut report)?,
        None => None,
    };
    if let Some(rootfs) = rootfs {
        let specs = check_rootfs(&rootfs, options, &mut report)?;
        check_services(&rootfs, &specs, &mut report)?;
    }
    match manifest {
        Some(manifest) if violations.is_empty() => Ok(manifest),
        _ => Err(Error::Invalid { dir: dir.to_owned(), violations }),
    }
}

type Report<'a> = dyn FnMut(&str, Rule, String) + 'a;

/// The paths of `manifest.yaml` and `rootfs/` when they are there and of the right type.
fn top_level(dir: &Path, report: &mut Report<'_>) -> Result<(Option<PathBuf>, Option<PathBuf>), Error> {
    let (mut manifest, mut rootfs) = (None, None);
    for name in sorted_names(dir)? {
        let path = dir.join(&name);
        let shown = name.to_string_lossy();
        let Some(metadata) = lstat(&path)? else { continue };
        match name.as_bytes() {
            b"manifest.yaml" if metadata.is_file() => manifest = Some(path),
            b"rootfs" if metadata.is_dir() => rootfs = Some(path),
            b"manifest.yaml" => {
                report(&shown, Rule::UnexpectedEntry, format!("is a {}, not a regular file", kind(&metadata)))
            }
            b"rootfs" => {
                report(&shown, Rule::UnexpectedEntry, format!("is a {}, not a directory", kind(&metadata)))
            }
            _ => report(
                &shown,
                Rule::UnexpectedEntry,
                "an extension holds only manifest.yaml and rootfs/".to_owned(),
            ),
        }
    }
    if manifest.is_none() && lstat(&dir.join("manifest.yaml"))?.is_none() {
        report("manifest.yaml", Rule::MissingEntry, "the extension manifest is missing".to_owned());
    }
    if rootfs.is_none() && lstat(&dir.join("rootfs"))?.is_none() {
        report("rootfs", Rule::MissingEntry, "the extension rootfs is missing".to_owned());
    }
    Ok((manifest, rootfs))
}

/// Parses the manifest and checks its version format and compatibility.
fn check_manifest(
    path: &Path,
    talos: Option<&Version>,
    report: &mut Report<'_>,
) -> Result<Option<Manifest>, Error> {
    let bytes = fs::read(path).map_err(|e| read_error("read", path, e))?;
    let Ok(text) = String::from_utf8(bytes) else {
        report("manifest.yaml", Rule::Manifest, "is not UTF-8".to_owned());
        return Ok(None);
    };
    let manifest = match Manifest::parse(&text, path) {
        Ok(manifest) => manifest,
        Err(Error::Parse { line, column, message, .. }) => {
            let at = match (line, column) {
                (Some(line), Some(column)) => format!("line {line}, column {column}: "),
                _ => String::new(),
            };
            report("manifest.yaml", Rule::Manifest, format!("{at}{message}"));
            return Ok(None);
        }
        Err(other) => return Err(other),
    };
    if !is_valid_version(&manifest.version) {
        report(
            "manifest.yaml",
            Rule::Manifest,
            format!(
                "metadata.version {:?} is in none of the forms the official extensions-validator accepts: \
                 v?X.Y.Z[-pre], YYYYMMDD[.N], X.Y.Z-vA.B.C[-pre], <hex commit>-vA.B.C[-pre], v?X.Y",
                manifest.version
            ),
        );
    }
    if let Some(constraint) = manifest.talos_version.as_deref() {
        match Range::parse_constraint(constraint) {
            Err(reason) => report(
                "manifest.yaml",
                Rule::Compatibility,
                format!("compatibility.talos.version {constraint:?} is not a version range: {reason}"),
            ),
            Ok(range) => {
                if let Some(talos) = talos.filter(|t| !range.matches(t)) {
                    report(
                        "manifest.yaml",
                        Rule::Compatibility,
                        format!("compatibility.talos.version {constraint:?} excludes Talos {talos}"),
                    );
                }
            }
        }
    }
    Ok(Some(manifest))
}

/// Checks every entry under `rootfs`; returns the service spec files found (rootfs-relative).
fn check_rootfs(
    rootfs: &Path,
    options: &ValidateOptions<'_>,
    report: &mut Report<'_>,
) -> Result<Vec<PathBuf>, Error> {
    let mut specs = Vec::new();
    let mut modules_dir = false;
    let mut release_dir = false;
    let root_metadata = fs::symlink_metadata(rootfs).map_err(|e| read_error("read", rootfs, e))?;
    if root_metadata.permissions().mode() & 0o002 != 0 {
        report("/", Rule::WorldWritable, world_writable(&root_metadata));
    }
    walk(rootfs, &mut |relative: &[u8], metadata: &Metadata| {
        let absolute = format!("/{}", String::from_utf8_lossy(relative));
        let path = absolute.as_str();
        let file_type = metadata.file_type();
        let directory = file_type.is_dir();
        if !file_type.is_symlink() && metadata.permissions().mode() & 0o002 != 0 {
            report(path, Rule::WorldWritable, world_writable(metadata));
        }
        if !directory && !file_type.is_file() && !file_type.is_symlink() {
            report(
                path,
                Rule::SpecialFile,
                format!(
                    "is a {}; extensions hold only directories, regular files and symlinks",
                    kind(metadata)
                ),
            );
        }
        if let Some((merged, target)) = USR_MERGE.iter().find(|(merged, _)| is_under(path, merged)) {
            if !directory || path == *merged {
                let rest = path.strip_prefix(merged).unwrap_or_default();
                report(
                    path,
                    Rule::UsrMerge,
                    format!(
                        "Talos 1.10 merged /usr and makes {merged} a symlink; use {target}{rest} instead"
                    ),
                );
            }
        } else if !directory && !ALLOWED_PATHS.iter().any(|allowed| is_under(path, allowed)) {
            report(
                path,
                Rule::DisallowedPath,
                format!("is outside the paths extensions may use: {}", ALLOWED_PATHS.join(", ")),
            );
        }
        if let Some(inside) = path.strip_prefix(MODULES) {
            let inside = inside.strip_prefix('/').unwrap_or(inside);
            modules_dir = true;
            let release = inside.split('/').next().unwrap_or_default();
            if !inside.is_empty()
                && directory
                && !inside.contains('/')
                && options.kernel_release == Some(release)
            {
                release_dir = true;
            }
            if !directory && !inside.contains('/') {
                report(
                    path,
                    Rule::ModuleRelease,
                    format!("sits directly in {MODULES}, outside a kernel release directory"),
                );
            } else if let Some(kernel) = options.kernel_release.filter(|k| !directory && *k != release) {
                report(
                    path,
                    Rule::ModuleRelease,
                    format!(
                        "is for kernel release {release:?}, not {kernel:?}: modules belong under {MODULES}/{kernel}/"
                    ),
                );
            }
        }
        if let Some(name) =
            relative.strip_prefix(service::SPEC_DIR.as_bytes()).and_then(|r| r.strip_prefix(b"/"))
            && !name.contains(&b'/')
            && name.ends_with(b".yaml")
        {
            if file_type.is_file() {
                specs.push(PathBuf::from(std::ffi::OsStr::from_bytes(relative)));
            } else {
                report(
                    path,
                    Rule::Service,
                    format!("is a {}, but a service spec must be a regular file", kind(metadata)),
                );
            }
        }
    })?;
    if let Some(kernel) = options.kernel_release.filter(|_| modules_dir && !release_dir) {
        report(
            MODULES,
            Rule::ModuleRelease,
            format!("has no {kernel} directory; Talos needs one in every extension that ships {MODULES}"),
        );
    }
    Ok(specs)
}

/// Checks each service spec and that no two specs name the same service.
fn check_services(rootfs: &Path, specs: &[PathBuf], report: &mut Report<'_>) -> Result<(), Error> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for relative in specs {
        let shown = format!("/{}", relative.display());
        let file = rootfs.join(relative);
        let bytes = fs::read(&file).map_err(|e| read_error("read", &file, e))?;
        let Ok(text) = String::from_utf8(bytes) else {
            report(&shown, Rule::Service, "is not UTF-8".to_owned());
            continue;
        };
        let checked = service::check(&text, &file, rootfs)?;
        for problem in checked.problems {
            report(&shown, Rule::Service, problem);
        }
        if let Some(name) = checked.name {
            if let Some(first) = names.get(&name) {
                report(&shown, Rule::Service, format!("service name {name:?} is already used by {first}"));
            } else {
                names.insert(name, shown);
            }
        }
    }
    Ok(())
}

/// Whether `path` is `base` or below it (a `/` boundary, so `/usr/localfoo` is not under `/usr/local`).
fn is_under(path: &str, base: &str) -> bool {
    path.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn world_writable(metadata: &Metadata) -> String {
    format!("mode {:04o} lets anyone write to it; clear o+w", metadata.permissions().mode() & 0o7777)
}

fn kind(metadata: &Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "regular file"
    } else if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "block device"
    }
}

/// Visits every entry under `root` (not `root` itself), parents first, children sorted by raw
/// name bytes, following no symlink. Unlike [`crate::walk::Walk`], which stops at a socket,
/// FIFO or device, it reports those like any other entry, so all violations can be collected.
fn walk(root: &Path, visit: &mut dyn FnMut(&[u8], &Metadata)) -> Result<(), Error> {
    struct Frame {
        host: PathBuf,
        relative: Vec<u8>,
        remaining: Vec<OsString>,
    }
    let mut remaining = sorted_names(root)?;
    remaining.reverse();
    let mut stack = vec![Frame { host: root.to_owned(), relative: Vec::new(), remaining }];
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.remaining.pop() else {
            stack.pop();
            continue;
        };
        let host = frame.host.join(&name);
        let mut relative = frame.relative.clone();
        if !relative.is_empty() {
            relative.push(b'/');
        }
        relative.extend_from_slice(name.as_bytes());
        let metadata = fs::symlink_metadata(&host).map_err(|e| read_error("read", &host, e))?;
        visit(&relative, &metadata);
        if metadata.is_dir() {
            let mut remaining = sorted_names(&host)?;
            remaining.reverse();
            stack.push(Frame { host, relative, remaining });
        }
    }
    Ok(())
}

fn sorted_names(dir: &Path) -> Result<Vec<OsString>, Error> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| read_error("list", dir, e))? {
        names.push(entry.map_err(|e| read_error("list", dir, e))?.file_name());
    }
    order::sort_names(&mut names);
    Ok(names)
}

fn lstat(path: &Path) -> Result<Option<Metadata>, Error> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(read_error("read", path, e)),
    }
}

fn read_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Read { action, path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_means_at_a_slash_boundary() {
        assert!(is_under("/usr/local", "/usr/local"));
        assert!(is_under("/usr/local/bin/x", "/usr/local"));
        assert!(!is_under("/usr/localfoo", "/usr/local"));
        assert!(!is_under("/usr/lib/ld-linux-x86-64.so.2.bak", "/usr/lib/ld-linux-x86-64.so.2"));
        assert!(is_under("/usr/lib/ld-linux-x86-64.so.2", "/usr/lib/ld-linux-x86-64.so.2"));
    }
}
