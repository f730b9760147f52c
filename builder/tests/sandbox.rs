//! The sandbox's isolation, checked from inside: network, file system, environment, hostname.

#![expect(clippy::unwrap_used, reason = "tests fail on any unexpected error")]

use std::net::TcpListener;
use std::path::Path;

use kiln_builder::sandbox::{self, Exit, Input, Isolation, Namespaces, Spec};
use kiln_reproducible::Epoch;

/// Runs `script` in a sandbox over `dir/build` and `dir/out`; returns its output and exit.
fn run(dir: &Path, script: &str, adjust: impl FnOnce(&mut Spec)) -> (String, Exit) {
    let (build, out) = (dir.join("build"), dir.join("out"));
    std::fs::create_dir_all(&build).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let mut spec = Spec::new(&build, &out, Epoch::parse("1700000000").unwrap());
    adjust(&mut spec);
    let (mut reader, writer) = std::io::pipe().unwrap();
    std::thread::scope(|scope| {
        let running = scope.spawn(|| Namespaces.run(&spec, script, writer));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
        (text, running.join().unwrap().unwrap())
    })
}

#[test]
fn a_listener_on_the_host_loopback_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo reached; else echo unreachable; fi"
    );
    let (output, exit) = run(dir.path(), &script, |_| {});
    assert_eq!((output.as_str(), exit), ("unreachable\n", Exit::Code(0)));
    assert!(listener.accept().is_err(), "nothing connected to the host listener");
    // The same probe from the host reaches it: the probe itself works.
    let probe = std::process::Command::new("bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
        .status()
        .unwrap();
    assert!(probe.success());
}

#[test]
fn only_the_loopback_device_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (output, exit) = run(dir.path(), "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", |_| {});
    assert_eq!(exit, Exit::Code(0));
    assert_eq!(output, "lo\n");
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert!(host.lines().count() > 2, "the host has devices of its own: {host}");
}

#[test]
fn writes_land_only_in_build_out_and_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
for target in /x /etc/x /usr/x /bin/x /input/x /proc/x; do
  if touch "$target" 2>/dev/null; then echo "wrote $target"; fi
done
echo b >/build/b; echo o >/out/o; echo t >/tmp/t; cat /tmp/t /input/i
# /tmp and /dev are the sandbox's own, in memory.
touch /tmp/kiln-sandbox-private /dev/kiln-sandbox-private
"#;
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("i"), "i\n").unwrap();
    let (output, exit) = run(dir.path(), script, |spec| {
        spec.inputs.push(Input { host: input.clone(), path: "/input".into() })
    });
    assert_eq!((output.as_str(), exit), ("t\ni\n", Exit::Code(0)));
    assert_eq!(std::fs::read_to_string(dir.path().join("build/b")).unwrap(), "b\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("out/o")).unwrap(), "o\n");
    assert_eq!(std::fs::read_dir(&input).unwrap().count(), 1, "the input is unchanged");
    assert!(!Path::new("/tmp/kiln-sandbox-private").exists());
    assert!(!Path::new("/dev/kiln-sandbox-private").exists());
}

#[test]
fn the_environment_is_fixed_and_nothing_leaks_from_the_host() {
    let dir = tempfile::tempdir().unwrap();
    // Cargo sets CARGO_* and the harness's own environment has HOME, PATH…: none may show.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
    let (output, exit) = run(dir.path(), "env | sort; hostname; id -u; pwd; umask", |spec| {
        spec.env.insert("KBUILD_BUILD_USER".into(), "kiln".into());
    });
    assert_eq!(exit, Exit::Code(0));
    let expected = "HOME=/build\nKBUILD_BUILD_USER=kiln\nLC_ALL=C\nPATH=/usr/bin:/bin:/usr/sbin:/sbin\n\
                    PWD=/build\nSHELL=/bin/sh\nSOURCE_DATE_EPOCH=1700000000\nTZ=UTC\nkiln\n0\n/build\n0022\n";
    assert!(output.starts_with(expected), "{output}");
}

#[test]
fn a_failing_step_reports_its_exit_and_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (build, out) = (dir.path().join("build"), dir.path().join("out"));
    std::fs::create_dir_all(&build).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let spec = Spec::new(&build, &out, Epoch::parse("0").unwrap());
    let log = dir.path().join("step.log");
    let mut lines = Vec::new();
    let error = sandbox::run_logged(
        &Namespaces,
        &spec,
        "for i in $(seq 1 30); do echo line $i; done; echo oops >&2; exit 3",
        &log,
        &mut |line| lines.push(line.to_owned()),
    )
    .unwrap_err();
    assert_eq!(lines.len(), 31);
    assert_eq!(lines[30], "oops");
    let kiln_builder::Error::StepFailed { exit, log: path, tail } = &error else { panic!("{error:?}") };
    assert_eq!((*exit, path.as_path()), (Exit::Code(3), log.as_path()));
    assert_eq!(tail.len(), 20);
    assert_eq!(tail.last().unwrap(), "oops");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 31);
    let message = error.to_string();
    assert!(message.contains("exit code 3") && message.contains("line 30") && message.contains("step.log"));
}
