//! `kiln kconfig merge|check|diff` against the kernel's own `scripts/kconfig/merge_config.sh`
//! (Linux 6.12) on the same inputs: same merged file, same messages, same check report.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

/// Fragments that conflict with each other and with x86_64_defconfig, with values that cannot
/// stick (a bool set to m, an option whose dependency is a module, an unknown symbol), strings
/// with runs of blanks, and a redundant value.
const FRAGMENT_ONE: &str = "\
# Solana-style tuning
CONFIG_HUGETLBFS=y
CONFIG_TCP_CONG_BBR=m
CONFIG_DEFAULT_BBR=y
CONFIG_IO_URING=y
CONFIG_NR_CPUS=512
CONFIG_CMDLINE_BOOL=y
CONFIG_CMDLINE=\"hugepages=16  quiet\"
# CONFIG_NUMA_BALANCING_DEFAULT_ENABLED is not set
CONFIG_SMP=y
";
const FRAGMENT_TWO: &str = "\
# CONFIG_IO_URING is not set
CONFIG_HUGETLBFS=m
CONFIG_NOT_A_REAL_SYMBOL=y
CONFIG_TCP_CONG_BBR=y
CONFIG_NR_CPUS=64
CONFIG_CMDLINE=\"hugepages=32   quiet\"
CONFIG_DEFAULT_BBR=y
";

struct Case {
    _work: tempfile::TempDir,
    dir: PathBuf,
    names: Vec<&'static str>,
}

/// A scratch directory with base.config (x86_64_defconfig), one.config and two.config; inputs
/// are named relative to it, as a user would type them.
fn case(linux: &Path) -> Case {
    let work = support::tempdir();
    let dir = work.path().to_owned();
    fs::copy(linux.join("arch/x86/configs/x86_64_defconfig"), dir.join("base.config")).unwrap();
    fs::write(dir.join("one.config"), FRAGMENT_ONE).unwrap();
    fs::write(dir.join("two.config"), FRAGMENT_TWO).unwrap();
    Case { _work: work, dir, names: vec!["base.config", "one.config", "two.config"] }
}

fn script(linux: &Path) -> PathBuf {
    linux.join("scripts/kconfig/merge_config.sh")
}

#[test]
fn merge_matches_merge_config_sh() {
    let Some(linux) = support::linux_source() else { return };
    for flags in [&[][..], &["-r"], &["-y"], &["-Q"], &["-y", "-r"]] {
        let case = case(&linux);
        fs::create_dir(case.dir.join("script-out")).unwrap();
        let script_output = support::ok(
            Command::new("bash")
                .arg(script(&linux))
                .args(flags)
                .args(["-m", "-O", "script-out"])
                .args(&case.names)
                .current_dir(&case.dir),
        );
        // The script ends with three lines about where it wrote the file; kiln says nothing.
        let expected: Vec<&str> = script_output.lines().collect();
        let expected = &expected[..expected.len() - 3];

        let output = support::run(
            support::kiln()
                .args(["kconfig", "merge"])
                .args(flags)
                .args(["--out", "kiln.config"])
                .args(&case.names)
                .current_dir(&case.dir),
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let messages = String::from_utf8_lossy(&output.stderr);
        assert_eq!(messages.lines().collect::<Vec<_>>(), expected, "messages with {flags:?}");
        assert_eq!(
            fs::read_to_string(case.dir.join("kiln.config")).unwrap(),
            fs::read_to_string(case.dir.join("script-out/.config")).unwrap(),
            "merged file with {flags:?}"
        );
        // Not a vacuous comparison: the fragments conflict.
        assert!(
            flags.contains(&"-Q") || messages.contains("is redefined by fragment two.config:"),
            "{messages}"
        );
    }
}

#[test]
fn strict_mode_fails_like_the_script() {
    let Some(linux) = support::linux_source() else { return };
    let case = case(&linux);
    let script = support::run(
        Command::new("bash").arg(script(&linux)).args(["-s", "-m"]).args(&case.names).current_dir(&case.dir),
    );
    assert_eq!(script.status.code(), Some(1));
    let output = support::run(
        support::kiln().args(["kconfig", "merge", "-s"]).args(&case.names).current_dir(&case.dir),
    );
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let script_stdout = String::from_utf8_lossy(&script.stdout);
    assert!(script_stdout.contains(kiln_strict_message()), "{script_stdout}");
    assert!(stderr.contains(kiln_strict_message()), "{stderr}");
    assert!(stderr.contains("error: a fragment redefined a value and strict mode was requested"), "{stderr}");
}

fn kiln_strict_message() -> &'static str {
    "The fragment redefined a value and strict mode had been passed."
}

#[test]
fn check_reports_what_merge_config_sh_reports() {
    let Some(linux) = support::linux_source() else { return };
    if !support::require_tool("make") || !support::require_tool("gcc") {
        return;
    }
    let case = case(&linux);
    let build = case.dir.join("build");
    fs::create_dir(&build).unwrap();
    let inputs: Vec<PathBuf> = case.names.iter().map(|n| case.dir.join(n)).collect();
    // The script runs `make alldefconfig` in the source tree with O=, then prints its check.
    let script_output = support::ok(
        Command::new("bash")
            .arg(script(&linux))
            .arg("-O")
            .arg(&build)
            .args(&inputs)
            .current_dir(&linux)
            .env("ARCH", "x86_64"),
    );
    let start =
        script_output.find("Value requested for").expect("the fragments have values that cannot stick");
    let expected = &script_output[start..];

    let output =
        support::run(support::kiln().args(["kconfig", "check"]).arg(build.join(".config")).args(&inputs));
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(report, expected);
    for dropped in ["CONFIG_HUGETLBFS", "CONFIG_NOT_A_REAL_SYMBOL", "CONFIG_NUMA_BALANCING_DEFAULT_ENABLED"] {
        assert!(report.contains(&format!("Value requested for {dropped} not in final .config")), "{report}");
    }

    // The final .config against itself: nothing missing.
    let clean = support::run(
        support::kiln().args(["kconfig", "check"]).arg(build.join(".config")).arg(build.join(".config")),
    );
    assert_eq!(clean.status.code(), Some(0), "{}", String::from_utf8_lossy(&clean.stdout));

    // diff of the base against the final config names symbols changed by the fragments.
    let diff =
        support::run(support::kiln().args(["kconfig", "diff"]).arg(&inputs[0]).arg(build.join(".config")));
    assert_eq!(diff.status.code(), Some(1));
    let diff = String::from_utf8_lossy(&diff.stdout);
    for line in [" HUGETLBFS y -> n", "+NR_CPUS 64", "+TCP_CONG_BBR y", "+CMDLINE \"hugepages=32   quiet\""] {
        assert!(diff.lines().any(|l| l == line), "missing {line:?} in:\n{diff}");
    }
}
