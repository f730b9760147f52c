//! `kiln kconfig olddefconfig|explain` against the kernel's own `scripts/kconfig/conf` (Linux
//! 6.12): byte-identical `.config` output for the x86_64 defconfig, tinyconfig, Debian's amd64
//! config, the defconfig with the Solana fragment (all through `make olddefconfig`), and
//! randconfigs (through `conf` with the environment make exports); explanations name the
//! reasons; malformed trees give errors with file and line.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kiln_kconfig::{Environment, Probes};

use crate::support;

/// Options for a Solana validator (kernel.md §2.9: zero mismatches on Debian's config).
const SOLANA: &str = "\
CONFIG_HUGETLBFS=y
CONFIG_TRANSPARENT_HUGEPAGE=y
CONFIG_TRANSPARENT_HUGEPAGE_MADVISE=y
CONFIG_NUMA=y
CONFIG_X86_64_ACPI_NUMA=y
CONFIG_AMD_NUMA=y
# CONFIG_NUMA_BALANCING_DEFAULT_ENABLED is not set
CONFIG_AMD_IOMMU=y
CONFIG_IO_URING=y
CONFIG_PCI_IOV=y
CONFIG_MLX5_CORE=m
CONFIG_MLX5_CORE_EN=y
CONFIG_ICE=m
CONFIG_IXGBEVF=m
CONFIG_VFIO_PCI=m
CONFIG_TCP_CONG_BBR=y
CONFIG_DEFAULT_BBR=y
CONFIG_NET_SCH_FQ=y
CONFIG_DEFAULT_FQ=y
CONFIG_CRYPTO_AES_NI_INTEL=y
CONFIG_CRYPTO_SHA256_SSSE3=y
CONFIG_CRYPTO_SHA512_SSSE3=y
CONFIG_X86_AMD_PSTATE=y
CONFIG_X86_AMD_PSTATE_DEFAULT_MODE=3
CONFIG_PREEMPT_NONE=y
CONFIG_PREEMPT_DYNAMIC=y
CONFIG_HZ_1000=y
CONFIG_NO_HZ_FULL=y
CONFIG_CPU_ISOLATION=y
CONFIG_RCU_NOCB_CPU=y
CONFIG_XDP_SOCKETS=y
CONFIG_BPF_JIT=y
CONFIG_BPF_JIT_ALWAYS_ON=y
";

/// The Linux tree and a build directory where make has built `conf`, shared by every test and
/// locked while in use (make writes its `.config` there).
struct Kernel {
    linux: PathBuf,
    obj: PathBuf,
}

fn kernel() -> Option<Kernel> {
    let linux = support::linux_source()?;
    if !support::require_tool("make")
        || !support::require_tool("gcc")
        || !support::require_tool("flex")
        || !support::require_tool("bison")
    {
        return None;
    }
    // Built once per extracted tree: a new linux-source-6.12 gets its own `conf`.
    let obj = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "kconfig-objtree{}",
        linux.file_name().unwrap().to_string_lossy().trim_start_matches("linux-6.12")
    ));
    Some(Kernel { linux, obj })
}

impl Kernel {
    /// Holds the build directory, building `conf` there first if needed.
    fn lock(&self) -> File {
        fs::create_dir_all(&self.obj).unwrap();
        let lock = File::create(self.obj.with_extension("lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        if !self.conf().exists() {
            self.make("x86_64_defconfig");
        }
        lock
    }

    fn conf(&self) -> PathBuf {
        self.obj.join("scripts/kconfig/conf")
    }

    fn make(&self, target: &str) {
        support::ok(
            Command::new("make")
                .arg("-s")
                .arg("-C")
                .arg(&self.linux)
                .arg(format!("O={}", self.obj.display()))
                .arg(target),
        );
    }

    /// `make olddefconfig` on `input`, as users run it.
    fn make_olddefconfig(&self, input: &str) -> String {
        let _lock = self.lock();
        fs::write(self.obj.join(".config"), input).unwrap();
        self.make("olddefconfig");
        fs::read_to_string(self.obj.join(".config")).unwrap()
    }

    /// `make <target>`'s `.config` (a generated configuration such as tinyconfig).
    fn make_config(&self, target: &str) -> String {
        let _lock = self.lock();
        self.make(target);
        fs::read_to_string(self.obj.join(".config")).unwrap()
    }

    /// `conf --<mode> Kconfig` on `input` with the environment make exports (see
    /// `make_olddefconfig` for the check that it is that environment).
    fn conf_run(&self, mode: &str, input: &str, seed: Option<u32>) -> String {
        let conf = {
            let _lock = self.lock();
            self.conf()
        };
        let work = support::tempdir();
        fs::write(work.path().join(".config"), input).unwrap();
        let mut command = Command::new(conf);
        command
            .arg(format!("--{mode}"))
            .arg("Kconfig")
            .env_clear()
            .envs(kbuild(&self.linux))
            .current_dir(work.path());
        if let Some(seed) = seed {
            command.env("KCONFIG_SEED", seed.to_string());
        }
        support::ok(&mut command);
        fs::read_to_string(work.path().join(".config")).unwrap()
    }
}

/// The variables `make olddefconfig` exports to conf, as kiln computes them.
fn kbuild(linux: &Path) -> BTreeMap<String, String> {
    static VARIABLES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    VARIABLES
        .get_or_init(|| Environment::kbuild(linux, "x86", Probes::live()).unwrap().variables().clone())
        .clone()
}

/// A scratch directory where kiln runs, recording its probes on the first run and replaying
/// them afterwards.
struct Kiln {
    work: tempfile::TempDir,
    runs: usize,
}

impl Kiln {
    fn new() -> Kiln {
        Kiln { work: support::tempdir(), runs: 0 }
    }

    fn probes(&self) -> PathBuf {
        self.work.path().join("probes.json")
    }

    fn olddefconfig(&mut self, kernel: &Kernel, input: &str) -> String {
        self.runs += 1;
        let config = self.work.path().join(format!("{}.config", self.runs));
        fs::write(&config, input).unwrap();
        let probes = if self.runs == 1 { "--record-probes" } else { "--probes" };
        support::ok(
            support::kiln()
                .args(["kconfig", "olddefconfig", "--srctree"])
                .arg(&kernel.linux)
                .arg(probes)
                .arg(self.probes())
                .arg(&config),
        );
        fs::read_to_string(&config).unwrap()
    }
}

/// Asserts byte equality, showing the first differing lines.
fn assert_same(case: &str, expected: &str, actual: &str) {
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a).unwrap_or(0);
        let show =
            |text: &str| text.lines().skip(first.saturating_sub(3)).take(8).collect::<Vec<_>>().join("\n");
        panic!(
            "{case}: output differs from conf at line {}\nconf:\n{}\nkiln:\n{}",
            first + 1,
            show(expected),
            show(actual)
        );
    }
}

fn defconfig(kernel: &Kernel) -> String {
    fs::read_to_string(kernel.linux.join("arch/x86/configs/x86_64_defconfig")).unwrap()
}

#[test]
fn olddefconfig_matches_make_for_x86_64_defconfig() {
    let Some(kernel) = kernel() else { return };
    let input = defconfig(&kernel);
    let expected = kernel.make_olddefconfig(&input);
    let mut kiln = Kiln::new();
    assert_same("x86_64_defconfig", &expected, &kiln.olddefconfig(&kernel, &input));
    // Replayed probes give the same bytes; the header and toolchain lines are there.
    assert_same("x86_64_defconfig, replayed", &expected, &kiln.olddefconfig(&kernel, &input));
    let header = format!(
        "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 {} Kernel Configuration\n#\nCONFIG_CC_VERSION_TEXT=\"gcc",
        support::linux_version(&kernel.linux)
    );
    assert!(expected.starts_with(&header), "{expected:.200}");
    let probes: BTreeMap<String, String> = serde_json::from_slice(&fs::read(kiln.probes()).unwrap()).unwrap();
    assert!(probes.len() > 50 && probes.keys().any(|c| c.contains("-Werror")), "{probes:?}");
    // --out leaves the input alone.
    let input_path = kiln.work.path().join("input.config");
    fs::write(&input_path, &input).unwrap();
    let out = kiln.work.path().join("out.config");
    support::ok(
        support::kiln()
            .args(["kconfig", "olddefconfig", "--srctree"])
            .arg(&kernel.linux)
            .arg("--probes")
            .arg(kiln.probes())
            .arg(&input_path)
            .arg("--out")
            .arg(&out),
    );
    assert_eq!(fs::read_to_string(&input_path).unwrap(), input);
    assert_same("x86_64_defconfig --out", &expected, &fs::read_to_string(&out).unwrap());
}

#[test]
fn olddefconfig_matches_make_for_tinyconfig() {
    let Some(kernel) = kernel() else { return };
    let input = kernel.make_config("tinyconfig");
    let expected = kernel.make_olddefconfig(&input);
    assert_same("tinyconfig", &expected, &Kiln::new().olddefconfig(&kernel, &input));
}

#[test]
fn olddefconfig_matches_make_for_debians_config() {
    let Some(kernel) = kernel() else { return };
    let path = "/usr/src/linux-config-6.12/config.amd64_none_amd64.xz";
    if !support::require_file(path) || !support::require_tool("xz") {
        return;
    }
    let input = support::ok(Command::new("xz").arg("-dc").arg(path));
    let expected = kernel.make_olddefconfig(&input);
    assert!(expected.lines().filter(|l| l.starts_with("CONFIG_")).count() > 6000);
    assert_same("Debian amd64", &expected, &Kiln::new().olddefconfig(&kernel, &input));
}

#[test]
fn olddefconfig_matches_make_for_defconfig_with_the_solana_fragment() {
    let Some(kernel) = kernel() else { return };
    let input = defconfig(&kernel) + SOLANA;
    let expected = kernel.make_olddefconfig(&input);
    assert!(expected.contains("CONFIG_DEFAULT_TCP_CONG=\"bbr\"\n") && expected.contains("CONFIG_HZ=1000\n"));
    assert_same("defconfig + Solana", &expected, &Kiln::new().olddefconfig(&kernel, &input));
}

/// For each seed: conf's randconfig and both olddefconfigs of it; for the first seed also of the
/// randconfig with every seventh line deleted, so that defaults apply.
fn randconfigs(seeds: std::ops::Range<u32>) {
    let Some(kernel) = kernel() else { return };
    let mut kiln = Kiln::new();
    let first = seeds.start;
    for seed in seeds {
        let random = kernel.conf_run("randconfig", "", Some(seed));
        let mut cases = vec![(format!("randconfig {seed}"), random.clone())];
        if seed == first {
            let thinned = random
                .lines()
                .enumerate()
                .filter(|(i, _)| i % 7 != 6)
                .map(|(_, l)| format!("{l}\n"))
                .collect();
            cases.push((format!("randconfig {seed} with lines deleted"), thinned));
        }
        for (case, input) in cases {
            let expected = kernel.conf_run("olddefconfig", &input, None);
            assert_same(&case, &expected, &kiln.olddefconfig(&kernel, &input));
        }
    }
}

#[test]
fn olddefconfig_matches_conf_on_randconfigs_1_to_5() {
    randconfigs(1..6);
}

#[test]
fn olddefconfig_matches_conf_on_randconfigs_6_to_10() {
    randconfigs(6..11);
}

#[test]
fn olddefconfig_matches_conf_on_randconfigs_11_to_15() {
    randconfigs(11..16);
}

#[test]
fn olddefconfig_matches_conf_on_randconfigs_16_to_20() {
    randconfigs(16..21);
}

fn explain(kernel: &Kernel, input: &str, symbols: &[&str]) -> String {
    let work = support::tempdir();
    let config = work.path().join("request.config");
    fs::write(&config, input).unwrap();
    support::ok(
        support::kiln()
            .args(["kconfig", "explain", "--srctree"])
            .arg(&kernel.linux)
            .arg(&config)
            .args(symbols),
    )
}

#[test]
fn explain_names_the_unmet_dependency_chain_and_the_select() {
    let Some(kernel) = kernel() else { return };
    let request = "CONFIG_TCP_CONG_ADVANCED=y\nCONFIG_TCP_CONG_BBR=m\nCONFIG_DEFAULT_BBR=y\n\
                   # CONFIG_X86_AMD_PSTATE is not set\nCONFIG_CPU_SUP_AMD=y\nCONFIG_ACPI=y\nCONFIG_SCHED_MC_PRIO=y\n";
    let input = defconfig(&kernel) + request;
    // The C tool agrees that these values do not stick.
    let expected = kernel.make_olddefconfig(&input);
    assert!(!expected.contains("CONFIG_DEFAULT_BBR") && expected.contains("CONFIG_X86_AMD_PSTATE=y\n"));
    let report = explain(&kernel, &input, &["DEFAULT_BBR", "CONFIG_X86_AMD_PSTATE"]);
    for reason in [
        "CONFIG_DEFAULT_BBR is not written",
        "requested y, which did not stick",
        "member of the choice \"Default TCP congestion control\" (net/ipv4/Kconfig:",
        "its prompt is hidden: needs NET && INET && TCP_CONG_ADVANCED && TCP_CONG_BBR=y [n] (net/ipv4/Kconfig:717)",
        "TCP_CONG_BBR is m (net/ipv4/Kconfig:667)",
        "set to m by the configuration",
        "CONFIG_X86_AMD_PSTATE=y",
        "requested n, which did not stick",
        "selected by SCHED_MC_PRIO [y] (arch/x86/Kconfig:1073)",
        "cannot be lower than y: it is selected",
    ] {
        assert!(report.contains(reason), "missing {reason:?} in\n{report}");
    }
}

/// A tree with a tiny top Makefile (for KERNELVERSION) and the given Kconfig files.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = support::tempdir();
    fs::write(dir.path().join("Makefile"), "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION =\n")
        .unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn explain_names_the_imply_and_agrees_with_conf() {
    let Some(kernel) = kernel() else { return };
    let dir = tree(&[(
        "Kconfig",
        "config MODULES\n\tbool \"modules\"\n\tmodules\n\tdefault y\n\
         config FOO\n\tbool \"foo\"\n\timply BAZ\n\
         config BAR\n\ttristate \"bar\"\n\
         config BAZ\n\ttristate \"baz\"\n\tdepends on BAR\n",
    )]);
    let config = dir.path().join("request.config");
    let input = "CONFIG_FOO=y\nCONFIG_BAR=m\nCONFIG_BAZ=y\n";
    fs::write(&config, input).unwrap();
    let conf = {
        let _lock = kernel.lock();
        kernel.conf()
    };
    let work = support::tempdir();
    fs::write(work.path().join(".config"), "CONFIG_FOO=y\nCONFIG_BAR=m\n").unwrap();
    support::ok(
        Command::new(conf)
            .args(["--olddefconfig", "Kconfig"])
            .env("srctree", dir.path())
            .current_dir(work.path()),
    );
    let expected = fs::read_to_string(work.path().join(".config")).unwrap();
    assert!(expected.contains("CONFIG_BAZ=m\n"), "{expected}");
    fs::write(&config, "CONFIG_FOO=y\nCONFIG_BAR=m\n").unwrap();
    let out = dir.path().join("out.config");
    support::ok(
        support::kiln()
            .args(["kconfig", "olddefconfig", "--srctree"])
            .arg(dir.path())
            .arg(&config)
            .arg("--out")
            .arg(&out),
    );
    assert_same("imply", &expected, &fs::read_to_string(&out).unwrap());
    fs::write(&config, input).unwrap();
    let report = support::ok(
        support::kiln().args(["kconfig", "explain", "--srctree"]).arg(dir.path()).arg(&config).arg("BAZ"),
    );
    for reason in [
        "CONFIG_BAZ=m",
        "requested y",
        "set to y by the configuration",
        "limited to m by its prompt's condition",
    ] {
        assert!(report.contains(reason), "missing {reason:?} in\n{report}");
    }
    fs::write(&config, "CONFIG_FOO=y\nCONFIG_BAR=m\n").unwrap();
    let report = support::ok(
        support::kiln().args(["kconfig", "explain", "--srctree"]).arg(dir.path()).arg(&config).arg("BAZ"),
    );
    assert!(report.contains("implied by FOO [y] (Kconfig:7)"), "{report}");
}

#[test]
fn malformed_trees_fail_with_file_and_line() {
    for (files, expected) in [
        (
            &[("Kconfig", "config A\n\tbool \"a\"\n\tfrobnicate\n")][..],
            "Kconfig:3: unknown statement \"frobnicate\"",
        ),
        (&[("Kconfig", "config A\n\tbool \"a\n")][..], "Kconfig:2: unterminated string"),
        (&[("Kconfig", "config A\n\tbool \"a\"\n\tdepends on (B && \n")][..], "Kconfig:3: syntax error"),
        (&[("Kconfig", "config A\n\tbool \"a\" if B ||\n")][..], "Kconfig:2: syntax error"),
        (
            &[
                ("Kconfig", "menu \"m\"\nsource \"sub/Kconfig\"\nendmenu\n"),
                ("sub/Kconfig", "\nsource \"missing/Kconfig\"\n"),
            ][..],
            "sub/Kconfig:2: can't open file \"missing/Kconfig\"",
        ),
        (
            &[("Kconfig", "X = $(Y)\nY = $(X)\nconfig A\n\tbool \"$(X)\"\n")][..],
            "Kconfig:4: Recursive variable 'X' references itself",
        ),
        (
            &[("Kconfig", "config A\n\tbool \"a\"\n\tdefault $(shell,echo y\n")][..],
            "Kconfig:3: unterminated reference",
        ),
        (
            &[("Kconfig", "menu \"m\"\nconfig A\n\tbool \"a\"\nendif\n")][..],
            "Kconfig:4: unexpected 'endif' within menu block",
        ),
        (&[("Kconfig", "source \"Kconfig\"\n")][..], "Kconfig:1: recursive inclusion"),
        (&[("Kconfig", "$(error-if,y,toolchain not supported)\n")][..], "Kconfig:1: toolchain not supported"),
    ] {
        let dir = tree(files);
        let config = dir.path().join("x.config");
        fs::write(&config, "").unwrap();
        let output = support::run(
            support::kiln().args(["kconfig", "olddefconfig", "--srctree"]).arg(dir.path()).arg(&config),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// A small tree with the corner cases of 6.12's semantics: imply, ranges, MODULES=n, `visible if`,
/// choices (priority, defaults, explicit n), selects of invisible symbols, symbols defined twice,
/// comparisons, strings, hex, comments and menus.
const CORNERS: &str = r#"mainmenu "Corner cases"
config MODULES
	bool "modules"
	modules
	default y
config FOO
	bool "foo"
	imply BAZ
config BAR
	tristate "bar"
config BAZ
	tristate "baz"
	depends on BAR
config NUM
	int "num"
	range 10 20 if FOO
	range 1 5
	default 12
config HX
	hex "hx"
	range 0x10 0xff
	default 0x20
config TRI
	tristate "tri"
	default m
config DEP_M
	tristate "dep m"
	depends on m
	default y
menu "Hidden"
	visible if n
config INV
	bool "inv"
	default y
comment "a comment in a hidden menu"
endmenu
choice
	prompt "pick"
	default C2
config C1
	bool "c1"
config C2
	bool "c2"
	depends on !FOO || BAR
config C3
	bool "c3"
endchoice
config SEL
	bool
	depends on BAR
config SELECTOR
	bool "selector"
	select SEL
if FOO
config TWICE
	bool "twice"
endif
menu "Numbers"
	depends on NUM > 3
config BIG
	def_bool NUM >= 15
config HEXCMP
	def_bool HX = 0x20
config STRCMP
	def_bool STR = "a\"b"
config STR
	string "str"
	default "a\"b"
endmenu
config TWICE
	bool
	default y if BAR
comment "end"
	depends on TRI
"#;

#[test]
fn corner_cases_match_conf() {
    let Some(kernel) = kernel() else { return };
    let dir = tree(&[("Kconfig", CORNERS)]);
    let conf = {
        let _lock = kernel.lock();
        kernel.conf()
    };
    let configs = [
        "",
        "CONFIG_FOO=y\nCONFIG_BAR=m\n",
        "CONFIG_FOO=y\nCONFIG_BAR=y\n# CONFIG_BAZ is not set\nCONFIG_NUM=99\nCONFIG_HX=ff\n",
        "# CONFIG_MODULES is not set\nCONFIG_TRI=m\nCONFIG_BAR=m\nCONFIG_DEP_M=m\n# CONFIG_INV is not set\n",
        "CONFIG_C1=y\nCONFIG_C3=y\nCONFIG_NUM=2\nCONFIG_STR=\"x\\\\y\\\"z\"\n",
        "CONFIG_FOO=y\n# CONFIG_C1 is not set\n# CONFIG_C3 is not set\nCONFIG_SELECTOR=y\n",
        "# CONFIG_C2 is not set\nCONFIG_BAR=y\nCONFIG_SELECTOR=y\nCONFIG_NUM=007\nCONFIG_TWICE=y\n",
        "CONFIG_C2=y\nCONFIG_C1=y\n# CONFIG_TRI is not set\nCONFIG_HX=0x5\nCONFIG_BAR=m\nCONFIG_BAZ=y\n",
    ];
    let mut outputs = std::collections::BTreeSet::new();
    for input in configs {
        let work = support::tempdir();
        fs::write(work.path().join(".config"), input).unwrap();
        support::ok(
            Command::new(&conf)
                .args(["--olddefconfig", "Kconfig"])
                .env("srctree", dir.path())
                .current_dir(work.path()),
        );
        let expected = fs::read_to_string(work.path().join(".config")).unwrap();
        let config = work.path().join("kiln.config");
        fs::write(&config, input).unwrap();
        support::ok(
            support::kiln().args(["kconfig", "olddefconfig", "--srctree"]).arg(dir.path()).arg(&config),
        );
        assert_same(
            &format!("corner cases with {input:?}"),
            &expected,
            &fs::read_to_string(&config).unwrap(),
        );
        outputs.insert(expected);
    }
    assert_eq!(outputs.len(), configs.len(), "every input gives a different configuration");
}

#[test]
fn dependency_cycles_are_reported_like_conf_refuses_them() {
    let Some(kernel) = kernel() else { return };
    let dir = tree(&[(
        "Kconfig",
        "config A\n\tbool \"a\"\n\tdepends on B\nconfig B\n\tbool \"b\"\n\tdefault y if A\n",
    )]);
    let conf = {
        let _lock = kernel.lock();
        kernel.conf()
    };
    let work = support::tempdir();
    fs::write(work.path().join(".config"), "").unwrap();
    let c = support::run(
        Command::new(conf)
            .args(["--olddefconfig", "Kconfig"])
            .env("srctree", dir.path())
            .current_dir(work.path()),
    );
    assert!(
        !c.status.success() && String::from_utf8_lossy(&c.stderr).contains("recursive dependency detected")
    );
    let config = work.path().join("kiln.config");
    fs::write(&config, "").unwrap();
    let output = support::run(
        support::kiln().args(["kconfig", "olddefconfig", "--srctree"]).arg(dir.path()).arg(&config),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("warning: recursive dependency detected: the value of "), "{stderr}");
}
