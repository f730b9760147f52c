//! `kiln check` and Talos's boot-time rules: what a node running Talos v1.10.3 would refuse
//! (`pkg/kernel/kspp/kspp.go`: the KSPP arguments and sysctls; `kernel_param_spec.go`: the
//! machine config's sysctls), found without compiling, and refused by the build where the UKI
//! is made.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::support;

fn can_check() -> bool {
    support::require_file("/usr/src/linux-source-6.12.tar.xz") && support::require_tool("make")
}

fn check(recipe: &Path, extra: &[String]) -> (Output, String) {
    let output = support::run(
        support::kiln().env("KILN_CACHE", support::shared_cache()).arg("check").arg(recipe).args(extra),
    );
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output, text)
}

/// `kiln build RECIPE --out OUT` with the shared cache, and what it printed on stderr.
fn build(recipe: &Path, out: &Path) -> (Output, String) {
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .arg("build")
            .arg(recipe)
            .arg("--out")
            .arg(out),
    );
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, text)
}

/// Replaces `from` (which must be there) with `to` in `file`.
fn edit(file: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    fs::write(file, text.replacen(from, to, 1)).unwrap();
}

const SMOKE_CMDLINE: &str = "cmdline = \"console=ttyS0 panic=-1 hugepagesz=1G";

#[test]
fn the_smoke_recipe_passes_every_check() {
    if !can_check() {
        return;
    }
    let (output, text) = check(&support::smoke_recipe(), &[]);
    assert_eq!(output.status.code(), Some(0), "{text}");
    for line in [
        "ok       recipe: 11 sources",
        "ok       pins: 11 of 11 sources here match their pins",
        "ok       kernel configuration: every value kernel/smoke.config requests stuck",
        "ok       talos boot rules: KSPP arguments and Talos's defaults on the command line; 7 KSPP and 1 \
         machine-config sysctls exist; left to the build, where the modules are: solana.optimizer.cpu_latency_us",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "no {line:?} in:\n{text}");
    }
}

#[test]
fn check_names_each_boot_rule_the_recipe_breaks() {
    if !can_check() {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    let manifest = recipe.join("kiln.toml");
    // `-pti` drops Talos's pti=on; no Yama, so kernel.yama.ptrace_scope has no file; sysctls
    // whose option (NUMA balancing, IPv4: the smoke kernel has no INET) or named value (the fq
    // scheduler) the kernel lacks.
    edit(&manifest, SMOKE_CMDLINE, "cmdline = \"-pti console=ttyS0 panic=-1 hugepagesz=1G");
    edit(
        &manifest,
        "sysctls = { ",
        "sysctls = { \"kernel.numa_balancing\" = \"0\", \"net.core.default_qdisc\" = \"fq\", \"net.ipv4.tcp_mem\" = \"1 2 3\", ",
    );
    edit(&recipe.join("kernel/smoke.config"), "CONFIG_SECURITY_YAMA=y\n", "");
    let (output, text) = check(&recipe, &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("ok       kernel configuration"), "{text}");
    for expected in [
        "FAILED   talos boot rules:",
        "KSPP kernel arguments (kspp.go EnforceKSPPKernelParameters): pti=on is missing from the command line",
        "KSPP sysctls (kspp.go GetKernelParams): kernel.yama.ptrace_scope: the kernel lacks CONFIG_SECURITY_YAMA=y \
         (security/yama/yama_lsm.c registers it)",
        "machine.sysctls (kernel_param_spec.go updateKernelParam): kernel.numa_balancing: the kernel lacks \
         CONFIG_NUMA_BALANCING=y",
        "net.core.default_qdisc = \"fq\": the kernel lacks CONFIG_NET_SCH_FQ=y, so the write fails",
        "net.ipv4.tcp_mem: the kernel lacks CONFIG_INET=y",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }

    // Variants of the arguments: a later pti=off (Talos checks the first, the kernel uses the
    // last), and no platform, so none of Talos's defaults nor its KSPP arguments.
    edit(&manifest, "cmdline = \"-pti console=ttyS0", "cmdline = \"console=ttyS0 pti=off");
    let (output, text) = check(&recipe, &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("a later pti=off overrides pti=on for the kernel"), "{text}");
    edit(&manifest, "platform = \"metal\"\n", "");
    let (output, text) = check(&recipe, &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for expected in [
        "slab_nomerge is missing from the command line",
        "pti=off is on the command line where Talos requires pti=on",
        "Talos's default arguments (kernel.go DefaultArgs): init_on_alloc=1 is not on the command line",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn check_explains_a_value_that_does_not_stick_and_a_stale_pin() {
    if !can_check() {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    // Yama needs the security framework, which needs MULTIUSER: without it, two requests drop.
    edit(&recipe.join("kernel/smoke.config"), "CONFIG_MULTIUSER=y\n", "");
    let mut tarball =
        fs::OpenOptions::new().append(true).open(recipe.join("sources/libgreet-1.0.tar.gz")).unwrap();
    std::io::Write::write_all(&mut tarball, b"\0").unwrap();
    let (output, text) = check(&recipe, &[]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for expected in [
        "FAILED   pins:",
        "source \"libgreet\"",
        "has sha256 ",
        "FAILED   kernel configuration:",
        "Value requested for CONFIG_SECURITY_YAMA not in final .config",
        "MULTIUSER is n",
        "not run  talos boot rules: the command line holds; the sysctls need the kernel configuration",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn the_build_refuses_an_image_that_breaks_talos_boot_rules() {
    if !can_check() || !support::require_tool("musl-gcc") || !support::require_tool("cpio") {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    let manifest = recipe.join("kiln.toml");
    edit(&manifest, SMOKE_CMDLINE, "cmdline = \"-slab_nomerge console=ttyS0 panic=-1 hugepagesz=1G");
    // A sysctl nobody registers: the optimizer module registers solana/optimizer/cpu_latency_us,
    // not this one.
    edit(&manifest, "sysctls = { ", "sysctls = { \"solana.optimizer.latency_target\" = \"5\", ");
    let (output, text) = build(&recipe, &work.path().join("out"));
    assert_eq!(output.status.code(), Some(3), "{text}");
    for expected in [
        "the image breaks 2 of Talos v1.10.3's boot-time rules:",
        "slab_nomerge is missing from the command line: Talos refuses to boot",
        "solana.optimizer.latency_target: no kernel option kiln knows creates it, and no module of \
         machine.kernel.modules registers it",
        "kiln check RECIPE",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    // The module that registers it, no longer in machine.kernel.modules: refused the same way.
    edit(&manifest, "\"solana.optimizer.latency_target\" = \"5\", ", "");
    edit(&manifest, SMOKE_CMDLINE.replace("console", "-slab_nomerge console").as_str(), SMOKE_CMDLINE);
    edit(&manifest, "modules = [\"solana-optimizer\"]", "modules = []");
    let (output, text) = build(&recipe, &work.path().join("out"));
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("the image breaks 1 of Talos"), "{text}");
    assert!(
        text.contains("solana.optimizer.cpu_latency_us: no kernel option kiln knows creates it"),
        "{text}"
    );
}

/// Talos v1.10.3's kernel configuration (siderolabs/pkgs 39b9c9f, `kernel/build/config-amd64`),
/// the copy tests may use.
fn talos_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/talos-v1.10.3-config-amd64")
}

/// The release recipe's kernel starts from Talos's own configuration, pinned by the URL at
/// pkgs 39b9c9f and its checksum, and the upstream 6.12.28 tarball Talos pins; offline, Debian's
/// 6.12 source and the fixture stand in through --source, and every value of the Solana fragment
/// sticks on that base, with Talos's boot rules (Yama for kernel.yama.ptrace_scope among them)
/// held. The old base (x86_64_defconfig + a hand-written Talos fragment) had no Yama.
#[test]
fn the_solana_kernel_is_talos_config_plus_the_solana_fragment_and_keeps_talos_rules() {
    if !can_check() || !support::require_file(talos_config().to_str().unwrap()) {
        return;
    }
    let work = support::tempdir();
    let recipe = support::solana_recipe_copy(work.path());
    let manifest: toml::Table = fs::read_to_string(recipe.join("kiln.toml")).unwrap().parse().unwrap();
    assert_eq!(manifest["kernel"]["base-source"].as_str(), Some("talos-config"));
    assert_eq!(manifest["kernel"]["fragments"].as_array().unwrap().len(), 1);
    let pinned = &manifest["sources"]["talos-config"];
    assert_eq!(
        pinned["url"].as_str(),
        Some(
            "https://raw.githubusercontent.com/siderolabs/pkgs/39b9c9f841cb786f46a791ac392c66945c218eca/\
             kernel/build/config-amd64"
        )
    );
    let fixture = support::sha256_file(&talos_config());
    assert_eq!(pinned["sha256"].as_str(), fixture.strip_prefix("sha256:"));
    assert_eq!(
        manifest["sources"]["linux"]["sha256"].as_str(),
        Some("e8a099182562aecff781de72ce769461e706d97af42d740dff20eb450dd5771e")
    );
    let stand_ins = [
        "--source=linux=/usr/src/linux-source-6.12.tar.xz".to_owned(),
        format!("--source=talos-config={}", talos_config().display()),
    ];

    let (output, text) = check(&recipe, &stand_ins);
    assert!(
        text.lines().any(|l| l
            .starts_with("ok       kernel configuration: every value kernel/solana.config requests stuck")),
        "{text}"
    );
    assert!(
        text.contains("ok       talos boot rules: KSPP arguments and Talos's defaults on the command line; 7 KSPP and 13 machine-config sysctls exist"),
        "{text}"
    );
    // The Talos images are pinned by a kiln.lock written where ghcr.io can be reached.
    assert!(
        text.contains("source \"talos-imager\" (ghcr.io/siderolabs/imager:v1.10.3) is pinned by kiln.lock"),
        "{text}"
    );
    assert_eq!(output.status.code(), Some(1), "{text}");

    // A fragment value Talos's base cannot take is still checked and explained: NUMA balancing
    // needs NUMA, which the fragment turns off here.
    let fragment = recipe.join("kernel/solana.config");
    let fragment_text = fs::read_to_string(&fragment).unwrap();
    fs::write(&fragment, fragment_text.replace("CONFIG_NUMA=y\n", "# CONFIG_NUMA is not set\n")).unwrap();
    let (output, text) = check(&recipe, &stand_ins);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED   kernel configuration:"), "{text}");
    assert!(text.contains("Value requested for CONFIG_NUMA_BALANCING not in final .config"), "{text}");
}
