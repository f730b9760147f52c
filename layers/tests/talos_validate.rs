//! Talos extension validation, one test per rule, each asserting the offending path and rule.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use kiln_layers::talos::{Error, Manifest, Rule, ValidateOptions, Violation, validate};

const KERNEL: &str = "6.12.63-talos";
const OPTIONS: ValidateOptions<'static> =
    ValidateOptions { talos_version: Some("v1.10.3"), kernel_release: Some(KERNEL) };

/// An extension directory in a temporary directory, every mode set explicitly so the umask
/// does not matter.
struct Extension {
    _temp: tempfile::TempDir,
    dir: PathBuf,
}

impl Extension {
    fn empty() -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("ext");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Extension { _temp: temp, dir }
    }

    /// A valid extension: modules, a service with its container rootfs, the loader, files
    /// under /usr/local, a CRI config part.
    fn valid() -> Self {
        let ext = Extension::empty();
        ext.manifest(&manifest());
        ext.mkdir("rootfs");
        ext.file(&format!("rootfs/usr/lib/modules/{KERNEL}/extras/hello.ko"), "\x7fELF", 0o644);
        ext.file(&format!("rootfs/usr/lib/modules/{KERNEL}/modules.order"), "extras/hello.ko\n", 0o644);
        ext.file("rootfs/usr/lib/ld-linux-x86-64.so.2", "", 0o755);
        ext.file("rootfs/usr/local/share/hello/README", "hi\n", 0o644);
        ext.symlink("rootfs/usr/local/bin/hello", "/usr/local/lib/containers/hello-world/hello-world");
        ext.file("rootfs/etc/cri/conf.d/hello.part", "[plugins]\n", 0o644);
        ext.file("rootfs/usr/local/etc/containers/hello-world.yaml", SERVICE, 0o644);
        ext.file("rootfs/usr/local/etc/containers/notes.txt", "not a spec: ignored\n", 0o644);
        ext.file("rootfs/usr/local/lib/containers/hello-world/hello-world", "#!/bin/true\n", 0o755);
        ext
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    fn mkdir(&self, relative: &str) {
        let mut path = self.dir.clone();
        for component in relative.split('/') {
            path.push(component);
            if !path.exists() {
                fs::create_dir(&path).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }

    fn parent(&self, relative: &str) {
        if let Some((parent, _)) = relative.rsplit_once('/') {
            self.mkdir(parent);
        }
    }

    fn file(&self, relative: &str, content: &str, mode: u32) {
        self.parent(relative);
        let path = self.path(relative);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn symlink(&self, relative: &str, target: &str) {
        self.parent(relative);
        symlink(target, self.path(relative)).unwrap();
    }

    fn chmod(&self, relative: &str, mode: u32) {
        fs::set_permissions(self.path(relative), fs::Permissions::from_mode(mode)).unwrap();
    }

    fn manifest(&self, manifest: &Manifest) {
        self.file("manifest.yaml", &manifest.to_yaml(), 0o644);
    }

    fn service(&self, name: &str, text: &str) {
        self.file(&format!("rootfs/usr/local/etc/containers/{name}"), text, 0o644);
    }

    fn violations(&self) -> Vec<Violation> {
        self.violations_with(&OPTIONS)
    }

    fn violations_with(&self, options: &ValidateOptions<'_>) -> Vec<Violation> {
        match validate(&self.dir, options) {
            Err(Error::Invalid { dir, violations }) => {
                assert_eq!(dir, self.dir);
                assert!(!violations.is_empty());
                violations
            }
            other => panic!("expected violations, got {other:?}"),
        }
    }
}

fn manifest() -> Manifest {
    Manifest {
        name: "hello-world".into(),
        version: "1.0.0-v1.10.3".into(),
        author: "kiln tests".into(),
        description: "An extension that says hello".into(),
        talos_version: Some(">= v1.10.0".into()),
        extra_info: None,
    }
}

const SERVICE: &str = "name: hello-world
container:
  entrypoint: ./hello-world
  environment:
    - GREETING=hello
  args: [--loud]
  mounts:
    - source: /var/lib/hello
      destination: /var/lib/hello
      type: bind
      options: [rbind, rw]
  security:
    writeableRootfs: false
    rootfsPropagation: shared
depends:
  - service: cri
  - path: /system/run/machined/machined.sock
  - network: [addresses, connectivity]
  - time: true
  - configuration: true
restart: always
logToConsole: true
";

/// The violations for `path`, as (rule, detail).
fn at(violations: &[Violation], path: &str) -> Vec<(Rule, String)> {
    violations.iter().filter(|v| v.path == path).map(|v| (v.rule, v.detail.clone())).collect()
}

fn assert_has(violations: &[Violation], path: &str, rule: Rule, needle: &str) {
    assert!(
        violations.iter().any(|v| v.path == path && v.rule == rule && v.detail.contains(needle)),
        "no {rule:?} at {path} mentioning {needle:?} in {violations:#?}"
    );
}

#[test]
fn a_valid_extension_passes_and_returns_its_manifest() {
    let ext = Extension::valid();
    assert_eq!(validate(&ext.dir, &OPTIONS).unwrap(), manifest());
    assert_eq!(validate(&ext.dir, &ValidateOptions::default()).unwrap(), manifest());
}

#[test]
fn a_pre_release_talos_version_counts_as_its_release() {
    let ext = Extension::valid();
    let options = ValidateOptions { talos_version: Some("v1.10.0-alpha.1"), ..OPTIONS };
    assert_eq!(validate(&ext.dir, &options).unwrap().name, "hello-world");
}

#[test]
fn unexpected_top_level_entries() {
    let ext = Extension::valid();
    ext.file("README.md", "", 0o644);
    ext.mkdir("extra");
    let violations = ext.violations();
    assert_eq!(at(&violations, "README.md")[0].0, Rule::UnexpectedEntry);
    assert_eq!(at(&violations, "extra")[0].0, Rule::UnexpectedEntry);
    assert_eq!(violations.len(), 2);
}

#[test]
fn manifest_and_rootfs_of_the_wrong_type() {
    let ext = Extension::empty();
    ext.mkdir("manifest.yaml");
    ext.file("rootfs", "", 0o644);
    let violations = ext.violations();
    assert_has(&violations, "manifest.yaml", Rule::UnexpectedEntry, "not a regular file");
    assert_has(&violations, "rootfs", Rule::UnexpectedEntry, "not a directory");
}

#[test]
fn missing_manifest_and_rootfs() {
    let ext = Extension::empty();
    let violations = ext.violations();
    assert_has(&violations, "manifest.yaml", Rule::MissingEntry, "manifest is missing");
    assert_has(&violations, "rootfs", Rule::MissingEntry, "rootfs is missing");
}

#[test]
fn malformed_manifest_names_the_line() {
    let ext = Extension::valid();
    ext.file("manifest.yaml", "version: v1alpha1\nmetadata:\n  name: [hello\n", 0o644);
    let violations = ext.violations();
    assert_has(&violations, "manifest.yaml", Rule::Manifest, "line 3");
}

#[test]
fn unsupported_manifest_version() {
    let ext = Extension::valid();
    let text = manifest().to_yaml().replace("v1alpha1", "v1alpha2");
    ext.file("manifest.yaml", &text, 0o644);
    assert_has(&ext.violations(), "manifest.yaml", Rule::Manifest, "unsupported manifest version");
}

#[test]
fn manifest_version_format() {
    let ext = Extension::valid();
    ext.manifest(&Manifest { version: "latest".into(), ..manifest() });
    let violations = ext.violations();
    assert_has(&violations, "manifest.yaml", Rule::Manifest, "\"latest\"");
    assert_eq!(violations.len(), 1);
}

#[test]
fn compatibility_excludes_the_talos_version() {
    let ext = Extension::valid();
    ext.manifest(&Manifest { talos_version: Some(">= v1.11.0".into()), ..manifest() });
    assert_has(&ext.violations(), "manifest.yaml", Rule::Compatibility, "excludes Talos 1.10.3");
    // Without a Talos version only the syntax is checked.
    assert!(validate(&ext.dir, &ValidateOptions::default()).is_ok());
}

#[test]
fn malformed_compatibility_range() {
    let ext = Extension::valid();
    ext.manifest(&Manifest { talos_version: Some(">= v1.10".into()), ..manifest() });
    assert_has(
        &ext.violations_with(&ValidateOptions::default()),
        "manifest.yaml",
        Rule::Compatibility,
        "not a version range",
    );
}

#[test]
fn malformed_talos_version_option_is_an_error() {
    let ext = Extension::valid();
    let options = ValidateOptions { talos_version: Some("latest"), kernel_release: None };
    assert!(matches!(validate(&ext.dir, &options), Err(Error::TalosVersion { .. })));
}

#[test]
fn world_writable_files_and_directories() {
    let ext = Extension::valid();
    ext.chmod("rootfs/usr/local/share/hello/README", 0o646);
    ext.chmod("rootfs/usr/local/share", 0o777);
    let violations = ext.violations();
    assert_has(&violations, "/usr/local/share/hello/README", Rule::WorldWritable, "0646");
    assert_has(&violations, "/usr/local/share", Rule::WorldWritable, "0777");
    assert_eq!(violations.len(), 2, "{violations:#?}");
}

#[test]
fn special_files() {
    let ext = Extension::valid();
    ext.mkdir("rootfs/usr/local/run");
    let socket = ext.path("rootfs/usr/local/run/hello.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = ext.path("rootfs/usr/local/run/pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    fs::set_permissions(&fifo, fs::Permissions::from_mode(0o644)).unwrap();
    let violations = ext.violations();
    assert_has(&violations, "/usr/local/run/hello.sock", Rule::SpecialFile, "socket");
    assert_has(&violations, "/usr/local/run/pipe", Rule::SpecialFile, "FIFO");
    assert_eq!(violations.len(), 2, "{violations:#?}");
}

#[test]
fn disallowed_paths_end_at_a_slash() {
    let ext = Extension::valid();
    ext.file("rootfs/usr/localfoo/bar", "", 0o644);
    ext.file("rootfs/etc/hello.conf", "", 0o644);
    ext.file("rootfs/usr/lib/ld-linux-x86-64.so.2.bak", "", 0o644);
    ext.symlink("rootfs/usr/bin/hello", "/usr/local/bin/hello");
    ext.mkdir("rootfs/opt/empty");
    let violations = ext.violations();
    for path in
        ["/usr/localfoo/bar", "/etc/hello.conf", "/usr/lib/ld-linux-x86-64.so.2.bak", "/usr/bin/hello"]
    {
        assert_eq!(at(&violations, path).len(), 1, "{path}: {violations:#?}");
        assert_has(&violations, path, Rule::DisallowedPath, "/usr/local");
    }
    // Directories are not checked, and nothing else was reported.
    assert_eq!(violations.len(), 4, "{violations:#?}");
}

#[test]
fn usr_merge() {
    let ext = Extension::valid();
    ext.file("rootfs/usr/lib64/a.so", "", 0o644);
    ext.file("rootfs/lib/firmware/fw.bin", "", 0o644);
    ext.file("rootfs/usr/sbin/tool", "", 0o755);
    ext.symlink("rootfs/bin", "usr/bin");
    let violations = ext.violations();
    assert_has(&violations, "/usr/lib64/a.so", Rule::UsrMerge, "use /usr/lib/a.so");
    assert_has(&violations, "/usr/lib64", Rule::UsrMerge, "symlink");
    assert_has(&violations, "/lib", Rule::UsrMerge, "use /usr/lib");
    assert_has(&violations, "/lib/firmware/fw.bin", Rule::UsrMerge, "use /usr/lib/firmware/fw.bin");
    assert_has(&violations, "/usr/sbin/tool", Rule::UsrMerge, "use /usr/bin/tool");
    assert_has(&violations, "/bin", Rule::UsrMerge, "use /usr/bin");
    assert!(violations.iter().all(|v| v.rule == Rule::UsrMerge), "{violations:#?}");
}

#[test]
fn modules_for_another_kernel_release() {
    let ext = Extension::valid();
    fs::remove_dir_all(ext.path("rootfs/usr/lib/modules")).unwrap();
    ext.file("rootfs/usr/lib/modules/6.6.45-talos/extras/hello.ko", "", 0o644);
    ext.file("rootfs/usr/lib/modules/stray.ko", "", 0o644);
    let violations = ext.violations();
    assert_has(&violations, "/usr/lib/modules/6.6.45-talos/extras/hello.ko", Rule::ModuleRelease, KERNEL);
    assert_has(&violations, "/usr/lib/modules/stray.ko", Rule::ModuleRelease, "outside a kernel release");
    assert_has(&violations, "/usr/lib/modules", Rule::ModuleRelease, "has no 6.12.63-talos directory");
    assert_eq!(violations.len(), 3, "{violations:#?}");
}

#[test]
fn service_spec_schema() {
    let ext = Extension::valid();
    ext.service(
        "bad.yaml",
        "name: Bad.Name\ncontainer:\n  environment: [NOEQUALS, =x]\n  mounts:\n    - source: /x\n\
         depends:\n  - service: a\n    time: true\n  - network: [internet]\n  - time: false\n  - path: relative\n\
         restart: sometimes\n",
    );
    let violations = ext.violations();
    let path = "/usr/local/etc/containers/bad.yaml";
    for needle in [
        "name \"Bad.Name\"",
        "\"NOEQUALS\" is not KEY=VALUE",
        "\"=x\" is not KEY=VALUE",
        "mounts[0] has no destination",
        "container.entrypoint is required",
        "depends[0] sets service, time",
        "depends[1].network \"internet\"",
        "depends[2] sets none",
        "depends[3].path \"relative\" is not absolute",
        "restart \"sometimes\"",
    ] {
        assert_has(&violations, path, Rule::Service, needle);
    }
    assert_eq!(violations.len(), 10, "{violations:#?}");
}

#[test]
fn service_spec_unknown_field_names_the_line() {
    let ext = Extension::valid();
    ext.service("extra.yaml", "name: extra\ncontainer:\n  entrypoint: ./x\n  user: root\nrestart: never\n");
    assert_has(&ext.violations(), "/usr/local/etc/containers/extra.yaml", Rule::Service, "line 4");
}

#[test]
fn service_container_rootfs_and_entrypoint() {
    let ext = Extension::valid();
    let spec = |name: &str, entrypoint: &str| {
        format!("name: {name}\ncontainer:\n  entrypoint: {entrypoint}\nrestart: always\n")
    };
    ext.service("a-norootfs.yaml", &spec("norootfs", "./x"));
    ext.service("b-missing.yaml", &spec("missing", "./nothere"));
    ext.file("rootfs/usr/local/lib/containers/missing/other", "", 0o755);
    ext.service("c-noexec.yaml", &spec("noexec", "/bin/run"));
    ext.file("rootfs/usr/local/lib/containers/noexec/bin/run", "", 0o644);
    ext.service("d-dir.yaml", &spec("dir", "./bin"));
    ext.mkdir("rootfs/usr/local/lib/containers/dir/bin");
    ext.service("e-escape.yaml", &spec("escape", "../../../../../../manifest.yaml"));
    ext.mkdir("rootfs/usr/local/lib/containers/escape");
    // Valid: an absolute entrypoint through symlinks, resolved inside the container rootfs,
    // and a bare name found on PATH.
    ext.service("f-link.yaml", &spec("link", "/bin/run"));
    ext.file("rootfs/usr/local/lib/containers/link/usr/bin/busybox", "", 0o755);
    ext.symlink("rootfs/usr/local/lib/containers/link/bin", "usr/bin");
    ext.symlink("rootfs/usr/local/lib/containers/link/usr/bin/run", "/bin/busybox");
    ext.service("g-path.yaml", &spec("onpath", "busybox"));
    ext.file("rootfs/usr/local/lib/containers/onpath/usr/bin/busybox", "", 0o755);
    let violations = ext.violations();
    let path = |file: &str| format!("/usr/local/etc/containers/{file}");
    assert_has(
        &violations,
        &path("a-norootfs.yaml"),
        Rule::Service,
        "/usr/local/lib/containers/norootfs/ is not a directory",
    );
    assert_has(&violations, &path("b-missing.yaml"), Rule::Service, "/nothere does not exist");
    assert_has(&violations, &path("c-noexec.yaml"), Rule::Service, "/bin/run has no execute bit");
    assert_has(&violations, &path("d-dir.yaml"), Rule::Service, "/bin is not a regular file");
    assert_has(&violations, &path("e-escape.yaml"), Rule::Service, "/manifest.yaml does not exist");
    assert_eq!(violations.len(), 5, "{violations:#?}");
}

/// A 64-bit little-endian ELF header with one program header at 64: `PT_INTERP` at `offset`,
/// `size` bytes long, followed by `path`.
fn elf_with_interpreter(offset: u64, size: u64, path: &[u8]) -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let mut header = vec![0u8; 56];
    header[..4].copy_from_slice(&3u32.to_le_bytes());
    header[8..16].copy_from_slice(&offset.to_le_bytes());
    header[32..40].copy_from_slice(&size.to_le_bytes());
    elf.extend(header);
    elf.extend(path);
    elf
}

/// A dynamically linked entrypoint runs only if its ELF interpreter is inside its own container
/// rootfs: Talos (`internal/app/machined/pkg/system/services/extension.go`) makes that directory
/// the container's root, so the extension's or the host's loader is not there.
#[test]
fn a_dynamic_entrypoint_needs_its_interpreter_in_the_container_rootfs() {
    let ext = Extension::valid();
    let spec = |name: &str| format!("name: {name}\ncontainer:\n  entrypoint: ./run\nrestart: always\n");
    let program = |name: &str, bytes: &[u8]| {
        let relative = format!("rootfs/usr/local/lib/containers/{name}/run");
        ext.parent(&relative);
        fs::write(ext.path(&relative), bytes).unwrap();
        fs::set_permissions(ext.path(&relative), fs::Permissions::from_mode(0o755)).unwrap();
        ext.service(&format!("{name}.yaml"), &spec(name));
    };
    let glibc = fs::read("/usr/bin/true").unwrap();
    // Debian's /usr/bin/true, alone; then with the loader it names, reached through /lib64.
    program("alone", &glibc);
    program("carried", &glibc);
    ext.file("rootfs/usr/local/lib/containers/carried/usr/lib/ld-linux-x86-64.so.2", "", 0o755);
    ext.symlink("rootfs/usr/local/lib/containers/carried/lib64", "usr/lib");
    // Or with the loader bound from the host at the path the program names.
    program("mounted", &glibc);
    ext.service(
        "mounted.yaml",
        "name: mounted\ncontainer:\n  entrypoint: ./run\n  mounts:\n    - source: /usr/lib/ld-linux-x86-64.so.2\n      \
         destination: /lib64/ld-linux-x86-64.so.2\n      type: bind\n      options: [bind, ro]\nrestart: always\n",
    );
    // A static program (its one program header a PT_LOAD) needs nothing.
    let mut static_elf = elf_with_interpreter(0, 0, b"");
    static_elf[64..68].copy_from_slice(&1u32.to_le_bytes());
    program("static", &static_elf);
    // Crafted headers: an interpreter path past the end, one too long to be real, one that is
    // a directory.
    program("past-end", &elf_with_interpreter(1 << 40, 16, b""));
    program("huge", &elf_with_interpreter(120, 1 << 40, b"/x\0"));
    program("dir", &elf_with_interpreter(120, 5, b"/etc\0"));
    ext.mkdir("rootfs/usr/local/lib/containers/dir/etc");
    let violations = ext.violations();
    let path = |file: &str| format!("/usr/local/etc/containers/{file}");
    assert_has(
        &violations,
        &path("alone.yaml"),
        Rule::Service,
        "/run needs the ELF interpreter /lib64/ld-linux-x86-64.so.2, which the container rootfs does not have",
    );
    assert_has(&violations, &path("past-end.yaml"), Rule::Service, "needs the ELF interpreter , which");
    assert_has(&violations, &path("dir.yaml"), Rule::Service, "needs the ELF interpreter /etc, which");
    assert_eq!(violations.len(), 3, "{violations:#?}");
}

#[test]
fn duplicate_service_names() {
    let ext = Extension::valid();
    ext.service("zz-again.yaml", SERVICE);
    let violations = ext.violations();
    assert_has(
        &violations,
        "/usr/local/etc/containers/zz-again.yaml",
        Rule::Service,
        "already used by /usr/local/etc/containers/hello-world.yaml",
    );
    assert_eq!(violations.len(), 1);
}

#[test]
fn a_spec_that_is_not_a_file() {
    let ext = Extension::valid();
    ext.symlink("rootfs/usr/local/etc/containers/link.yaml", "hello-world.yaml");
    assert_has(&ext.violations(), "/usr/local/etc/containers/link.yaml", Rule::Service, "symlink");
}

#[test]
fn every_violation_is_reported_and_listed_one_per_line() {
    let ext = Extension::valid();
    ext.file("stray", "", 0o644);
    ext.manifest(&Manifest { talos_version: Some("< v1.0.0".into()), ..manifest() });
    ext.file("rootfs/usr/localfoo", "", 0o666);
    ext.file("rootfs/usr/lib64/a.so", "", 0o644);
    ext.file("rootfs/usr/lib/modules/6.1.0/x.ko", "", 0o644);
    ext.service("broken.yaml", "name: [\n");
    let error = validate(&ext.dir, &OPTIONS).unwrap_err();
    let Error::Invalid { violations, .. } = &error else { panic!("{error}") };
    let found: Vec<(&str, Rule)> = violations.iter().map(|v| (v.path.as_str(), v.rule)).collect();
    assert_eq!(
        found,
        [
            ("stray", Rule::UnexpectedEntry),
            ("manifest.yaml", Rule::Compatibility),
            ("/usr/lib/modules/6.1.0/x.ko", Rule::ModuleRelease),
            ("/usr/lib64", Rule::UsrMerge),
            ("/usr/lib64/a.so", Rule::UsrMerge),
            ("/usr/localfoo", Rule::WorldWritable),
            ("/usr/localfoo", Rule::DisallowedPath),
            ("/usr/local/etc/containers/broken.yaml", Rule::Service),
        ]
    );
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), violations.len() + 1, "{text}");
    assert!(lines[0].contains("is not a valid Talos extension"), "{text}");
    assert!(lines[1].starts_with("  stray: unexpected-entry: "), "{text}");
    assert!(lines[6].starts_with("  /usr/localfoo: world-writable: mode 0666"), "{text}");
}

#[test]
fn results_do_not_depend_on_creation_order() {
    let build = |reverse: bool| {
        let ext = Extension::valid();
        let mut names = vec!["rootfs/usr/b", "rootfs/usr/a", "rootfs/z", "rootfs/usr/share/x"];
        if reverse {
            names.reverse();
        }
        for name in names {
            ext.file(name, "", 0o644);
        }
        ext.violations()
    };
    assert_eq!(build(false), build(true));
}

#[test]
fn manifest_written_then_validated_round_trips() {
    let ext = Extension::valid();
    let tricky = Manifest {
        description: "yes: \"quoted\" # not a comment\n  and a second line ✓".into(),
        author: " leading space".into(),
        extra_info: Some("1.10".into()),
        ..manifest()
    };
    ext.manifest(&tricky);
    assert_eq!(validate(&ext.dir, &OPTIONS).unwrap(), tricky);
    assert_eq!(Manifest::parse(&tricky.to_yaml(), Path::new("m.yaml")).unwrap(), tricky);
}
