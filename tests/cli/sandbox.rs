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
    let output = support::run(command.args(["sandbox", "--build"]).arg(&build).arg("id -u; echo made >made"));
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
