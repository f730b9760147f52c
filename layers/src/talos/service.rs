//! Extension service specs (`/usr/local/etc/containers/*.yaml`) and the container rootfs each
//! one runs from (`/usr/local/lib/containers/<name>/`).

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Error, yaml};

/// Where service specs live, relative to the extension rootfs.
pub(crate) const SPEC_DIR: &str = "usr/local/etc/containers";
/// Where each service's container rootfs lives, relative to the extension rootfs.
const ROOTFS_DIR: [&str; 4] = ["usr", "local", "lib", "containers"];
/// The `PATH` a container gets when its spec sets none (containerd's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Symlinks followed while resolving an entrypoint before giving up, as Linux does.
const MAX_SYMLINKS: usize = 40;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    name: String,
    container: Option<Container>,
    depends: Option<Vec<Dependency>>,
    restart: Option<String>,
    #[serde(rename = "logToConsole")]
    _log_to_console: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Container {
    entrypoint: Option<String>,
    environment: Option<Vec<String>>,
    #[serde(rename = "environmentFile")]
    _environment_file: Option<String>,
    #[serde(rename = "args")]
    _args: Option<Vec<String>>,
    mounts: Option<Vec<Mount>>,
    #[serde(rename = "security")]
    _security: Option<Security>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mount {
    destination: Option<String>,
    #[serde(rename = "source")]
    _source: Option<String>,
    #[serde(rename = "type")]
    _type: Option<String>,
    #[serde(rename = "options")]
    _options: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Security {
    #[serde(rename = "writeableSysfs")]
    _writeable_sysfs: Option<bool>,
    #[serde(rename = "maskedPaths")]
    _masked_paths: Option<Vec<String>>,
    #[serde(rename = "readonlyPaths")]
    _readonly_paths: Option<Vec<String>>,
    #[serde(rename = "writeableRootfs")]
    _writeable_rootfs: Option<bool>,
    #[serde(rename = "rootfsPropagation")]
    _rootfs_propagation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dependency {
    service: Option<String>,
    path: Option<String>,
    network: Option<Vec<String>>,
    time: Option<bool>,
    configuration: Option<bool>,
}

/// Network conditions a dependency may wait for (`nethelpers.Status`).
const NETWORK_STATUSES: [&str; 4] = ["addresses", "connectivity", "hostname", "etcfiles"];
/// Restart kinds.
const RESTART_KINDS: [&str; 3] = ["always", "never", "untilSuccess"];

/// What one spec file says and what is wrong with it.
pub(crate) struct Checked {
    /// The service name, when the spec could be read.
    pub(crate) name: Option<String>,
    /// Every problem found, as sentences.
    pub(crate) problems: Vec<String>,
}

/// Checks the spec `text` (from `file`) and the container rootfs it names inside `rootfs`.
/// I/O errors other than missing paths are returned; everything else is a problem.
pub(crate) fn check(text: &str, file: &Path, rootfs: &Path) -> Result<Checked, Error> {
    let spec: Spec = match yaml::parse(text, file) {
        Ok(spec) => spec,
        Err(Error::Parse { line, column, message, .. }) => {
            let at = match (line, column) {
                (Some(line), Some(column)) => format!("line {line}, column {column}: "),
                _ => String::new(),
            };
            return Ok(Checked { name: None, problems: vec![format!("{at}{message}")] });
        }
        Err(other) => return Err(other),
    };
    let mut problems = Vec::new();
    let name_valid = !spec.name.is_empty()
        && spec.name.bytes().all(|b| matches!(b, b'-' | b'_' | b'a'..=b'z' | b'0'..=b'9'));
    if !name_valid {
        problems.push(format!("name {:?} does not match ^[-_a-z0-9]{{1,}}$", spec.name));
    }
    match spec.restart.as_deref() {
        Some(kind) if RESTART_KINDS.contains(&kind) => {}
        Some(kind) => problems.push(format!("restart {kind:?} is not one of always, never, untilSuccess")),
        None => problems.push("restart is required (always, never or untilSuccess)".to_owned()),
    }
    for (i, dependency) in spec.depends.iter().flatten().enumerate() {
        check_dependency(dependency, i, &mut problems);
    }
    let Some(container) = spec.container else {
        problems.push("container.entrypoint is required".to_owned());
        return Ok(Checked { name: Some(spec.name), problems });
    };
    let environment = container.environment.unwrap_or_default();
    for variable in &environment {
        if variable.split_once('=').is_none_or(|(key, _)| key.is_empty()) {
            problems.push(format!("container.environment entry {variable:?} is not KEY=VALUE"));
        }
    }
    for (i, mount) in container.mounts.iter().flatten().enumerate() {
        if mount.destination.as_deref().is_none_or(str::is_empty) {
            problems.push(format!("container.mounts[{i}] has no destination"));
        }
    }
    match container.entrypoint.as_deref() {
        None | Some("") => problems.push("container.entrypoint is required".to_owned()),
        Some(entrypoint) if name_valid => {
            let mounted: Vec<&str> =
                container.mounts.iter().flatten().filter_map(|m| m.destination.as_deref()).collect();
            let checking = Checking { name: &spec.name, environment: &environment, mounted: &mounted };
            if let Some(problem) = check_container(rootfs, entrypoint, &checking)? {
                problems.push(problem);
            }
        }
        Some(_) => {}
    }
    Ok(Checked { name: Some(spec.name), problems })
}

fn check_dependency(dependency: &Dependency, i: usize, problems: &mut Vec<String>) {
    let mut set = Vec::new();
    if dependency.service.as_deref().is_some_and(|s| !s.is_empty()) {
        set.push("service");
    }
    if let Some(path) = dependency.path.as_deref().filter(|p| !p.is_empty()) {
        set.push("path");
        if !path.starts_with('/') {
            problems.push(format!("depends[{i}].path {path:?} is not absolute"));
        }
    }
    if let Some(network) = dependency.network.as_ref().filter(|n| !n.is_empty()) {
        set.push("network");
        for status in network {
            if !NETWORK_STATUSES.contains(&status.as_str()) {
                problems.push(format!(
                    "depends[{i}].network {status:?} is not one of addresses, connectivity, hostname, etcfiles"
                ));
            }
        }
    }
    if dependency.time == Some(true) {
        set.push("time");
    }
    if dependency.configuration == Some(true) {
        set.push("configuration");
    }
    match set.len() {
        1 => {}
        0 => problems.push(format!(
            "depends[{i}] sets none of service, path, network, time, configuration; exactly one is required"
        )),
        _ => problems.push(format!("depends[{i}] sets {}; exactly one is allowed", set.join(", "))),
    }
}

/// What of a spec the container's checks need.
struct Checking<'a> {
    name: &'a str,
    environment: &'a [String],
    /// `container.mounts` destinations: what the container sees there comes from the host.
    mounted: &'a [&'a str],
}

/// The container rootfs must be a directory and the entrypoint an executable regular file in
/// it; returns the problem, if any.
fn check_container(
    rootfs: &Path,
    entrypoint: &str,
    container: &Checking<'_>,
) -> Result<Option<String>, Error> {
    let (name, environment) = (container.name, container.environment);
    let mut root = rootfs.to_owned();
    for component in ROOTFS_DIR.into_iter().chain([name]) {
        root.push(component);
        match lstat(&root)? {
            Some(metadata) if metadata.is_dir() => {}
            _ => {
                return Ok(Some(format!(
                    "the container rootfs /{}/{name}/ is not a directory",
                    ROOTFS_DIR.join("/")
                )));
            }
        }
    }
    let candidates: Vec<String> = if entrypoint.contains('/') {
        vec![entrypoint.to_owned()]
    } else {
        let path = environment.iter().rev().find_map(|v| v.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
        path.split(':').filter(|dir| dir.starts_with('/')).map(|dir| format!("{dir}/{entrypoint}")).collect()
    };
    let mut first_problem = None;
    for candidate in &candidates {
        match executable(&root, candidate, container.mounted)? {
            None => return Ok(None),
            Some(problem) => {
                first_problem.get_or_insert(problem);
            }
        }
    }
    let problem = first_problem.unwrap_or_else(|| "no PATH directory to look in".to_owned());
    Ok(Some(format!("entrypoint {entrypoint:?} in /{}/{name}/: {problem}", ROOTFS_DIR.join("/"))))
}

/// `None` when `path` resolves, inside `root`, to a regular file with an execute bit whose ELF
/// interpreter, if any, is in `root` too or under one of the `mounted` destinations.
fn executable(root: &Path, path: &str, mounted: &[&str]) -> Result<Option<String>, Error> {
    let (host, metadata) = match resolve(root, path.as_bytes())? {
        Ok(found) => found,
        Err(problem) => return Ok(Some(problem)),
    };
    if !metadata.is_file() {
        return Ok(Some(format!("{} is not a regular file", shown(root, &host))));
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Ok(Some(format!("{} has no execute bit", shown(root, &host))));
    }
    // A dynamically linked program needs its ELF interpreter inside the container rootfs: the
    // container sees nothing else (Talos's `extension.go` gives it that directory as its root),
    // and the kernel's exec fails with ENOENT when the interpreter is missing.
    let Some(interpreter) = elf_interpreter(&host)? else { return Ok(None) };
    let under = |destination: &&str| {
        let destination = destination.trim_end_matches('/').as_bytes();
        interpreter.strip_prefix(destination).is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
    };
    if mounted.iter().any(under) {
        return Ok(None);
    }
    match resolve(root, &interpreter)? {
        Ok((_, found)) if found.is_file() => Ok(None),
        Ok(_) | Err(_) => Ok(Some(format!(
            "{} needs the ELF interpreter {}, which the container rootfs does not have (a service \
             sees only its own rootfs, not the extensions' or the host's loader)",
            shown(root, &host),
            String::from_utf8_lossy(&interpreter)
        ))),
    }
}

/// The longest ELF interpreter path read (Linux refuses a `PT_INTERP` over `PATH_MAX`).
const MAX_INTERPRETER: u64 = 4096;

/// The `PT_INTERP` path of a 64-bit little-endian ELF file (x86-64, arm64), without its NUL;
/// `None` for anything else, or a static program.
fn elf_interpreter(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    // Not through a link put there since it was resolved, and never blocking on a FIFO.
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| read_error("open", path, e))?;
    if !file.metadata().map_err(|e| read_error("read", path, e))?.is_file() {
        return Ok(None);
    }
    let mut header = [0u8; 64];
    if file.read_exact(&mut header).is_err() || &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1
    {
        return Ok(None);
    }
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let (table, entry_size, count) = (u64_at(&header, 0x20), u16_at(&header, 0x36), u16_at(&header, 0x38));
    if entry_size < 56 {
        return Ok(None);
    }
    let mut entry = vec![0u8; usize::from(entry_size)];
    for index in 0..u64::from(count) {
        let at = table.saturating_add(index * u64::from(entry_size));
        file.seek(SeekFrom::Start(at)).map_err(|e| read_error("read", path, e))?;
        if file.read_exact(&mut entry).is_err() {
            return Ok(None);
        }
        const PT_INTERP: u32 = 3;
        if u32::from_le_bytes(entry[..4].try_into().expect("4 bytes")) != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(&entry, 8), u64_at(&entry, 32));
        if size == 0 || size > MAX_INTERPRETER {
            return Ok(None);
        }
        let mut interpreter = Vec::new();
        file.seek(SeekFrom::Start(offset)).map_err(|e| read_error("read", path, e))?;
        (&mut file).take(size).read_to_end(&mut interpreter).map_err(|e| read_error("read", path, e))?;
        let end = interpreter.iter().position(|&b| b == 0).unwrap_or(interpreter.len());
        interpreter.truncate(end);
        return Ok(Some(interpreter));
    }
    Ok(None)
}

/// Resolves `path` as a process whose root directory is `root` would: `..` stops at the root,
/// absolute symlink targets start again from it. Returns the host path and its metadata, or
/// why it does not resolve.
fn resolve(root: &Path, path: &[u8]) -> Result<Result<(PathBuf, Metadata), String>, Error> {
    let mut pending: Vec<Vec<u8>> = components(path);
    let mut resolved: Vec<Vec<u8>> = Vec::new();
    let mut symlinks = 0;
    let mut last = None;
    while let Some(component) = pending.pop() {
        match component.as_slice() {
            b"." => continue,
            b".." => {
                resolved.pop();
                last = None;
                continue;
            }
            _ => {}
        }
        let host = host_path(root, &resolved, &component);
        let Some(metadata) = lstat(&host)? else {
            return Ok(Err(format!("{} does not exist", shown(root, &host))));
        };
        if metadata.file_type().is_symlink() {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Ok(Err(format!("too many symlinks resolving {}", shown(root, &host))));
            }
            let target = fs::read_link(&host).map_err(|e| read_error("read the link", &host, e))?;
            let target = target.as_os_str().as_bytes();
            if target.starts_with(b"/") {
                resolved.clear();
            }
            pending.extend(components(target));
            last = None;
            continue;
        }
        if !pending.is_empty() && !metadata.is_dir() {
            return Ok(Err(format!("{} is not a directory", shown(root, &host))));
        }
        resolved.push(component);
        last = Some((host, metadata));
    }
    Ok(last.ok_or_else(|| "it names the container root itself".to_owned()))
}

/// Non-empty components of `path`, last first (so they can be popped in order).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev().map(<[u8]>::to_vec).collect()
}

fn host_path(root: &Path, resolved: &[Vec<u8>], component: &[u8]) -> PathBuf {
    let mut host = root.to_owned();
    for part in resolved {
        host.push(OsStr::from_bytes(part));
    }
    host.push(OsStr::from_bytes(component));
    host
}

/// `host` as the container sees it.
fn shown(root: &Path, host: &Path) -> String {
    match host.strip_prefix(root) {
        Ok(inside) => format!("/{}", inside.display()),
        Err(_) => host.display().to_string(),
    }
}

/// `lstat`, with a missing path (or a non-directory in the way) as `None`.
fn lstat(path: &Path) -> Result<Option<Metadata>, Error> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(read_error("read", path, e)),
    }
}

fn read_error(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Read { action, path: path.to_owned(), source }
}
