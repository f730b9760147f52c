//! `kiln sandbox`: the build sandbox seen from the command line — the host environment does not
//! leak in, killing kiln kills the step, it runs as an ordinary user, and refused user
//! namespaces are explained.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_secret_in_kilns_environment_does_not_reach_the_step() {
    let output = support::run(
        support::kiln()
            .env("KILN_TEST_SECRET", "hunter2")
            .env("LANG", "de_DE.UTF-8")
            .env("TZ", "Pacific/Auckland")
            .args(["sandbox", "--env", "PASSED=yes", "env | sort"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let env = String::from_utf8_lossy(&output.stdout);
    assert!(!env.contains("hunter2") && !env.contains("de_DE"), "{env}");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
    assert_eq!(names, ["HOME", "LC_ALL", "PASSED", "PATH", "PWD", "SHELL", "SOURCE_DATE_EPOCH", "TZ"]);
    assert!(env.contains("TZ=UTC\n") && env.contains("PASSED=yes\n"), "{env}");
}

#[test]
fn the_umask_is_fixed() {
    let output = support::run(
        Command::new("sh")
            .arg("-c")
            .arg("umask 077 && exec \"$0\" sandbox 'umask; touch /out/f; stat -c %a /out/f'")
            .arg(env!("CARGO_BIN_EXE_kiln")),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "0022\n644\n");
}

#[test]
fn a_failing_script_exits_1_and_bad_arguments_2() {
    let output = support::run(support::kiln().args(["sandbox", "echo before; exit 7"]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "before\n");
    assert!(stderr(&output).contains("exit code 7"), "{}", stderr(&output));
    for bad in [["--input", "relative"], ["--input", "/nonexistent:/x"], ["--env", "=x"]] {
        let output = support::run(support::kiln().arg("sandbox").args(bad).arg("true"));
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(stderr(&output).contains(bad[1]), "{}", stderr(&output));
    }
}

/// Processes whose command line contains `token`.
fn processes_with(token: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(token) && !cmdline.contains("kiln sandbox") {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn killing_kiln_kills_every_process_of_the_step() {
    use rustix::process::{Pid, Signal, kill_process};
    // Ctrl-C (SIGINT), a plain kill (SIGTERM) and kill -9 alike.
    for (round, signal) in [Signal::INT, Signal::TERM, Signal::KILL].into_iter().enumerate() {
        // A unique sleep length marks the step's processes: a shell, a background child, a
        // grandchild in its own session, and the foreground sleep.
        let seconds = 900_000 + (std::process::id() * 3 + round as u32) % 99_999;
        let token = format!("sleep {seconds}");
        let script = format!("{token} & setsid sh -c '{token}' & {token}");
        let mut kiln = support::kiln().args(["sandbox", &script]).spawn().unwrap();
        let started = Instant::now();
        while processes_with(&token).len() < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the step did not start: {:?}",
                processes_with(&token)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_process(Pid::from_child(&kiln), signal).unwrap();
        kiln.wait().unwrap();
        let killed = Instant::now();
        while !processes_with(&token).is_empty() {
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "processes of the step outlived kiln ({signal:?}): {:?}",
                processes_with(&token)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn runs_as_an_ordinary_user() {
    let work = support::tempdir();
    let build = work.path().join("build");
    fs::create_dir(&build).unwrap();
    let mut command = if support::is_root() {
        fs::set_permissions(&build, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let Some(command) = support::kiln_as_nobody(work.path()) else { return };
        command
    } else {
        support::kiln()
    };
    // The device nodes are the host's: an ordinary user's step writes them as any program does.
    let script = "id -u; echo made >made; echo discarded >/dev/null; head -c 4 /dev/zero >zeros";
    let output = support::run(command.args(["sandbox", "--build"]).arg(&build).arg(script));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "0\n");
    assert_eq!(fs::read_to_string(build.join("made")).unwrap(), "made\n");
    let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(build.join("made")).unwrap());
    let expected = if support::is_root() { 65534 } else { rustix::process::geteuid().as_raw() };
    assert_eq!(owner, expected, "files the step makes belong to the user running kiln");
}

#[test]
fn refused_user_namespaces_are_explained() {
    if !support::require_tool("unshare") {
        return;
    }
    // A user namespace whose own limit on nested user namespaces is 0 stands for a host that
    // refuses them.
    let output = support::run(
        Command::new("unshare")
            .args([
                "-Ur",
                "sh",
                "-c",
                "echo 0 >/proc/sys/user/max_user_namespaces && exec \"$0\" sandbox true",
            ])
            .arg(Path::new(env!("CARGO_BIN_EXE_kiln"))),
    );
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{message}");
    assert!(message.contains("refuses user namespaces"), "{message}");
    assert!(message.contains("hint: allow unprivileged user namespaces"), "{message}");
    assert!(message.contains("user.max_user_namespaces = 0"), "{message}");
}

/// Every attack `escape.c` makes, as it names them: each must be refused.
const ESCAPES: [&str; 33] = [
    "in the step's namespaces: remount the toolchain writable: mount",
    "in the step's namespaces: remount the input writable: mount",
    "in the step's namespaces: clear the input's read-only flag: mount_setattr",
    "in the step's namespaces: clear the toolchain's read-only flag: mount_setattr",
    "in the step's namespaces: bind /build over the input: mount",
    "in the step's namespaces: tmpfs over the toolchain: mount",
    "in the step's namespaces: unmount the input: umount2",
    "in the step's namespaces: unmount the toolchain: umount2",
    "in the step's namespaces: mount a new proc: mount",
    "in the step's namespaces: attach a clone of /build over the input: open_tree",
    "in the step's namespaces: attach a new tmpfs over the toolchain: fsopen",
    "in the step's namespaces: pivot the root: pivot_root",
    "new mount namespace: unshare",
    "new user and mount namespaces: unshare",
    "new user namespace: clone",
    "new user namespace: clone3",
    "write the input's file: open",
    "append to the input's file: open",
    "create a file in the input: open",
    "chmod the input's file: chmod",
    "chown the input's file: chown",
    "set an attribute on the input's file: setxattr",
    "write a toolchain file: open",
    "create a file in the toolchain: open",
    "chmod a toolchain file: chmod",
    "deny setgroups: open",
    "set a kernel parameter: open",
    "chmod the null device: chmod",
    "chown the null device: chown",
    "open the terminal: open",
    "read the session keyring: keyctl",
    "add a key: add_key",
    "raise every capability: capset",
];

/// Runs tests/cli/escape.c inside a step with `kiln` (as root, or as the user it is given) and
/// checks that every attack was refused and that nothing on the host changed.
fn escapes_are_refused(kiln: impl FnOnce(&Path) -> Option<Command>) {
    if !support::require_tool("gcc") {
        return;
    }
    let work = support::tempdir();
    fs::set_permissions(work.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let prober = work.path().join("escape");
    support::ok(
        Command::new("gcc")
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&prober)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/escape.c")),
    );
    let input = work.path().join("input");
    fs::create_dir(&input).unwrap();
    fs::write(input.join("data"), "cached output\n").unwrap();
    let build = work.path().join("build");
    fs::create_dir(&build).unwrap();
    fs::set_permissions(&build, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let core_pattern = fs::read("/proc/sys/kernel/core_pattern").unwrap();
    let null_mode = fs::metadata("/dev/null").unwrap().permissions();
    let Some(mut command) = kiln(work.path()) else { return };
    let output = support::run(
        command
            .args(["sandbox", "--build"])
            .arg(&build)
            .arg("--input")
            .arg(format!("{}:/probe/escape", prober.display()))
            .arg("--input")
            .arg(format!("{}:/inputs/victim", input.display()))
            .arg("/probe/escape /usr/bin/gcc /inputs/victim"),
    );
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    support::eprintln_skip(&format!("(figure) escapes, each with the call that refused it:\n{report}"));
    assert!(output.status.success(), "{report}{}", stderr(&output));
    assert!(report.ends_with("done\n"), "the prober ran to its end: {report}");
    let allowed: Vec<&str> = report.lines().filter(|line| line.starts_with("ALLOWED")).collect();
    assert!(allowed.is_empty(), "escapes: {allowed:?}");
    for attack in ESCAPES {
        let refused = format!("refused: {attack}: E");
        assert!(report.lines().any(|line| line.starts_with(&refused)), "{attack} was not refused:\n{report}");
    }
    // Nothing on the host moved.
    assert_eq!(fs::read_to_string(input.join("data")).unwrap(), "cached output\n");
    assert_eq!(fs::read_dir(&input).unwrap().count(), 1);
    assert!(!Path::new("/usr/kiln-escape").exists());
    assert_eq!(fs::read("/proc/sys/kernel/core_pattern").unwrap(), core_pattern);
    assert_eq!(fs::metadata("/dev/null").unwrap().permissions(), null_mode);
}

#[test]
fn mount_and_capability_escapes_are_refused_as_the_user_running_kiln() {
    escapes_are_refused(|_| Some(support::kiln()));
}

#[test]
fn mount_and_capability_escapes_are_refused_as_an_unprivileged_user() {
    if !support::is_root() {
        // Already the case above; switching users needs root.
        support::eprintln_skip("not root: the test above already ran as an unprivileged user");
        return;
    }
    escapes_are_refused(support::kiln_as_nobody);
}

/// A step that tries to change another step's cached output through its input mount: its
/// attempts fail, and the step after it reads the output as it was made.
#[test]
fn a_step_cannot_change_the_cached_output_it_reads() {
    let work = support::tempdir();
    let recipe = work.path().join("recipe");
    fs::create_dir(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        r#"[recipe]
name = "tamper"

[steps.made]
script = "echo original >/out/file"

[steps.tamper]
inputs = ["made"]
script = """
mount -o remount,rw,bind /inputs/made 2>&1 || true
echo tampered >/inputs/made/file 2>&1 || true
chmod 777 /inputs/made/file 2>&1 || true
umount -l /inputs/made 2>&1 || true
echo tried >/out/tried
"""

[steps.reader]
inputs = ["made", "tamper"]
script = "cat /inputs/made/file >/out/read; stat -c %a /inputs/made/file >>/out/read"

[images."read:v1"]
from = "reader"
"#,
    )
    .unwrap();
    let cache = work.path().join("cache");
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", &cache)
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(work.path().join("out"))
            .arg("--json"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let built: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let key = |name: &str| {
        built["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let read = fs::read_to_string(cache.join("steps").join(key("reader")).join("out/read")).unwrap();
    assert_eq!(read, "original\n644\n");
    let made = cache.join("steps").join(key("made")).join("out/file");
    assert_eq!(fs::read_to_string(made).unwrap(), "original\n");
}

/// A step that prints 100 MB without a newline: the log gets every byte, kiln's memory stays
/// small (peak RSS measured by GNU time).
#[test]
fn an_endless_line_costs_no_memory() {
    if !support::require_tool("/usr/bin/time") {
        return;
    }
    let work = support::tempdir();
    let recipe = work.path().join("recipe");
    fs::create_dir(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        "[recipe]\nname = \"loud\"\n\n[steps.loud]\nscript = \"head -c 100000000 /dev/zero | tr '\\\\0' x; echo >/out/done\"\n\n[images.\"loud:v1\"]\nfrom = \"loud\"\n",
    )
    .unwrap();
    let output = support::run(
        Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .env("KILN_CACHE", work.path().join("cache"))
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(work.path().join("out")),
    );
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    let kilobytes: u64 = text.lines().last().unwrap().trim().parse().unwrap();
    support::eprintln_skip(&format!(
        "(figure) peak RSS of a build whose step prints a 100 MB line: {kilobytes} KiB"
    ));
    assert!(kilobytes < 64 * 1024, "{kilobytes} KiB");
    let logs = support::ok(
        Command::new("find").arg(work.path().join("cache/steps")).args(["-name", "log", "-size", "+90M"]),
    );
    assert!(!logs.trim().is_empty(), "the log holds the whole line");
}
