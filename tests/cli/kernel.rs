//! The kernel step on the smoke recipe: Linux 6.12 tinyconfig plus a fragment, built in the
//! sandbox once per test run (in the cache `scripts/smoke` fills), and a requested option that
//! does not stick failing the build before the compile.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support;

const SOURCE: &str = "/usr/src/linux-source-6.12.tar.xz";

fn can_build() -> bool {
    support::require_file(SOURCE)
        && support::require_tool("make")
        && support::require_tool("flex")
        && support::require_tool("bison")
        && support::require_tool("bc")
        && support::require_tool("musl-gcc")
}

#[test]
fn the_smoke_kernel_has_its_image_modules_and_build_directory() {
    if !can_build() {
        return;
    }
    let work = support::tempdir();
    let out = work.path().join("out");
    let built = support::build_smoke(&out);
    let kernel = built["steps"].as_array().unwrap().iter().find(|s| s["step"] == "kernel").unwrap();
    let entry = support::shared_cache().join("steps").join(kernel["key"].as_str().unwrap()).join("out");
    let release = fs::read_to_string(entry.join("kernelrelease")).unwrap().trim().to_owned();
    assert!(release.starts_with("6.12.") && release.ends_with("-kiln-smoke"), "{release}");

    // The image: /boot/vmlinuz (a bzImage), /boot/config, the module, no build/source links.
    let listing =
        support::ok(Command::new("skopeo").args(["inspect", &format!("oci:{}:kernel:smoke", out.display())]));
    assert!(listing.contains("\"Layers\""), "{listing}");
    let bundle = work.path().join("bundle");
    support::ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:kernel:smoke", out.display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    let vmlinuz = fs::read(root.join("boot/vmlinuz")).unwrap();
    assert_eq!(&vmlinuz[0x202..0x206], b"HdrS", "a bzImage");
    let config = fs::read_to_string(root.join("boot/config")).unwrap();
    assert!(config.contains("\nCONFIG_CRC_CCITT=m\n") && config.contains("\nCONFIG_SERIAL_8250_CONSOLE=y\n"));
    let modules = root.join("usr/lib/modules").join(&release);
    let module = modules.join("kernel/lib/crc-ccitt.ko");
    let vermagic = support::ok(Command::new("modinfo").args(["-F", "vermagic"]).arg(&module));
    assert!(vermagic.starts_with(&format!("{release} ")), "{vermagic}");
    assert!(!modules.join("build").exists() && !modules.join("source").exists());

    // The build directory for out-of-tree modules: config, symbols, generated headers, tools,
    // no object files.
    let build = entry.join("build");
    for needed in
        [".config", "Module.symvers", "include/generated/autoconf.h", "scripts/mod/modpost", "Makefile"]
    {
        assert!(build.join(needed).exists(), "{needed}");
    }
    let objects = support::ok(Command::new("find").arg(&build).args(["-name", "*.o"]));
    assert!(objects.is_empty(), "{objects}");

    // Modules are signed with the recipe's key (SHA-512, as the kernel's configuration asks),
    // which the kernel embeds; kmod reads kiln's indexes.
    let certificate = build.join("certs/signing_key.x509");
    let info = support::ok(Command::new("modinfo").arg(&module));
    assert!(info.contains("signer:         kiln module signing key"), "{info}");
    assert!(info.contains("sig_hashalgo:   sha512"), "{info}");
    support::ok(support::kiln().args(["modules", "verify", "--cert"]).arg(&certificate).arg(&module));
    let depends = support::ok(
        Command::new("modprobe")
            .arg("-d")
            .arg(root.join("usr"))
            .args(["-S", &release, "--show-depends", "igb"])
            .env("MODPROBE_OPTIONS", ""),
    );
    for needed in ["i2c-core.ko", "i2c-algo-bit.ko", "igb.ko"] {
        assert!(depends.contains(needed), "{depends}");
    }

    // kiln's indexes are kmod's: kmod 30's depmod on a copy of the same tree writes the same
    // bytes, and its modprobe resolves every module alike with either set.
    let kmod_root = work.path().join("kmod");
    let kmod_modules = kmod_root.join("lib/modules").join(&release);
    fs::create_dir_all(kmod_modules.parent().unwrap()).unwrap();
    support::ok(Command::new("cp").arg("-R").arg(&modules).arg(&kmod_modules));
    let empty_config = work.path().join("depmod.d");
    fs::create_dir(&empty_config).unwrap();
    support::ok(Command::new("depmod").arg("-b").arg(&kmod_root).arg("-C").arg(&empty_config).arg(&release));
    let mut compared = 0;
    for entry in fs::read_dir(&kmod_modules).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("modules.") && name != "modules.order" && name != "modules.builtin" {
            let ours = fs::read(modules.join(&name)).unwrap();
            assert!(ours == fs::read(kmod_modules.join(&name)).unwrap(), "{name} differs from kmod's");
            compared += 1;
        }
    }
    assert!(compared >= 8, "{compared} index files");
    let names: Vec<String> = fs::read_to_string(modules.join("modules.order"))
        .unwrap()
        .lines()
        .map(|line| line.rsplit('/').next().unwrap().trim_end_matches(".ko").to_owned())
        .collect();
    assert!(names.len() >= 5 && names.contains(&"igb".to_owned()), "{names:?}");
    for name in &names {
        let show = |root: &Path| {
            support::ok(
                Command::new("modprobe")
                    .arg("-d")
                    .arg(root)
                    .args(["-S", &release, "--show-depends", name])
                    .env("MODPROBE_OPTIONS", ""),
            )
            .replace(&root.display().to_string(), "")
        };
        assert_eq!(show(&root.join("usr")), show(&kmod_root), "{name}");
    }

    // The out-of-tree module, in its extension image (manifest.yaml + rootfs/): built against
    // this kernel, signed with the same key.
    let optimizer = work.path().join("optimizer");
    support::ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:solana-optimizer:smoke", out.display()))
            .arg(&optimizer),
    );
    let ko =
        optimizer.join("rootfs/rootfs/usr/lib/modules").join(&release).join("extras/solana-optimizer.ko");
    let info = support::ok(Command::new("modinfo").arg(&ko));
    assert!(info.contains(&format!("vermagic:       {release} SMP mod_unload modversions")), "{info}");
    assert!(info.contains("signer:         kiln module signing key"), "{info}");
    support::ok(support::kiln().args(["modules", "verify", "--cert"]).arg(&certificate).arg(&ko));
}

/// Builds a changed copy of the smoke recipe, which must fail as bad input; its stderr.
fn build_fails_with_bad_input(recipe: &Path, work: &Path) -> String {
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .arg("build")
            .arg(recipe)
            .arg("--out")
            .arg(work.join("out")),
    );
    let message = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(3), "{message}");
    message
}

#[test]
fn signed_modules_without_a_recipe_key_fail_before_the_compile() {
    if !can_build() {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    let toml = recipe.join("kiln.toml");
    let text = fs::read_to_string(&toml).unwrap();
    let without_key: String = text
        .lines()
        .filter(|line| !line.starts_with("signing-seed"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(text, without_key);
    fs::write(&toml, without_key).unwrap();
    let message = build_fails_with_bad_input(&recipe, work.path());
    assert!(
        message.contains("sets CONFIG_MODULE_SIG: give [kernel] signing-key or signing-seed"),
        "{message}"
    );
    assert!(!message.contains("built  kernel"), "{message}");
}

#[test]
fn a_kernel_option_that_does_not_stick_fails_before_the_compile_with_the_reason() {
    if !can_build() {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    // USB storage without USB support; BBR as the default congestion control while BBR itself
    // is a module: make olddefconfig drops both.
    let fragment = recipe.join("kernel/smoke.config");
    let text = fs::read_to_string(&fragment).unwrap();
    fs::write(
        &fragment,
        format!(
            "{text}CONFIG_USB_STORAGE=y\nCONFIG_INET=y\nCONFIG_TCP_CONG_ADVANCED=y\nCONFIG_TCP_CONG_BBR=m\n\
             CONFIG_DEFAULT_BBR=y\n"
        ),
    )
    .unwrap();
    let message = build_fails_with_bad_input(&recipe, work.path());
    assert!(message.contains("2 requested kernel option(s) did not stick"), "{message}");
    assert!(message.contains("Value requested for CONFIG_USB_STORAGE not in final .config"), "{message}");
    assert!(message.contains("Requested value:  CONFIG_USB_STORAGE=y"), "{message}");
    assert!(message.contains("Value requested for CONFIG_DEFAULT_BBR not in final .config"), "{message}");
    // Why, from kiln's Kconfig evaluation: the unmet dependencies, with where they are.
    assert!(message.contains("why, from the kernel's Kconfig:"), "{message}");
    assert!(message.contains("TCP_CONG_BBR is m (net/ipv4/Kconfig:"), "{message}");
    assert!(message.contains("USB_SUPPORT"), "{message}");
    assert!(message.contains("hint: make olddefconfig drops"), "{message}");
    assert!(!message.contains("built  kernel"), "{message}");
}

/// What the smoke initramfs's init reports on the console, booted by scripts/boot-smoke with
/// the recipe's command line (64 huge pages, two NUMA nodes).
const BOOT_REPORT: &[&str] = &[
    "hugepages: 64",
    "numa-nodes: 2",
    "io_uring: io_uring: nop completed",
    "sig-enforce: Y",
    // With MODULE_SIG_FORCE, a copy of the optimizer without its signature is refused …
    "unsigned-module: refused",
    // … and the signed one loads, as do in-tree modules with their dependencies (igb needs
    // i2c-algo-bit and i2c-core) through kiln's modules.dep.
    "modules: crc_ccitt i2c_algo_bit i2c_core igb solana_optimizer ",
    "optimizer-numa-nodes: 2",
    "optimizer-node-free: 2 nodes",
    // The latency knob holds a CPU latency QoS request: /dev/cpu_dma_latency shows it.
    "cpu-latency-set: 50 50",
    "cpu-latency-too-big: refused, still 50",
    "sample-interval-too-small: refused, still 1000",
    "numa-nodes-write: refused",
    "cpu-latency-off: -1 2000000000",
    "done: ok",
];

#[test]
fn the_smoke_kernel_boots_with_huge_pages_numa_io_uring_and_its_signed_modules() {
    if !can_build() || !support::require_tool("qemu-system-x86_64") || !support::require_tool("umoci") {
        return;
    }
    let work = support::tempdir();
    let out = work.path().join("out");
    support::build_smoke(&out);
    for image in ["kernel", "initramfs"] {
        support::ok(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:{image}:smoke", out.display()))
                .arg(work.path().join(image)),
        );
    }
    let console = support::run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/boot-smoke"))
            .arg(work.path().join("kernel/rootfs/boot/vmlinuz"))
            .arg(work.path().join("initramfs/rootfs/initramfs.zst")),
    );
    let text = String::from_utf8_lossy(&console.stdout);
    // A kernel message may precede a report on its line, as it may follow one.
    let reported: Vec<&str> =
        text.lines().filter_map(|line| line.split_once("kiln-smoke: ").map(|(_, report)| report)).collect();
    assert!(
        reported.iter().any(|line| line.starts_with("booted: 6.12.") && line.ends_with("-kiln-smoke")),
        "{text}"
    );
    for expected in BOOT_REPORT {
        assert!(
            support::guest_reported(&reported, expected),
            "the guest did not report {expected:?}:\n{}",
            reported.join("\n")
        );
    }
    assert!(text.contains("Loading of unsigned module is rejected"), "{text}");
}
