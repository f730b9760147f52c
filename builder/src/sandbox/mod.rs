//! The hermetic sandbox every compile step runs in.
//!
//! A step sees a fixed world, whatever the host: the toolchain (`/usr` and the merged-usr links
//! of a toolchain root, read-only), its inputs read-only at fixed paths, `/build` (the working
//! directory) and `/out` writable, a private `/tmp`, `/dev` with the usual character devices,
//! its own `/proc`, no network device but `lo`, the hostname `kiln`, uid 0 mapped to the user
//! running kiln, umask 022 whatever kiln's is, and only the fixed environment ([`FIXED_ENV`],
//! `SOURCE_DATE_EPOCH`) plus what the recipe passes. Nothing of the host's environment leaks in.
//!
//! The isolation itself sits behind [`Isolation`]; [`Namespaces`] implements it with Linux user,
//! mount, pid, net, uts and ipc namespaces, rootless. The step's process is pid 1 of its pid
//! namespace and dies with kiln (parent-death signal), and every process of the step dies with
//! it, so cancelling kiln — Ctrl-C or `kill -9` — leaves nothing behind.
//!
//! A step is untrusted code, and kiln may run as root (CI does). So the step holds nothing that
//! could undo its confinement: Landlock lets it write only below `/build`, `/out`, `/tmp` and
//! `/dev` and change no mount (not `mount`, `umount`, `pivot_root` or `move_mount`, in any
//! namespace it could create); [`confine`] then drops every capability for good, leaves the
//! terminal's session and refuses the kernel keyrings, before the script's shell starts. `/dev`
//! is the sandbox's own, its device nodes bound read-only and without a terminal.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, PipeWriter, Write};
use std::path::{Path, PathBuf};

use kiln_reproducible::Epoch;

use crate::error::{Error, Result};

pub mod confine;

/// What a step's key says of the confinement its script runs in: a change of it is a change of
/// every step.
pub const CONFINEMENT: &str = "uid 0 of a user namespace without capabilities (securebits locked, no_new_privs); \
     Landlock: writes below /build /out /tmp /dev only, no mount changes; no keyrings; no terminal";

/// Device nodes of the host bound read-only into the sandbox's `/dev` (a private tmpfs).
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Where the step may write (Landlock), besides the device nodes: everything else is read-only.
const WRITABLE: [&str; 4] = ["/build", "/out", "/tmp", "/dev"];

/// The environment every step gets, before `SOURCE_DATE_EPOCH` and the recipe's variables.
pub const FIXED_ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/bin:/bin:/usr/sbin:/sbin"),
    ("LC_ALL", "C"),
    ("TZ", "UTC"),
    ("HOME", "/build"),
    ("SHELL", "/bin/sh"),
];

/// The hostname inside every sandbox.
pub const HOSTNAME: &str = "kiln";

/// Top-level entries of a toolchain root that are made visible: directories are mounted
/// read-only, symbolic links (merged `/usr`) are recreated.
const TOOLCHAIN_ENTRIES: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Files of the toolchain root's `/etc` a toolchain needs (Debian's alternatives links, the
/// dynamic linker's cache), mounted read-only when present.
const TOOLCHAIN_ETC: [&str; 2] = ["etc/alternatives", "etc/ld.so.cache"];

/// A host path mounted read-only at a fixed path in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Host path (file or directory).
    pub host: PathBuf,
    /// Absolute path in the sandbox, e.g. `/src/linux`.
    pub path: String,
}

/// Everything a sandboxed command sees.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Root of the toolchain on the host (`/` for the host's own `/usr`).
    pub toolchain: PathBuf,
    /// Host directory mounted read-write at `/build`, the working directory.
    pub build: PathBuf,
    /// Host directory mounted read-write at `/out`.
    pub out: PathBuf,
    /// Read-only inputs.
    pub inputs: Vec<Input>,
    /// Variables the recipe passes, on top of [`FIXED_ENV`] and `SOURCE_DATE_EPOCH`.
    pub env: BTreeMap<String, String>,
    /// The build's time.
    pub epoch: Epoch,
    /// An empty host directory that holds the sandbox's root (mount points and `/etc` files);
    /// `None` for a temporary one. A build puts it in its work directory, so nothing stays
    /// behind when kiln is killed.
    pub root: Option<PathBuf>,
}

impl Spec {
    /// A sandbox over the host's toolchain with `build` and `out` writable.
    pub fn new(build: impl Into<PathBuf>, out: impl Into<PathBuf>, epoch: Epoch) -> Self {
        Spec {
            toolchain: PathBuf::from("/"),
            build: build.into(),
            out: out.into(),
            inputs: Vec::new(),
            env: BTreeMap::new(),
            epoch,
            root: None,
        }
    }

    /// The complete environment of the command, sorted.
    pub fn environment(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> =
            FIXED_ENV.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        env.insert("SOURCE_DATE_EPOCH".to_owned(), self.epoch.to_string());
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// How a sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Exit {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// A way to run a command isolated as [`Spec`] describes.
pub trait Isolation: Sync {
    /// Runs `/bin/sh -ec SCRIPT` in the sandbox; stdout and stderr both go to `output`.
    /// Blocks until the command and every process it started are gone.
    fn run(&self, spec: &Spec, script: &str, output: PipeWriter) -> Result<Exit>;
}

/// Rootless Linux namespaces (user, mount, pid, net, uts, ipc).
#[derive(Debug, Default, Clone, Copy)]
pub struct Namespaces;

impl Isolation for Namespaces {
    fn run(&self, spec: &Spec, script: &str, output: PipeWriter) -> Result<Exit> {
        use hakoniwa::{Container, MountOptions, Namespace};
        for (what, dir) in [("build", &spec.build), ("out", &spec.out)] {
            if !dir.is_dir() {
                return Err(Error::Sandbox {
                    reason: format!("the {what} directory {} is missing", dir.display()),
                });
            }
        }
        let temporary_root;
        let root = match &spec.root {
            Some(root) => root.clone(),
            None => {
                temporary_root = tempfile::Builder::new()
                    .prefix("kiln-sandbox-")
                    .tempdir()
                    .map_err(|source| Error::Write { path: std::env::temp_dir(), source })?;
                temporary_root.path().to_owned()
            }
        };
        let mut container = Container::new();
        container.rootdir(host_str(&root)?);
        container
            .unshare(Namespace::Network)
            .unshare(Namespace::Uts)
            .unshare(Namespace::Ipc)
            .uidmap(0)
            .gidmap(0)
            .hostname(HOSTNAME)
            // Not tmpfs's default 1777: in a sticky world-writable directory the kernel refuses
            // O_CREAT opens of a file another user owns (may_create_in_sticky), and the device
            // nodes are the host's, which a step run by an ordinary user does not own.
            .mount(
                "tmpfs",
                "/dev",
                "tmpfs",
                MountOptions::NOSUID | MountOptions::NODEV,
                Some("mode=755".into()),
            )
            .tmpfsmount("/dev/shm")
            .tmpfsmount("/tmp");
        for node in DEVICES {
            let path = format!("/dev/{node}");
            container.bindmount_ro(&path, &path);
        }
        container.symlink("/proc/self/fd", "/dev/fd");
        for (fd, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            container.symlink(&format!("/proc/self/fd/{fd}"), &format!("/dev/{name}"));
        }
        container.landlock_ruleset(landlock_rules());
        for entry in TOOLCHAIN_ENTRIES {
            let host = spec.toolchain.join(entry);
            match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = std::fs::read_link(&host)
                        .map_err(|source| Error::Read { path: host.clone(), source })?;
                    container.symlink(&target.to_string_lossy(), &format!("/{entry}"));
                }
                Ok(meta) if meta.is_dir() => {
                    container.bindmount_ro(&host_str(&host)?, &format!("/{entry}"));
                }
                _ => {}
            }
        }
        for entry in TOOLCHAIN_ETC {
            let host = spec.toolchain.join(entry);
            if host.exists() {
                container.bindmount_ro(&host_str(&host)?, &format!("/{entry}"));
            }
        }
        container
            .file("/etc/passwd", "root:x:0:0:root:/build:/bin/sh\n")
            .file("/etc/group", "root:x:0:\n")
            .file("/etc/hosts", &format!("127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n"));
        for input in &spec.inputs {
            container.bindmount_ro(&host_str(&input.host)?, &input.path);
        }
        container.bindmount_rw(&host_str(&spec.build)?, "/build").bindmount_rw(&host_str(&spec.out)?, "/out");

        let stderr = output
            .try_clone()
            .map_err(|source| Error::Sandbox { reason: format!("cannot duplicate a pipe: {source}") })?;
        let confined = confine::Confined::new(&format!("umask 022\n{script}"))
            .map_err(|reason| Error::Sandbox { reason })?;
        // SAFETY: hakoniwa runs the closure in the sandbox's process, forked by libc's fork (so
        // the allocator is usable in it), after its namespaces, mounts and Landlock rules and
        // before anything of the step runs. The closure only makes system calls on what
        // `confined` prepared here, and ends in `exec` or returns the exit code.
        #[allow(unsafe_code)]
        let mut command = unsafe { container.command_from_closure(move || confined.exec()) };
        command
            .envs(spec.environment())
            .current_dir("/build")
            .stdin(hakoniwa::Stdio::from(
                File::open("/dev/null").map_err(|source| Error::Read { path: "/dev/null".into(), source })?,
            ))
            .stdout(hakoniwa::Stdio::from(output))
            .stderr(hakoniwa::Stdio::from(stderr));
        let status = command.status().map_err(|error| Error::Sandbox { reason: error.to_string() })?;
        match status.exit_code {
            Some(code) => Ok(Exit::Code(code)),
            None if status.reason.contains("received signal") => Ok(Exit::Signal(status.code - 128)),
            None => Err(setup_failure(&status.reason)),
        }
    }
}

/// Read and execute everywhere; write only where [`WRITABLE`] says. Landlock also refuses every
/// change of the mount tree to a process it restricts (`mount`, `umount`, `pivot_root`,
/// `move_mount`), whatever capabilities it holds and in whatever namespace; the rules hold for the
/// script and everything it starts.
fn landlock_rules() -> hakoniwa::landlock::Ruleset {
    use hakoniwa::landlock::{CompatMode, FsAccess, Resource, Ruleset};
    let mut rules = Ruleset::default();
    rules.restrict(Resource::FS, CompatMode::Enforce);
    rules.allow_path("/", FsAccess::R | FsAccess::X);
    for path in WRITABLE {
        rules.allow_path(path, FsAccess::R | FsAccess::W | FsAccess::X);
    }
    rules
}

/// A host path as the sandbox mounts it: absolute, without links, UTF-8.
fn host_str(path: &Path) -> Result<String> {
    let absolute =
        std::fs::canonicalize(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    absolute.to_str().map(str::to_owned).ok_or_else(|| Error::Sandbox {
        reason: format!("{} is not valid UTF-8, which the sandbox cannot mount", path.display()),
    })
}

/// The error for a sandbox that could not be set up, telling apart refused user namespaces.
fn setup_failure(reason: &str) -> Error {
    let refused = ["EPERM", "EACCES", "ENOSPC", "Operation not permitted", "Permission denied"];
    let namespaces = ["unshare", "uid_map", "gid_map", "setgroups"].iter().any(|r| reason.contains(r));
    if namespaces && refused.iter().any(|r| reason.contains(r)) {
        return Error::UserNamespacesRefused { reason: reason.to_owned(), settings: userns_settings() };
    }
    Error::Sandbox { reason: reason.to_owned() }
}

/// The host settings that allow or refuse unprivileged user namespaces, as `name = value`.
fn userns_settings() -> Vec<String> {
    [
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ]
    .iter()
    .filter_map(|path| {
        let value = std::fs::read_to_string(path).ok()?;
        let name = path.trim_start_matches("/proc/sys/").replace('/', ".");
        Some(format!("{name} = {}", value.trim()))
    })
    .collect()
}

/// The longest part of a line a step prints that is handed on (to progress and the failure
/// tail); the log gets every byte. A step that prints endlessly without a newline costs no
/// more memory than this.
const LINE_LIMIT: usize = 8 * 1024;

/// A step's output cut into lines, each at most [`LINE_LIMIT`] bytes (what is cut off is
/// counted).
#[derive(Default)]
struct Lines {
    current: Vec<u8>,
    cut: u64,
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8], emit: &mut dyn FnMut(&str)) {
        while !bytes.is_empty() {
            let (part, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => (&bytes[..end], &bytes[end + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = LINE_LIMIT.saturating_sub(self.current.len()).min(part.len());
            self.current.extend_from_slice(&part[..room]);
            self.cut += (part.len() - room) as u64;
            if ended {
                self.emit(emit);
            }
            bytes = rest;
        }
    }

    /// The last line, if the output did not end with a newline.
    fn finish(&mut self, emit: &mut dyn FnMut(&str)) {
        if !self.current.is_empty() || self.cut > 0 {
            self.emit(emit);
        }
    }

    fn emit(&mut self, emit: &mut dyn FnMut(&str)) {
        let mut text = String::from_utf8_lossy(&self.current).trim_end_matches('\r').to_owned();
        if self.cut > 0 {
            text.push_str(&format!(" … ({} more bytes in the log)", self.cut));
        }
        emit(&text);
        self.current.clear();
        self.cut = 0;
    }
}

/// Runs `script` in the sandbox, appending everything it prints to `log`
/// and handing each line to `on_line` as it comes. A command that fails is an error carrying
/// the last lines of the log and its path.
pub fn run_logged(
    isolation: &dyn Isolation,
    spec: &Spec,
    script: &str,
    log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<()> {
    const TAIL: usize = 20;
    let write_error = |source| Error::Write { path: log.to_owned(), source };
    let mut file = File::options().create(true).append(true).open(log).map_err(write_error)?;
    let (reader, writer) = std::io::pipe()
        .map_err(|source| Error::Sandbox { reason: format!("cannot create a pipe: {source}") })?;
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::with_capacity(TAIL);
    let exit = std::thread::scope(|scope| -> Result<Exit> {
        // The thread that starts the sandbox waits for it: the sandbox dies with that thread.
        let running = scope.spawn(|| isolation.run(spec, script, writer));
        let mut reader = BufReader::new(reader);
        let mut lines = Lines::default();
        let mut deliver = |text: &str| {
            on_line(text);
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(text.to_owned());
        };
        loop {
            let chunk = match reader.fill_buf() {
                Ok([]) => break,
                Ok(chunk) => chunk,
                Err(source) => {
                    return Err(Error::Sandbox {
                        reason: format!("cannot read the step's output: {source}"),
                    });
                }
            };
            file.write_all(chunk).map_err(write_error)?;
            let length = chunk.len();
            lines.push(chunk, &mut deliver);
            reader.consume(length);
        }
        lines.finish(&mut deliver);
        running.join().map_err(|_| Error::Sandbox { reason: "the sandbox thread panicked".into() })?
    })?;
    file.sync_all().map_err(write_error)?;
    if exit.success() {
        return Ok(());
    }
    // The sandbox, not the script, failed: the script never ran.
    if exit == Exit::Code(confine::FAILED)
        && let Some(line) = tail.iter().find(|line| line.starts_with(confine::FAILURE_PREFIX))
    {
        return Err(Error::Sandbox { reason: line.clone() });
    }
    Err(Error::StepFailed { exit, log: log.to_owned(), tail: tail.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Lines::default();
        let mut out = Vec::new();
        for chunk in chunks {
            lines.push(chunk, &mut |text| out.push(text.to_owned()));
        }
        lines.finish(&mut |text| out.push(text.to_owned()));
        out
    }

    #[test]
    fn lines_are_cut_at_newlines_across_chunks() {
        assert_eq!(cut(&[b"a\nb", b"c\r\n\nd"]), ["a", "bc", "", "d"]);
        assert_eq!(cut(&[b"x\n"]), ["x"]);
        assert!(cut(&[]).is_empty());
    }

    #[test]
    fn an_endless_line_is_kept_to_its_limit() {
        let long = vec![b'y'; LINE_LIMIT * 3 + 5];
        let lines = cut(&[&long[..LINE_LIMIT], &long[LINE_LIMIT..], b"\nnext"]);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            format!("{} … ({} more bytes in the log)", "y".repeat(LINE_LIMIT), 2 * LINE_LIMIT + 5)
        );
        assert_eq!(lines[1], "next");
    }
}
