//! Shared helpers: running kiln, building fixture trees, reading layouts.

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The kiln binary with a clean, fixed environment (no SOURCE_DATE_EPOCH, C locale, UTC).
pub(crate) fn kiln() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command.env_remove("SOURCE_DATE_EPOCH").env("LC_ALL", "C").env("TZ", "UTC");
    command
}

/// Runs a command and returns its output, printing it on failure.
pub(crate) fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub(crate) fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a command that must succeed; returns stdout as bytes.
pub(crate) fn ok_bytes(command: &mut Command) -> Vec<u8> {
    let output = run(command);
    assert!(output.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Whether an external tool is installed. Without it a test cannot run: it says so, and under
/// `CI` it fails instead of passing silently.
pub(crate) fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        let message = format!("{tool} is not installed; run scripts/install-deps");
        assert!(std::env::var_os("CI").is_none(), "CI requires every tool: {message}");
        eprintln_skip(&message);
    }
    found
}

/// Whether the tests run as root.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A temporary directory that other users can traverse (tests run kiln as `nobody` too).
pub(crate) fn tempdir_in(parent: &Path) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("kiln-test-").tempdir_in(parent).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempdir_in(&std::env::temp_dir())
}

/// A temporary directory holding the standard fixture tree at `tree/`.
pub(crate) fn fixture() -> (tempfile::TempDir, PathBuf) {
    let work = tempdir();
    let tree = work.path().join("tree");
    write_fixture(&tree, PLAIN);
    (work, tree)
}

/// How a fixture tree is created; the packed result must not depend on any of it.
#[derive(Clone, Copy)]
pub(crate) struct Variation {
    /// Create entries in reverse order (on tmpfs this reverses the directory order too).
    pub(crate) reverse: bool,
    /// Permission bits as a umask of 077 would leave them, and odd mtimes.
    pub(crate) perturb: bool,
}

pub(crate) const PLAIN: Variation = Variation { reverse: false, perturb: false };

/// A long directory name (forces the ustar prefix split) and a name no ustar header holds.
pub(crate) fn long_names() -> (String, String) {
    (format!("usr/share/{}", "d".repeat(120)), format!("usr/share/{}.txt", "n".repeat(150)))
}

/// Deterministic content that spans several gzip blocks and compresses a little.
pub(crate) fn big_content() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..400 * 1024)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 3 == 0 { b"kiln"[i % 4] } else { (state >> 56) as u8 }
        })
        .collect()
}

/// One step of creating the fixture tree.
type Step = Box<dyn Fn(&Path)>;

/// Writes the standard fixture tree into `root`: regular, executable, empty and large files,
/// nested and empty directories, a symlink, a dangling symlink, a hard link, names longer than
/// 100 bytes and a non-UTF-8 name.
pub(crate) fn write_fixture(root: &Path, variation: Variation) {
    let (long_dir, long_name) = long_names();
    let mut steps: Vec<Step> = vec![
        Box::new(|r| file(r, "etc/hostname", b"kiln\n", false)),
        Box::new(|r| file(r, "etc/os-release", b"NAME=kiln\nID=kiln\n", false)),
        Box::new(|r| file(r, "usr/bin/tool", b"#!/bin/sh\necho tool\n", true)),
        Box::new(|r| file(r, "usr/lib/empty", b"", false)),
        Box::new(|r| file(r, "usr/lib/big.bin", &big_content(), false)),
        Box::new(|r| file(r, "usr/lib/libx.so.1.0", b"\x7fELF not really\n", true)),
        Box::new(|r| symlink("libx.so.1.0", r.join("usr/lib/libx.so.1")).unwrap()),
        Box::new(|r| symlink("/nonexistent/target", r.join("dangling")).unwrap()),
        Box::new(|r| fs::create_dir_all(r.join("var/empty-dir")).unwrap()),
        Box::new(move |r| file(r, &format!("{long_dir}/{}.conf", "f".repeat(90)), b"long\n", false)),
        Box::new(move |r| file(r, &long_name, b"longer\n", false)),
        Box::new(|r| {
            fs::create_dir_all(r.join("usr/share")).unwrap();
            let name = OsStr::from_bytes(b"usr/share/\xff\xfe-latin1-\xe9");
            fs::write(r.join(name), b"bytes\n").unwrap();
        }),
    ];
    if variation.reverse {
        // Parents of later steps must exist first.
        for dir in ["etc", "usr/bin", "usr/lib", "usr/share", "var"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        steps.reverse();
    }
    for step in &steps {
        step(root);
    }
    fs::hard_link(root.join("usr/lib/libx.so.1.0"), root.join("usr/lib/libx-hardlink.so")).unwrap();
    if variation.perturb {
        perturb(root);
    }
}

fn file(root: &Path, relative: &str, content: &[u8], executable: bool) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = File::create(&path).unwrap();
    f.write_all(content).unwrap();
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Modes as a umask of 077 leaves them, and mtimes spread over decades.
fn perturb(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    let mut n = 0u64;
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                continue;
            }
            let mode = meta.permissions().mode() & 0o700;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            n += 1;
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000_000 * n + 12345);
            File::open(&path).unwrap().set_times(FileTimes::new().set_modified(time)).unwrap();
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
}

/// Parsed `index.json` of a layout.
pub(crate) fn index(layout: &Path) -> Value {
    serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap()
}

/// The manifest digest named `reference` in a layout.
pub(crate) fn manifest_digest(layout: &Path, reference: &str) -> String {
    let index = index(layout);
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("no {reference} in {}", layout.display()));
    entry["digest"].as_str().unwrap().to_owned()
}

pub(crate) fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap();
    layout.join("blobs").join(algorithm).join(hex)
}

pub(crate) fn blob_json(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(layout, digest)).unwrap()).unwrap()
}

/// The single layer's (digest, media type) and the config's diff_id of an image.
pub(crate) fn layer_of(layout: &Path, reference: &str) -> (String, String, String) {
    let manifest = blob_json(layout, &manifest_digest(layout, reference));
    let layer = &manifest["layers"][0];
    let config = blob_json(layout, manifest["config"]["digest"].as_str().unwrap());
    (
        layer["digest"].as_str().unwrap().to_owned(),
        layer["mediaType"].as_str().unwrap().to_owned(),
        config["rootfs"]["diff_ids"][0].as_str().unwrap().to_owned(),
    )
}

pub(crate) fn sha256_file(path: &Path) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(fs::read(path).unwrap())))
}

/// Every file of a directory tree with its mode and content digest, for whole-tree comparison.
pub(crate) fn tree_listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.push(format!("{relative}/ {mode:o}"));
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                out.push(format!("{relative} -> {}", fs::read_link(&path).unwrap().display()));
            } else {
                out.push(format!("{relative} {mode:o} {}", sha256_file(&path)));
            }
        }
    }
    out.sort();
    out
}

/// Packs `tree` into `out` as `reference` with extra arguments; returns the manifest digest.
pub(crate) fn pack(tree: &Path, out: &Path, reference: &str, extra: &[&str]) -> String {
    let stdout = ok(kiln().arg("pack").arg(tree).args(["--ref", reference, "--out"]).arg(out).args(extra));
    let digest = manifest_digest(out, reference);
    assert_eq!(stdout.trim(), format!("{reference} {digest}"));
    digest
}

/// The Linux 6.12 source tree from Debian's `linux-source-6.12`, extracted once per build
/// directory and installed tarball, and shared by every test that needs it
/// (`target/tmp/linux-6.12-SIZE-MTIME`: when Debian replaces the package, the next run extracts
/// the new tarball and removes the old tree). `None`, with the reason printed, when the package
/// is missing outside CI.
pub(crate) fn linux_source() -> Option<PathBuf> {
    let tarball = Path::new("/usr/src/linux-source-6.12.tar.xz");
    let Ok(metadata) = fs::metadata(tarball) else {
        let message = "linux-source-6.12 is not installed; run scripts/install-deps";
        assert!(std::env::var_os("CI").is_none(), "CI requires it: {message}");
        eprintln_skip(message);
        return None;
    };
    let stamp = format!(
        "{}-{}",
        metadata.len(),
        metadata.modified().unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    );
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tree = cache.join(format!("linux-6.12-{stamp}"));
    fs::create_dir_all(cache).unwrap();
    let lock = File::create(cache.join("linux-6.12.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !tree.join("Makefile").exists() {
        for entry in fs::read_dir(cache).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("linux-6.12") && path.is_dir() && path != tree {
                fs::remove_dir_all(&path).unwrap();
            }
        }
        let staging = tempfile::Builder::new().prefix(".linux-").tempdir_in(cache).unwrap();
        ok(Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("--strip-components=1")
            .arg("-C")
            .arg(staging.path()));
        let staged = staging.keep();
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&staged, &tree).unwrap();
    }
    Some(tree)
}

/// The kernel version of a Linux tree (`VERSION.PATCHLEVEL.SUBLEVEL` of its Makefile): what
/// Debian's current `linux-source-6.12` holds, never a version written into a test.
pub(crate) fn linux_version(tree: &Path) -> String {
    let makefile = fs::read_to_string(tree.join("Makefile")).unwrap();
    let value = |name: &str| {
        makefile
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim_start().strip_prefix('=').map(str::trim))
            .unwrap_or_else(|| panic!("{name} is not in {}", tree.join("Makefile").display()))
            .to_owned()
    };
    format!("{}.{}.{}", value("VERSION"), value("PATCHLEVEL"), value("SUBLEVEL"))
}

/// Runs a command under a watchdog: it must finish within `limit`, or it is killed (with its
/// process group) and the test fails saying it hung. Returns its output.
pub(crate) fn run_within(command: &mut Command, limit: Duration) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    command.stdin(std::process::Stdio::null());
    command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).process_group(0);
    let started = std::time::Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let group = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{command:?} hung: killed after {limit:?}\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Runs `command` (a kiln command from [`kiln`] or [`kiln_with_credentials`]) under
/// `/usr/bin/time -f %M` and [`run_within`]; its output and peak RSS in KiB. `None` (reason
/// printed) without `/usr/bin/time` outside CI.
pub(crate) fn peak_rss(command: &Command, limit: Duration) -> Option<(Output, u64)> {
    if !require_tool("/usr/bin/time") {
        return None;
    }
    let dir = tempdir();
    let rss = dir.path().join("rss");
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg("-o").arg(&rss).arg(command.get_program()).args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(name, value),
            None => timed.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        timed.current_dir(dir);
    }
    let output = run_within(&mut timed, limit);
    let text = fs::read_to_string(&rss).unwrap();
    // `time` adds a line when the command is killed by a signal; the figure is the last line.
    let peak = text.lines().last().unwrap().trim().parse().unwrap();
    Some((output, peak))
}

#[expect(clippy::print_stderr, reason = "a skipped test must say why")]
pub(crate) fn eprintln_skip(message: &str) {
    eprintln!("skipping: {message}");
}

/// How a test registry authenticates.
pub(crate) enum Access {
    /// Plain HTTP, anonymous.
    Open,
    /// HTTPS with a certificate from a test CA, and htpasswd (bcrypt) basic auth for one user.
    Htpasswd { user: &'static str, password: &'static str },
    /// Plain HTTP with bearer tokens from a token server (`auth.token`).
    Token { realm: String, certificate: PathBuf },
}

/// A CNCF distribution registry (Debian's `docker-registry`) on a free loopback port with its
/// own storage, stopped when dropped.
pub(crate) struct Registry {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub(crate) address: String,
}

impl Registry {
    /// An open registry over plain HTTP, or `None` (reason printed) when the package is
    /// missing outside CI.
    pub(crate) fn start() -> Option<Registry> {
        Registry::start_with(&Access::Open)
    }

    /// A registry with the given access rules.
    pub(crate) fn start_with(access: &Access) -> Option<Registry> {
        if !require_tool("docker-registry") {
            return None;
        }
        let dir = tempdir();
        let mut extra = String::new();
        if let Access::Htpasswd { user, password } = access {
            if !require_tool("htpasswd") || !require_tool("openssl") {
                return None;
            }
            test_ca(dir.path());
            let htpasswd = ok(Command::new("htpasswd").args(["-Bbn", user, password]));
            fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
            extra = format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        if let Access::Token { realm, certificate } = access {
            extra = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                crate::token_server::SERVICE,
                crate::token_server::ISSUER,
                certificate.display()
            );
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let address = format!("127.0.0.1:{port}");
            let tls = match access {
                Access::Open | Access::Token { .. } => String::new(),
                Access::Htpasswd { .. } => format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    dir.path().join("server.crt").display(),
                    dir.path().join("server.key").display()
                ),
            };
            let config = dir.path().join("config.yml");
            // A header only this registry sends: a port another test's registry took is not
            // mistaken for this one.
            let marker = dir.path().file_name().unwrap().to_string_lossy().into_owned();
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n{extra}http:\n  addr: {address}\n  headers:\n    X-Kiln-Test: [{marker}]\n{tls}",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let log = File::create(dir.path().join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let tls_config = matches!(access, Access::Htpasswd { .. });
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if std::net::TcpStream::connect(&address).is_ok()
                    && (tls_config || answers_with(&address, &marker))
                {
                    return Some(Registry { child, dir, address });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry did not start; see {}", dir.path().join("registry.log").display());
    }

    /// Where the registry keeps a blob's bytes (to damage it on purpose).
    pub(crate) fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// The test CA's certificate (for registries with TLS).
    pub(crate) fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
}

/// Whether the plain-HTTP server at `address` answers `GET /v2/` with `X-Kiln-Test: marker`.
fn answers_with(address: &str, marker: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: registry\r\n\r\n").is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    response.contains(&format!("x-kiln-test: {}", marker.to_ascii_lowercase()))
}

/// A CA (`ca.crt`, `ca.key`) and a server certificate (`server.crt`, `server.key`) signed by it
/// for 127.0.0.1 and 127.0.0.2 (a second loopback host, for tests that need another host),
/// written to `dir`.
pub(crate) fn test_ca(dir: &Path) {
    let openssl = |args: &[&str]| ok(Command::new("openssl").args(args).current_dir(dir));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=kiln test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,IP:127.0.0.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kiln with a credentials store of its own: `config.json` in a fresh `DOCKER_CONFIG`, and no
/// other credential file reachable.
pub(crate) fn kiln_with_credentials(dir: &Path, auths: &Value) -> Command {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("config.json"), serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap())
        .unwrap();
    let mut command = kiln();
    command
        .env("DOCKER_CONFIG", dir)
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR");
    command
}

/// `kiln` run as `nobody` (for tests running as root), from a copy in `dir`, which nobody can
/// reach; `None` (reason printed) without `setpriv` outside CI.
pub(crate) fn kiln_as_nobody(dir: &Path) -> Option<Command> {
    if !require_tool("setpriv") {
        return None;
    }
    let binary = dir.join("kiln");
    if !binary.exists() {
        fs::copy(env!("CARGO_BIN_EXE_kiln"), &binary).unwrap();
    }
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(binary);
    Some(command)
}

/// The sources of recipes/smoke that Debian packages install, pinned by its kiln.lock.
pub(crate) const SMOKE_PACKAGE_SOURCES: [&str; 3] = ["linux", "systemd-stub", "systemd-boot"];

/// recipes/smoke, ready to build here: as scripts/smoke does, the files Debian packages install
/// are re-locked to this host's packages first (once per test process), and the test says so. A
/// Debian update between two runs changes its kiln.lock, never breaks the tests.
#[expect(clippy::print_stderr, reason = "a deliberate re-lock is announced")]
pub(crate) fn smoke_recipe() -> PathBuf {
    static RELOCKED: std::sync::Once = std::sync::Once::new();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/smoke");
    RELOCKED.call_once(|| {
        eprintln!(
            "re-locking {} of recipes/smoke to this host's Debian packages",
            SMOKE_PACKAGE_SOURCES.join(", ")
        );
        let mut command = kiln();
        command.env("KILN_CACHE", shared_cache()).arg("lock").arg(&recipe);
        for name in SMOKE_PACKAGE_SOURCES {
            command.args(["--update", name]);
        }
        let output = run(&mut command);
        let report = String::from_utf8_lossy(&output.stderr);
        eprint!("{report}");
        // Outside CI a host without the packages skips the tests that need them; CI has them.
        assert!(
            output.status.success() || std::env::var_os("CI").is_none(),
            "CI requires recipes/smoke's packages: {report}"
        );
    });
    recipe
}

/// A copy of recipes/smoke in `dir`, with what it shares with recipes/solana.
pub(crate) fn smoke_recipe_copy(dir: &Path) -> PathBuf {
    let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let recipe = dir.join("smoke");
    ok(Command::new("cp").arg("-R").arg(smoke_recipe()).arg(&recipe));
    // The module source, the io_uring program and Talos's boot functions, at the same places.
    fs::create_dir_all(dir.join("solana")).unwrap();
    for shared in ["optimizer", "qemu-check", "talos-boot"] {
        ok(Command::new("cp").arg("-R").arg(recipes.join("solana").join(shared)).arg(dir.join("solana")));
    }
    recipe
}

/// A copy of recipes/solana in `dir`, with a signing seed of its own (the recipe's stays out of
/// the repository).
pub(crate) fn solana_recipe_copy(dir: &Path) -> PathBuf {
    let recipe = dir.join("solana");
    ok(Command::new("cp")
        .arg("-R")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/solana"))
        .arg(&recipe));
    let _ = fs::remove_dir_all(recipe.join("secrets"));
    fs::create_dir_all(recipe.join("secrets")).unwrap();
    fs::write(recipe.join("secrets/signing.seed"), [7u8; 32]).unwrap();
    recipe
}

/// Builds recipes/smoke into `out` with the shared cache (the kernel built once per run) and
/// returns `kiln build --json`'s report.
pub(crate) fn build_smoke(out: &Path) -> serde_json::Value {
    let output = run(kiln()
        .env("KILN_CACHE", shared_cache())
        .env_remove("SOURCE_DATE_EPOCH")
        .arg("build")
        .arg(smoke_recipe())
        .arg("--out")
        .arg(out)
        .arg("--json"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A gzipped tar of recipes/smoke/extension: a small release tarball for source tests.
pub(crate) fn release_tarball() -> Vec<u8> {
    ok_bytes(Command::new("tar").args([
        "-C",
        env!("CARGO_MANIFEST_DIR"),
        "-czf",
        "-",
        "recipes/smoke/extension",
    ]))
}

/// The line of recipes/smoke/kiln.toml where its kernel part begins.
pub(crate) const SMOKE_KERNEL_PART: &str = "\n# The kernel:";

/// The cache `scripts/smoke` fills and the kernel tests share, so the smoke kernel is built
/// once per CI run.
pub(crate) fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("../kiln-cache")
}

/// Whether a file a test needs exists; like [`require_tool`], it fails under `CI` when not.
pub(crate) fn require_file(path: &str) -> bool {
    let found = Path::new(path).exists();
    if !found {
        let message = format!("{path} is missing; run scripts/install-deps");
        assert!(std::env::var_os("CI").is_none(), "CI requires every tool: {message}");
        eprintln_skip(&message);
    }
    found
}

/// Whether a guest's report lines (the text after its `kiln-smoke: ` prefix) hold `expected`.
/// The kernel writes to the same serial console, so one of its messages can land after a report
/// on the same line: the report must start the line, whatever follows it.
pub(crate) fn guest_reported(reported: &[&str], expected: &str) -> bool {
    reported.iter().any(|line| line.starts_with(expected))
}
