//! The kernel step on the smoke recipe: Linux 6.12 tinyconfig plus a fragment, built in the
//! sandbox once per test run (in the cache `scripts/smoke` fills), and a requested option that
//! does not stick failing the build before the compile.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

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
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/smoke");
    let out = work.path().join("out");
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(&out)
            .arg("--json"),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let built: Value = serde_json::from_slice(&output.stdout).unwrap();
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
}

#[test]
fn a_kernel_option_that_does_not_stick_fails_before_the_compile() {
    if !can_build() {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    // USB storage without USB support: make olddefconfig drops it.
    let fragment = recipe.join("kernel/smoke.config");
    let text = fs::read_to_string(&fragment).unwrap();
    fs::write(&fragment, format!("{text}CONFIG_USB_STORAGE=y\n")).unwrap();
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(work.path().join("out")),
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(message.contains("1 requested kernel option(s) did not stick"), "{message}");
    assert!(message.contains("Value requested for CONFIG_USB_STORAGE not in final .config"), "{message}");
    assert!(message.contains("Requested value:  CONFIG_USB_STORAGE=y"), "{message}");
    assert!(message.contains("hint: make olddefconfig drops"), "{message}");
    assert!(!message.contains("built  kernel"), "{message}");
}

#[test]
fn the_smoke_kernel_boots_and_loads_its_module() {
    if !can_build() || !support::require_tool("qemu-system-x86_64") || !support::require_tool("umoci") {
        return;
    }
    let work = support::tempdir();
    let out = work.path().join("out");
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/smoke"))
            .arg("--out")
            .arg(&out),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for image in ["kernel", "initramfs"] {
        support::ok(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:{image}:smoke", out.display()))
                .arg(work.path().join(image)),
        );
    }
    let console = support::run(
        Command::new("timeout")
            .args([
                "300",
                "qemu-system-x86_64",
                "-m",
                "256",
                "-nographic",
                "-no-reboot",
                "-accel",
                "tcg",
                "-kernel",
            ])
            .arg(work.path().join("kernel/rootfs/boot/vmlinuz"))
            .arg("-initrd")
            .arg(work.path().join("initramfs/rootfs/initramfs.zst"))
            .args(["-append", "console=ttyS0 panic=-1"])
            .stdin(std::process::Stdio::null()),
    );
    let text = String::from_utf8_lossy(&console.stdout);
    let report =
        text.lines().find(|l| l.starts_with("kiln-smoke: booted ")).unwrap_or_else(|| panic!("{text}"));
    assert!(report.contains("-kiln-smoke with modules: crc_ccitt"), "{report}");
}
