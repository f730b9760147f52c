//! Talos assembly on the smoke recipe: extension images checked against Talos's rules and the
//! kernel, the initramfs with the extension layers appended, the UKI, the installer image — and
//! the whole chain booted under QEMU + OVMF, the guest reporting what it sees from the layers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support;

pub(crate) fn can_build() -> bool {
    support::require_file("/usr/src/linux-source-6.12.tar.xz")
        && support::require_file("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")
        && support::require_tool("musl-gcc")
        && support::require_tool("unsquashfs")
        && support::require_tool("cpio")
        && support::require_tool("objdump")
        && support::require_tool("skopeo")
}

/// Builds the smoke recipe into `out` (the kernel from the shared cache) and returns the
/// output directory of each step by name.
fn build_smoke(out: &Path) -> std::collections::BTreeMap<String, PathBuf> {
    step_outputs(&support::build_smoke(out))
}

/// Each step's output directory in the shared cache, by name, from `kiln build --json`'s report.
fn step_outputs(built: &Value) -> std::collections::BTreeMap<String, PathBuf> {
    built["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            let key = step["key"].as_str().unwrap();
            (
                step["step"].as_str().unwrap().to_owned(),
                support::shared_cache().join("steps").join(key).join("out"),
            )
        })
        .collect()
}

/// The recipe's own arguments (`[talos] cmdline`).
const EXTRA: &str =
    "console=ttyS0 panic=-1 hugepagesz=1G hugepages=0 hugepagesz=2M hugepages=64 kiln.smoke=talos";

/// The UKI's: the metal platform's and Talos's defaults (`pkg/machinery/kernel/kernel.go`
/// `DefaultArgs`), the platform's console replaced by the recipe's, then the recipe's.
const CMDLINE: &str = "talos.platform=metal init_on_alloc=1 slab_nomerge pti=on consoleblank=0 \
    nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 \
    selinux=1 console=ttyS0 panic=-1 hugepagesz=1G hugepages=0 hugepagesz=2M hugepages=64 kiln.smoke=talos";

#[test]
fn the_smoke_recipe_assembles_talos_boot_assets() {
    if !can_build() {
        return;
    }
    let work = support::tempdir();
    let out = work.path().join("out");
    let steps = build_smoke(&out);
    let talos = &steps["talos"];
    let release = fs::read_to_string(steps["kernel"].join("kernelrelease")).unwrap().trim().to_owned();

    // Extensions: manifest.yaml + rootfs/, modules under the kernel's release.
    let optimizer = &steps["validator"];
    let manifest = fs::read_to_string(optimizer.join("manifest.yaml")).unwrap();
    assert!(manifest.starts_with("version: v1alpha1\n"), "{manifest}");
    assert!(manifest.contains("name: solana-optimizer"), "{manifest}");
    let mut top: Vec<String> =
        fs::read_dir(optimizer).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, ["manifest.yaml", "rootfs"]);
    let module = optimizer.join("rootfs/usr/lib/modules").join(&release).join("extras/solana-optimizer.ko");
    assert!(module.is_file(), "{}", module.display());
    assert!(optimizer.join("rootfs/usr/lib/ld-linux-x86-64.so.2").is_file());

    // The initramfs: the base bytes unchanged, then one zstd archive of the layers.
    let base = fs::read(steps["base-initramfs"].join("initramfs.zst")).unwrap();
    let initramfs = fs::read(talos.join("initramfs.xz")).unwrap();
    assert!(initramfs.len() > base.len() && initramfs[..base.len()] == base[..], "base bytes changed");
    let appended = work.path().join("appended.cpio.zst");
    fs::write(&appended, &initramfs[base.len()..]).unwrap();
    let cpio = support::ok_bytes(Command::new("zstd").args(["-d", "-c"]).arg(&appended));
    let unpacked = work.path().join("appended");
    fs::create_dir(&unpacked).unwrap();
    let mut extract = Command::new("cpio");
    extract.args(["-i", "--quiet", "--no-absolute-filenames"]).current_dir(&unpacked);
    let mut child = extract.stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &cpio).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let mut names: Vec<String> =
        fs::read_dir(&unpacked).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["0.sqsh", "1.sqsh", "2.sqsh", "extensions.yaml", "modules.dep.sqsh"]);
    let listing = |name: &str| support::ok(Command::new("unsquashfs").arg("-lln").arg(unpacked.join(name)));
    let kernel_layer = listing("0.sqsh");
    assert!(
        kernel_layer
            .contains(&format!("/usr/lib/modules/{release}/kernel/drivers/net/ethernet/intel/igb/igb.ko")),
        "{kernel_layer}"
    );
    assert!(!kernel_layer.contains("modules.dep"), "the kernel layer holds no index:\n{kernel_layer}");
    for line in kernel_layer.lines().filter(|l| l.starts_with(['-', 'd', 'l'])) {
        assert!(line.contains(" 0/0 "), "not root's: {line}");
    }
    let optimizer_layer = listing("2.sqsh");
    assert!(optimizer_layer.contains("extras/solana-optimizer.ko"), "{optimizer_layer}");
    assert!(optimizer_layer.contains("/usr/lib/ld-linux-x86-64.so.2"), "{optimizer_layer}");
    let index = work.path().join("modules-dep");
    support::ok(Command::new("unsquashfs").arg("-d").arg(&index).arg(unpacked.join("modules.dep.sqsh")));
    let index_dir = index.join("usr/lib/modules").join(&release);
    let dep = fs::read_to_string(index_dir.join("modules.dep")).unwrap();
    assert!(dep.contains("extras/solana-optimizer.ko:"), "{dep}");
    // Every modules.* file of the kernel's module directory, as Talos's imager moves them there
    // (pmorjan/kmod's Load opens modules.alias and modules.builtin and fails without them).
    for name in
        ["modules.builtin", "modules.builtin.modinfo", "modules.order", "modules.alias", "modules.dep.bin"]
    {
        assert!(index_dir.join(name).is_file(), "{name} is not in the modules.dep layer");
    }
    assert!(dep.contains("kernel/drivers/net/ethernet/intel/igb/igb.ko:"), "{dep}");
    let config = fs::read_to_string(unpacked.join("extensions.yaml")).unwrap();
    let order: Vec<&str> = config.lines().filter_map(|l| l.trim().strip_prefix("- image: ")).collect();
    assert_eq!(order, ["0.sqsh", "1.sqsh", "2.sqsh", "modules.dep.sqsh"], "{config}");
    assert!(config.contains("kiln-smoke") && config.contains("Talos Machinery"), "{config}");

    // The UKI: systemd-stub's sections, then ours in order, the recipe's command line exactly.
    let uki = talos.join("installer/usr/install/amd64/vmlinuz.efi");
    let headers = support::ok(Command::new("objdump").arg("-h").arg(&uki));
    let sections: Vec<&str> =
        headers.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|s| s.starts_with('.')).collect();
    let ours: Vec<&str> = sections
        .iter()
        .copied()
        .filter(|s| [".osrel", ".cmdline", ".uname", ".linux", ".initrd"].contains(s))
        .collect();
    assert_eq!(ours, [".osrel", ".cmdline", ".uname", ".linux", ".initrd"], "{headers}");
    let dumped = work.path().join("cmdline");
    support::ok(
        Command::new("objcopy")
            .arg(format!("--dump-section=.cmdline={}", dumped.display()))
            .arg(&uki)
            .arg(work.path().join("uki-copy")),
    );
    assert_eq!(fs::read_to_string(&dumped).unwrap(), CMDLINE);
    assert_eq!(fs::read_to_string(talos.join("cmdline")).unwrap().trim_end(), CMDLINE);

    // The installer image: the base's layer, then one with the UKI and systemd-boot; the base's
    // entrypoint; created at the epoch.
    let inspect = support::ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:installer:smoke", out.display())),
    );
    let config: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2, "{inspect}");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/usr/bin/installer"]), "{inspect}");
    assert_eq!(config["created"], "2025-01-01T00:00:00Z", "{inspect}");
    let bundle = work.path().join("bundle");
    support::ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:installer:smoke", out.display()))
            .arg(&bundle),
    );
    let installed = bundle.join("rootfs/usr/install/amd64");
    assert_eq!(fs::read(installed.join("vmlinuz.efi")).unwrap(), fs::read(&uki).unwrap());
    assert!(installed.join("systemd-boot.efi").is_file());
    assert!(bundle.join("rootfs/usr/bin/installer").is_file(), "the base layer is there");

    // The machine-config patch pins the installer by the digest it has in the layout.
    let recipe = support::smoke_recipe();
    let machine_config = |extra: &[&str]| {
        support::run(
            support::kiln()
                .arg("machine-config")
                .arg(&recipe)
                .arg("--out")
                .arg(&out)
                .args(["--registry", "ghcr.io/example"])
                .args(extra),
        )
    };
    let output = machine_config(&["--install-disk", "/dev/nvme0n1", "--machine-type", "worker"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let patch = String::from_utf8(output.stdout).unwrap();
    let digest = support::manifest_digest(&out, "installer:smoke");
    // Read back by a YAML parser (PyYAML, which spdx-tools brings into /opt/kiln-venv).
    let patch_file = work.path().join("patch.yaml");
    fs::write(&patch_file, &patch).unwrap();
    let parsed: Value = serde_json::from_str(&support::ok(
        Command::new("/opt/kiln-venv/bin/python")
            .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
            .arg(&patch_file),
    ))
    .unwrap();
    let machine = &parsed["machine"];
    assert_eq!(machine["type"], "worker", "{patch}");
    assert_eq!(machine["install"]["disk"], "/dev/nvme0n1", "{patch}");
    assert_eq!(machine["install"]["image"], format!("ghcr.io/example/installer:smoke@{digest}"), "{patch}");
    // GRUB nodes build their command line from extraKernelArgs: the recipe's own arguments.
    let extra: Vec<&str> = machine["install"]["extraKernelArgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(extra, EXTRA.split_whitespace().collect::<Vec<_>>(), "{patch}");
    assert_eq!(machine["kernel"]["modules"][0]["name"], "solana-optimizer", "{patch}");
    assert_eq!(machine["sysctls"]["vm.max_map_count"], "1048576", "{patch}");
    let kubelet = &machine["kubelet"]["extraConfig"];
    assert_eq!(kubelet["cpuManagerPolicy"], "static", "{patch}");
    assert_eq!(kubelet["reservedSystemCPUs"], "0", "{patch}");
    assert_eq!(kubelet["topologyManagerPolicy"], "single-numa-node", "{patch}");
    assert!(kubelet.get("topologyManagerScope").is_none(), "{patch}");
    assert!(patch.contains(&format!("systemd-boot boots the UKI's, {CMDLINE:?}")), "{patch}");
    // Without the options, neither is written; a disk that is not a device is refused.
    let output = machine_config(&[]);
    let plain = String::from_utf8_lossy(&output.stdout);
    assert!(!plain.contains("disk:") && !plain.contains("type:"), "{plain}");
    let output = machine_config(&["--install-disk", "nvme0n1"]);
    assert_eq!(output.status.code(), Some(3), "{}", String::from_utf8_lossy(&output.stderr));
}

/// What the guest reports from the overlay root the base initramfs's init builds of the layers.
const BOOT_REPORT: &[&str] = &[
    "kspp: ok: sysctls written, slab_nomerge and pti=on on the command line",
    "layers: 4: 0.sqsh 1.sqsh 2.sqsh modules.dep.sqsh",
    "extensions: kernel-modules kiln-smoke solana-optimizer modules.dep",
    "hugepages: 64",
    "hugepages-1g: 0",
    "numa-nodes: 2",
    "io_uring: io_uring: nop completed",
    "glibc: hello from glibc, 2 argument(s), argv[0] /usr/local/bin/hello-glibc",
    "sig-enforce: Y",
    "unsigned-module: refused",
    "optimizer: loaded, 2 NUMA nodes",
    "machine-sysctls: written",
    // Extension services, each in its own container rootfs; the glibc one through the loader,
    // compatibility library and musl its rootfs carries, reading the host's /proc it binds.
    "service kiln-glibc: hello from glibc, 1 argument(s), argv[0] ./hello-glibc | \
     /host/proc/sys/kernel/osrelease: 6.12.",
    "service kiln-greeter: hello, service, from a kiln-built library (exit 0)",
    "sriov-vfs: 2",
    "done: ok",
];

#[test]
fn the_smoke_installer_boots_under_uefi_through_its_extension_layers() {
    if !can_build()
        || !support::require_tool("qemu-system-x86_64")
        || !support::require_file("/usr/share/OVMF/OVMF_CODE_4M.fd")
    {
        return;
    }
    let work = support::tempdir();
    let out = work.path().join("out");
    build_smoke(&out);
    let output = support::run(support::kiln().arg("boot").arg(&out).args([
        "--image",
        "installer:smoke",
        "--igb",
        "--timeout",
        "240",
        "--until",
        "kiln-smoke: done:",
    ]));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    let reported: Vec<&str> =
        text.lines().filter_map(|l| l.split_once("kiln-smoke: ").map(|(_, r)| r)).collect();
    // The command line exactly as the recipe orders it: systemd-boot and the stub add nothing.
    assert!(support::guest_reported(&reported, &format!("cmdline: {CMDLINE}")), "{}", reported.join("\n"));
    for expected in BOOT_REPORT {
        assert!(
            support::guest_reported(&reported, expected),
            "the guest did not report {expected:?}:\n{}",
            reported.join("\n")
        );
    }
    assert!(reported.iter().filter(|l| l.starts_with("sriov-vf: ")).count() == 2, "{}", reported.join("\n"));
}

/// A recipe with one extension made of `files` (relative path → content, mode).
fn extension_recipe(dir: &Path, files: &[(&str, &str, u32)]) -> PathBuf {
    let recipe = dir.join("recipe");
    for (path, content, mode) in files {
        let file = recipe.join("files").join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, content).unwrap();
        fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(*mode)).unwrap();
    }
    fs::write(
        recipe.join("kiln.toml"),
        "[recipe]\nname = \"ext\"\n\n[sources.files]\npath = \"files\"\n\n\
         [extensions.tools]\nversion = \"1.0.0\"\nauthor = \"kiln\"\ndescription = \"tools\"\n\
         talos-version = \">= v1.10.0\"\nrootfs = [\"files\"]\n\n[images.\"tools:v1\"]\nfrom = \"tools\"\n",
    )
    .unwrap();
    recipe
}

#[test]
fn an_extension_breaking_talos_rules_fails_the_build_naming_each_path() {
    let work = support::tempdir();
    let recipe = extension_recipe(
        work.path(),
        &[
            ("usr/local/bin/tool", "#!/bin/sh\n", 0o755),
            ("etc/passwd", "root:x:0:0::/:/bin/sh\n", 0o644),
            ("usr/localfoo/x", "x", 0o644),
            ("usr/sbin/tool", "x", 0o755),
        ],
    );
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", work.path().join("cache"))
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(work.path().join("out")),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    for path in ["/etc/passwd", "/usr/localfoo/x", "/usr/sbin/tool"] {
        assert!(stderr.contains(path), "{path} not named:\n{stderr}");
    }
    assert!(!stderr.contains("/usr/local/bin/tool"), "an allowed file was reported:\n{stderr}");
    assert!(!work.path().join("out").exists(), "nothing is written");
}

#[test]
fn a_valid_extension_builds_into_manifest_and_rootfs() {
    let work = support::tempdir();
    let recipe = extension_recipe(work.path(), &[("usr/local/bin/tool", "#!/bin/sh\necho tool\n", 0o755)]);
    let out = work.path().join("out");
    support::ok(
        support::kiln()
            .env("KILN_CACHE", work.path().join("cache"))
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(&out),
    );
    let bundle = work.path().join("bundle");
    support::ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:tools:v1", out.display()))
            .arg(&bundle),
    );
    let manifest = fs::read_to_string(bundle.join("rootfs/manifest.yaml")).unwrap();
    assert!(manifest.contains("name: tools") && manifest.contains(">= v1.10.0"), "{manifest}");
    assert!(bundle.join("rootfs/rootfs/usr/local/bin/tool").is_file());
}

/// The machine config's modules load as Talos loads them (pmorjan/kmod), which needs the module
/// index layer's `modules.builtin`: the same boot with that file deleted from the layer fails to
/// load the optimizer, as a node would.
#[test]
fn a_module_index_without_modules_builtin_fails_to_load_the_machine_configs_module() {
    if !can_build()
        || !support::require_tool("qemu-system-x86_64")
        || !support::require_tool("zstd")
        || !support::require_tool("mksquashfs")
    {
        return;
    }
    let work = support::tempdir();
    let out = work.path().join("out");
    let steps = build_smoke(&out);
    let release = fs::read_to_string(steps["kernel"].join("kernelrelease")).unwrap().trim().to_owned();
    // The talos initramfs is the base's bytes, then the appended archive of the layers.
    let initramfs = fs::read(steps["talos"].join("initramfs.xz")).unwrap();
    let base_len = fs::metadata(steps["base-initramfs"].join("initramfs.zst")).unwrap().len() as usize;
    let appended = work.path().join("appended");
    fs::create_dir(&appended).unwrap();
    fs::write(work.path().join("appended.cpio.zst"), &initramfs[base_len..]).unwrap();
    support::ok(Command::new("sh").arg("-c").arg(format!(
        "zstd -dc {}/appended.cpio.zst | (cd {} && cpio -i --quiet)",
        work.path().display(),
        appended.display()
    )));
    let index = work.path().join("index");
    support::ok(Command::new("unsquashfs").arg("-d").arg(&index).arg(appended.join("modules.dep.sqsh")));
    let builtin = index.join("usr/lib/modules").join(&release).join("modules.builtin");
    assert!(builtin.is_file());
    fs::remove_file(&builtin).unwrap();
    let replaced = work.path().join("replaced");
    fs::create_dir(&replaced).unwrap();
    support::ok(Command::new("mksquashfs").arg(&index).arg(replaced.join("modules.dep.sqsh")).args([
        "-all-root",
        "-noappend",
        "-no-progress",
        "-quiet",
        "-comp",
        "zstd",
    ]));
    // A later archive's file replaces an earlier one's as the kernel unpacks them.
    let archive = support::ok_bytes(
        Command::new("sh")
            .arg("-c")
            .arg("echo modules.dep.sqsh | cpio -o -H newc --quiet | zstd -q -c")
            .current_dir(&replaced),
    );
    let broken = work.path().join("initramfs-without-builtin");
    fs::write(&broken, [initramfs, archive].concat()).unwrap();
    let output = support::run(
        support::kiln()
            .arg("boot")
            .arg(&out)
            .args(["--image", "kernel:smoke", "--initrd"])
            .arg(&broken)
            .args(["--cmdline", CMDLINE, "--timeout", "240", "--until", "kiln-smoke: done:"]),
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let reported: Vec<&str> =
        text.lines().filter_map(|l| l.split_once("kiln-smoke: ").map(|(_, r)| r)).collect();
    let expected = format!(
        "optimizer: not loaded: check builtin solana_optimizer failed: open /lib/modules/{release}/modules.builtin: no such file"
    );
    assert!(support::guest_reported(&reported, &expected), "{}", reported.join("\n"));
}

/// `kiln build --json` of `recipe` with the shared cache: each step's output directory by name.
fn build_recipe(recipe: &Path, out: &Path) -> Result<std::collections::BTreeMap<String, PathBuf>, String> {
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .arg("build")
            .arg(recipe)
            .arg("--out")
            .arg(out)
            .arg("--json"),
    );
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(step_outputs(&serde_json::from_slice(&output.stdout).unwrap()))
}

/// Firmware and early microcode as Talos v1.10.3's imager handles an extension's
/// `/usr/lib/firmware` (`internal/pkg/extensions/compress.go`: `handleUcode` concatenates
/// `intel-ucode/*` and `amd-ucode/microcode_amd*.bin` into `kernel/x86/microcode/*.bin`, then
/// the rest of the firmware moves out of the squashfs into the initramfs;
/// `pkg/imager/extensions/rebuild.go`: the microcode in an uncompressed newc archive written by
/// GNU cpio, 512-byte blocks, prepended, where the kernel's early loader looks). The layout is
/// read back with GNU cpio, and the installer still boots through it.
#[test]
fn extension_firmware_moves_into_the_initramfs_and_microcode_into_an_early_archive_first() {
    if !can_build() || !support::require_tool("qemu-system-x86_64") || !support::require_tool("zstd") {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    let firmware = recipe.join("extension/usr/lib/firmware");
    let blobs: [(&str, Vec<u8>); 5] = [
        ("amd-ucode/microcode_amd.bin", b"AMD-FAMILY-17H..".repeat(4)),
        ("amd-ucode/microcode_amd_fam19h.bin", b"AMD-FAMILY-19H..".repeat(8)),
        ("amd-ucode/README", b"not microcode\n".to_vec()),
        ("intel-ucode/06-55-04", b"INTEL-06-55-04..".repeat(2)),
        ("kiln/test.fw", b"firmware for a device\n".to_vec()),
    ];
    for (path, bytes) in &blobs {
        fs::create_dir_all(firmware.join(path).parent().unwrap()).unwrap();
        fs::write(firmware.join(path), bytes).unwrap();
    }
    let out = work.path().join("out");
    let steps = build_recipe(&recipe, &out).unwrap();
    let initramfs_path = steps["talos"].join("initramfs.xz");
    let initramfs = fs::read(&initramfs_path).unwrap();
    assert_eq!(&initramfs[..6], b"070701", "an uncompressed newc archive comes first");
    let cpio = |args: &[&str]| {
        support::ok_bytes(Command::new("cpio").args(args).stdin(fs::File::open(&initramfs_path).unwrap()))
    };
    let listing = String::from_utf8(cpio(&["-t", "--quiet"])).unwrap();
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        [
            "kernel",
            "kernel/x86",
            "kernel/x86/microcode",
            "kernel/x86/microcode/AuthenticAMD.bin",
            "kernel/x86/microcode/GenuineIntel.bin"
        ]
    );
    let amd = cpio(&["-i", "--quiet", "--to-stdout", "kernel/x86/microcode/AuthenticAMD.bin"]);
    assert_eq!(amd, [blobs[0].1.clone(), blobs[1].1.clone()].concat(), "the AMD blobs in name order");
    let intel = cpio(&["-i", "--quiet", "--to-stdout", "kernel/x86/microcode/GenuineIntel.bin"]);
    assert_eq!(intel, blobs[3].1);
    // Then the base initramfs, unchanged, at the next 512-byte block, then the appended archive.
    let base = fs::read(steps["base-initramfs"].join("initramfs.zst")).unwrap();
    let trailer = initramfs.windows(10).position(|w| w == b"TRAILER!!!").unwrap();
    let early = (trailer + 11).next_multiple_of(4).next_multiple_of(512);
    assert!(initramfs[trailer + 10..early].iter().all(|b| *b == 0));
    assert_eq!(&initramfs[early..early + base.len()], base.as_slice());
    let appended = work.path().join("appended");
    fs::create_dir(&appended).unwrap();
    fs::write(work.path().join("appended.cpio.zst"), &initramfs[early + base.len()..]).unwrap();
    support::ok(Command::new("sh").arg("-c").arg(format!(
        "zstd -dc {}/appended.cpio.zst | (cd {} && cpio -i -d --quiet)",
        work.path().display(),
        appended.display()
    )));
    assert_eq!(fs::read(appended.join("usr/lib/firmware/kiln/test.fw")).unwrap(), blobs[4].1);
    assert_eq!(fs::read(appended.join("usr/lib/firmware/amd-ucode/README")).unwrap(), blobs[2].1);
    assert!(!appended.join("usr/lib/firmware/amd-ucode/microcode_amd.bin").exists());
    assert!(!appended.join("usr/lib/firmware/intel-ucode/06-55-04").exists());
    let layer = String::from_utf8(support::ok_bytes(
        Command::new("unsquashfs").arg("-l").arg(appended.join("1.sqsh")),
    ))
    .unwrap();
    assert!(layer.contains("usr/local/bin/kiln-greet"), "{layer}");
    assert!(!layer.contains("firmware"), "the firmware left the extension's layer:\n{layer}");

    // The kernel unpacks the three archives and the installer boots as before.
    let output = support::run(support::kiln().arg("boot").arg(&out).args([
        "--image",
        "installer:smoke",
        "--timeout",
        "240",
        "--until",
        "kiln-smoke: done:",
    ]));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success() && text.contains("kiln-smoke: done: ok"), "{text}");

    // A link where microcode is looked for is not followed.
    fs::remove_dir_all(firmware.join("amd-ucode")).unwrap();
    std::os::unix::fs::symlink("/etc", firmware.join("amd-ucode")).unwrap();
    let refused = build_recipe(&recipe, &work.path().join("out-link")).unwrap_err();
    assert!(refused.contains("usr/lib/firmware/amd-ucode is not a directory"), "{refused}");
}

/// Debian 13's systemd-boot-efi (systemd 257, whose stub reads UKI profiles, as the 257.5 stub of
/// Talos 1.10's imager does), downloaded, not installed, by scripts/install-deps.
const SYSTEMD_257_DEB: &str = "/var/cache/kiln-fixtures/systemd-boot-efi-257.deb";

/// The smoke recipe copied into `dir`, its stub and systemd-boot taken from [`SYSTEMD_257_DEB`],
/// and `extra` added to `[talos]`.
fn recipe_with_systemd_257(dir: &Path, extra: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let recipe = support::smoke_recipe_copy(dir);
    let manifest = recipe.join("kiln.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let sum = support::sha256_file(Path::new(SYSTEMD_257_DEB));
    let efi = "systemd-257/usr/lib/systemd/boot/efi";
    let text = text
        .replace(
            "[talos]\n",
            &format!(
                "[sources.systemd-257]\npath = \"{SYSTEMD_257_DEB}\"\nsha256 = \"{}\"\nunpack = true\n\n[talos]\n{extra}",
                &sum["sha256:".len()..]
            ),
        )
        .replace("stub = \"systemd-stub\"", &format!("stub = \"{efi}/linuxx64.efi.stub\""))
        .replace("systemd-boot = \"systemd-boot\"", &format!("systemd-boot = \"{efi}/systemd-bootx64.efi\""));
    fs::write(&manifest, text).unwrap();
    recipe
}

/// A PE image's sections as binutils reads them: name and bytes (trailing zero padding dropped),
/// in section-table order.
fn pe_sections(image: &Path) -> Vec<(String, Vec<u8>)> {
    let headers = String::from_utf8(support::ok_bytes(Command::new("objdump").arg("-h").arg(image))).unwrap();
    let bytes = fs::read(image).unwrap();
    headers
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[0].parse::<u32>().is_err() {
                return None;
            }
            let size = usize::from_str_radix(fields[2], 16).unwrap();
            let offset = usize::from_str_radix(fields[5], 16).unwrap();
            let mut data = bytes[offset..offset + size].to_vec();
            while data.last() == Some(&0) {
                data.pop();
            }
            Some((fields[1].to_owned(), data))
        })
        .collect()
}

/// The UKI's profiles as Talos v1.10.3 writes them (`internal/pkg/uki/generate.go`,
/// `generateProfiles`; `pkg/imager/imager.go`, the installer's `reset-maintenance` profile):
/// after `.initrd`, `.profile` `ID=main`, `.profile` `ID=reset-maintenance` and its `.cmdline`
/// with the wipe argument; the stub's own `.sbat` kept. systemd-boot 257 boots the main profile
/// by default and the reset profile when chosen, and the guest sees each one's command line. A
/// stub older than 257 gets no profiles unless asked, and asking is refused.
#[test]
fn uki_profiles_as_talos_writes_them_boot_under_systemd_257_and_an_older_stub_is_refused() {
    if !can_build()
        || !support::require_file(SYSTEMD_257_DEB)
        || !support::require_tool("dpkg-deb")
        || !support::require_tool("qemu-system-x86_64")
    {
        return;
    }
    let work = support::tempdir();
    let recipe = recipe_with_systemd_257(work.path(), "");
    let out = work.path().join("out");
    let steps = build_recipe(&recipe, &out).unwrap();
    let uki = steps["talos"].join("installer/usr/install/amd64/vmlinuz.efi");
    let stub = work.path().join("stub.efi");
    support::ok(Command::new("sh").arg("-c").arg(format!(
        "dpkg-deb --fsys-tarfile {SYSTEMD_257_DEB} | tar -xO ./usr/lib/systemd/boot/efi/linuxx64.efi.stub > {}",
        stub.display()
    )));
    let stub_sections = pe_sections(&stub);
    let sections = pe_sections(&uki);
    // The stub's sections first, unchanged (its .sbat among them), then Talos's, in its order.
    for ((name, data), (stub_name, stub_data)) in sections.iter().zip(&stub_sections) {
        assert_eq!(name, stub_name);
        if name == ".sbat" {
            assert_eq!(data, stub_data, "the stub's .sbat is kept");
        }
    }
    let added: Vec<(&str, &[u8])> =
        sections[stub_sections.len()..].iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let names: Vec<&str> = added.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [".osrel", ".cmdline", ".uname", ".linux", ".initrd", ".profile", ".profile", ".cmdline"]
    );
    let reset_cmdline = format!("{CMDLINE} talos.experimental.wipe=system:EPHEMERAL,STATE");
    assert_eq!(added[1].1, CMDLINE.as_bytes());
    assert_eq!(added[5].1, b"ID=main");
    assert_eq!(added[6].1, b"ID=reset-maintenance\nTITLE=Reset to maintenance mode");
    assert_eq!(added[7].1, reset_cmdline.as_bytes());

    // systemd-boot 257 and the stub: the main profile by default, the reset one when chosen.
    for (entry, expected) in [(None, CMDLINE.to_owned()), (Some("kiln.efi@reset-maintenance"), reset_cmdline)]
    {
        let mut command = support::kiln();
        command.arg("boot").arg(&out).args(["--image", "installer:smoke", "--timeout", "240"]);
        if let Some(entry) = entry {
            command.args(["--entry", entry]);
        }
        let output = support::run(command.args(["--until", "kiln-smoke: done:"]));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let reported: Vec<&str> =
            text.lines().filter_map(|l| l.split_once("kiln-smoke: ").map(|(_, r)| r)).collect();
        assert!(
            support::guest_reported(&reported, &format!("cmdline: {expected}")),
            "entry {entry:?}:\n{text}"
        );
    }

    // Asked not to, no profiles; asked for with Debian 12's stub (systemd 254), refused.
    let plain = recipe_with_systemd_257(&work.path().join("plain"), "profiles = false\n");
    let steps = build_recipe(&plain, &work.path().join("out-plain")).unwrap();
    let sections = pe_sections(&steps["talos"].join("installer/usr/install/amd64/vmlinuz.efi"));
    assert!(sections.iter().all(|(name, _)| name != ".profile"));
    fs::create_dir(work.path().join("old")).unwrap();
    let old = support::smoke_recipe_copy(&work.path().join("old"));
    let manifest = old.join("kiln.toml");
    let text = fs::read_to_string(&manifest).unwrap().replace("[talos]\n", "[talos]\nprofiles = true\n");
    fs::write(&manifest, text).unwrap();
    let refused = build_recipe(&old, &work.path().join("out-old")).unwrap_err();
    assert!(
        refused.contains("profiles = true needs systemd-stub 257 or later")
            && refused.contains("is systemd-stub 254."),
        "{refused}"
    );
}
