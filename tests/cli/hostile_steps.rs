//! Steps whose outputs carry links: kiln reads, writes, signs, indexes and packs what untrusted
//! code made beneath it, and never through a link to the host.
//!
//! The kernel step runs the kernel source's own Makefile; here the "kernel" is a small Makefile
//! that behaves like Kbuild for the targets kiln asks for, and at one chosen moment puts a link
//! to a host file or directory where kiln reads or writes next.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support;

const RELEASE: &str = "6.12.0-hostile";

/// What the fake kernel's Makefile does, besides the targets' ordinary work.
struct Attack {
    /// Shell run at the end of the base-config target (`tinyconfig`), in `/build`.
    after_config: &'static str,
    /// Shell run at the end of `modules_install`, in `/build`.
    after_install: &'static str,
}

/// A host directory the attacks aim at: a secret file, a "module", a directory of its own.
struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Host {
    fn new() -> Host {
        let dir = support::tempdir();
        let root = dir.path().join("host");
        fs::create_dir_all(root.join("modules/kernel")).unwrap();
        fs::write(root.join("secret"), "host secret\n").unwrap();
        fs::write(root.join("modules/kernel/victim.ko"), "a host module\n").unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
        Host { _dir: dir, root }
    }

    /// Every file under the host directory with its content: what must not change.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push((path.clone(), fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }
}

/// A recipe whose kernel is the fake one, with module signatures on.
fn recipe(dir: &Path, host: &Host, attack: &Attack) -> PathBuf {
    let recipe = dir.join("recipe");
    let linux = recipe.join("linux");
    fs::create_dir_all(&linux).unwrap();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/smoke/kernel/signing.seed"),
        recipe.join("signing.seed"),
    )
    .unwrap();
    let host_root = host.root.display();
    let makefile = format!(
        "HOST := {host_root}\n\
         .PHONY: tinyconfig olddefconfig bzImage modules kernelrelease modules_install\n\
         tinyconfig:\n\
         \tmkdir -p $(O)\n\
         \tprintf 'CONFIG_MODULES=y\\nCONFIG_MODULE_SIG=y\\nCONFIG_MODULE_SIG_HASH=\"sha512\"\\n' >$(O)/.config\n\
         \tcd /build && {after_config}\n\
         olddefconfig:\n\
         \t@true\n\
         bzImage:\n\
         \tmkdir -p $(O)/arch/x86/boot && echo kernel >$(O)/arch/x86/boot/bzImage\n\
         modules:\n\
         \techo '0x00000000\tprintk\tvmlinux\tEXPORT_SYMBOL\t' >$(O)/Module.symvers\n\
         kernelrelease:\n\
         \t@echo {RELEASE}\n\
         modules_install:\n\
         \tmkdir -p $(INSTALL_MOD_PATH)/lib/modules/{RELEASE}/kernel\n\
         \tcd /build && {after_install}\n",
        after_config = attack.after_config,
        after_install = attack.after_install,
    );
    fs::write(linux.join("Makefile"), makefile).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        r#"[recipe]
name = "hostile"
source-date-epoch = 1735689600

[sources.linux]
path = "linux"

[kernel]
source = "linux"
base-target = "tinyconfig"
signing-seed = "signing.seed"

[images."kernel:v1"]
from = "kernel"
path = "image"
"#,
    )
    .unwrap();
    recipe
}

fn build(recipe: &Path, work: &Path) -> Output {
    support::run(
        support::kiln()
            .env("KILN_CACHE", work.join("cache"))
            .arg("build")
            .arg(recipe)
            .arg("--out")
            .arg(work.join("out")),
    )
}

/// Runs the attack; the build must fail naming a link, and the host must not change.
fn refused(attack: &Attack, expected: &str) {
    if !support::require_tool("make") {
        return;
    }
    let work = support::tempdir();
    let host = Host::new();
    let before = host.snapshot();
    let recipe = recipe(work.path(), &host, attack);
    let output = build(&recipe, work.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(expected), "expected {expected:?}:\n{stderr}");
    assert!(!stderr.contains("host secret"), "the host's file leaked into the error: {stderr}");
    assert_eq!(host.snapshot(), before, "a host file changed");
    assert!(!work.path().join("out").exists());
}

/// The fake kernel without an attack builds: each attack below fails where it attacks.
#[test]
fn the_fake_kernel_builds_when_it_does_not_attack() {
    if !support::require_tool("make") {
        return;
    }
    let work = support::tempdir();
    let host = Host::new();
    let recipe = recipe(work.path(), &host, &Attack { after_config: "true", after_install: "true" });
    let output = build(&recipe, work.path());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_kernel_build_that_links_its_config_to_a_host_file_is_refused() {
    refused(
        &Attack { after_config: "rm obj/.config && ln -s $(HOST)/secret obj/.config", after_install: "true" },
        "obj/.config goes through a symbolic link",
    );
}

#[test]
fn a_kernel_build_that_links_its_build_directory_out_is_refused() {
    refused(
        &Attack {
            after_config: "cp obj/.config .config && rm -r obj && ln -s $(HOST) obj",
            after_install: "true",
        },
        "goes through a symbolic link",
    );
}

#[test]
fn the_certificate_kiln_writes_replaces_a_link_instead_of_writing_through_it() {
    if !support::require_tool("make") {
        return;
    }
    // The link is where kiln puts the recipe's certificate: kiln replaces it, the host file stays;
    // then the module directory is a link to a host directory, which kiln must not sign or index.
    let attack = Attack {
        after_config: "ln -s $(HOST)/secret kiln-signing-cert.pem",
        after_install: "rm -r /out/image/usr/lib/modules/6.12.0-hostile && ln -s $(HOST)/modules /out/image/usr/lib/modules/6.12.0-hostile",
    };
    refused(&attack, "usr/lib/modules/6.12.0-hostile goes through a symbolic link");
}

#[test]
fn a_kernel_build_that_links_its_symbols_or_release_out_is_refused() {
    refused(
        &Attack {
            after_config: "true",
            after_install: "rm -f obj/Module.symvers; ln -s $(HOST)/secret obj/Module.symvers",
        },
        "build/Module.symvers goes through a symbolic link",
    );
}

/// A kernel whose requested value does not stick: kiln evaluates its Kconfig to explain why,
/// and the Kconfig's `$(shell,…)` commands run in the sandbox, not on the host, and its `source`
/// statements reach no file outside the tree.
#[test]
fn the_kconfig_of_a_kernel_source_runs_no_command_on_the_host() {
    if !support::require_tool("make") {
        return;
    }
    let work = support::tempdir();
    let host = Host::new();
    let marker = host.root.join("probe-ran-here");
    let recipe = recipe(work.path(), &host, &Attack { after_config: "true", after_install: "true" });
    let linux = recipe.join("linux");
    // A Makefile with a version (kiln reads it), whose olddefconfig drops what was asked.
    let makefile = fs::read_to_string(linux.join("Makefile")).unwrap();
    let makefile = format!("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION =\n{makefile}").replace(
        "olddefconfig:\n\t@true",
        "olddefconfig:\n\tgrep -v WANTED $(O)/.config >$(O)/.config.new; mv $(O)/.config.new $(O)/.config",
    );
    fs::write(linux.join("Makefile"), makefile).unwrap();
    let kconfig = |source: &str| {
        format!(
            "config PROBED\n\tdef_bool $(shell,echo escaped >{} 2>/dev/null; echo y)\n\
             config WANTED\n\tbool \"wanted\"\n\tdepends on NOTHING\n{source}",
            marker.display()
        )
    };
    fs::write(linux.join("Kconfig"), kconfig("")).unwrap();
    fs::write(recipe.join("wanted.config"), "CONFIG_WANTED=y\n").unwrap();
    let toml = fs::read_to_string(recipe.join("kiln.toml")).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        toml.replace(
            "base-target = \"tinyconfig\"",
            "base-target = \"tinyconfig\"\nfragments = [\"wanted.config\"]",
        ),
    )
    .unwrap();

    let output = build(&recipe, work.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("CONFIG_WANTED") && stderr.contains("did not stick"), "{stderr}");
    assert!(stderr.contains("WANTED is defined here (Kconfig:3)"), "the explanation is there: {stderr}");
    assert!(!marker.exists(), "the Kconfig's command ran on the host");

    // A `source` of a host file: the explanation says the tree cannot be read, nothing more.
    fs::write(
        linux.join("Kconfig"),
        kconfig(&format!("source \"{}\"\n", host.root.join("secret").display())),
    )
    .unwrap();
    let output = build(&recipe, work.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is outside the source tree"), "{stderr}");
    assert!(!stderr.contains("host secret"), "{stderr}");
    assert!(!marker.exists());
}

/// An image whose path goes through a link the step made, or leaves the output: refused.
#[test]
fn image_paths_through_links_or_out_of_the_output_are_refused() {
    let work = support::tempdir();
    let host = Host::new();
    let recipe = work.path().join("recipe");
    fs::create_dir_all(&recipe).unwrap();
    let write = |path: &str| {
        fs::write(
            recipe.join("kiln.toml"),
            format!(
                "[recipe]\nname = \"links\"\n\n[steps.made]\nscript = \"mkdir -p /out/usr && ln -s {} /out/usr/root && ln -s / /out/top\"\n\n[images.\"leak:v1\"]\nfrom = \"made\"\npath = \"{path}\"\n",
                host.root.display()
            ),
        )
        .unwrap();
    };
    for (path, expected, code) in [
        ("usr/root", "goes through a symbolic link", 3),
        ("top/etc", "goes through a symbolic link", 3),
        ("usr/../../x", "is not a relative path inside the step's output", 3),
        ("/etc", "is not a relative path inside the step's output", 3),
    ] {
        write(path);
        let output = build(&recipe, work.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{path}: {stderr}");
        assert!(stderr.contains(expected), "{path}: {stderr}");
        assert!(!work.path().join("out").exists(), "{path}");
    }
}
