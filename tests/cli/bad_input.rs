//! Bad input gets a clear error naming the path, the documented exit code, and never a
//! partial layout.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{self, PLAIN};

/// Runs `kiln pack` of `tree` into `out`.
fn pack(tree: &Path, out: &Path) -> Output {
    support::run(support::kiln().arg("pack").arg(tree).args(["--ref", "bad:v1", "--out"]).arg(out))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Nothing was left behind in `parent` besides `keep`.
fn assert_no_leftovers(parent: &Path, keep: &[&str]) {
    let mut names: Vec<String> = fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, keep, "unexpected files in {}", parent.display());
}

#[test]
fn sockets_and_fifos_are_refused_by_name() {
    let (work, tree) = support::fixture();
    let out = work.path().join("out");

    let socket = tree.join("run/control.sock");
    fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(&socket).unwrap();
    let output = pack(&tree, &out);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("{} is a socket", socket.display())), "{message}");
    assert!(message.contains("hint: "), "{message}");
    assert_no_leftovers(work.path(), &["tree"]);
    drop(listener);
    fs::remove_file(&socket).unwrap();

    let fifo = tree.join("run/pipe");
    support::ok(Command::new("mkfifo").arg(&fifo));
    let output = pack(&tree, &out);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains(&format!("{} is a FIFO", fifo.display())), "{}", stderr(&output));
    assert_no_leftovers(work.path(), &["tree"]);
}

#[test]
fn a_failed_pack_leaves_an_existing_layout_untouched() {
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    support::pack(&tree, &out, "good:v1", &[]);
    let before = support::tree_listing(&out);
    support::ok(Command::new("mkfifo").arg(tree.join("usr/zz-fifo")));
    let output = pack(&tree, &out);
    assert_eq!(output.status.code(), Some(3));
    // Same files (no temporary blob left), same index.
    assert_eq!(support::tree_listing(&out), before);
}

#[test]
fn unreadable_files_and_directories_are_named() {
    let work = support::tempdir();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o777)).unwrap();
    for unreadable in ["etc/os-release", "usr/lib"] {
        let tree = work.path().join("tree");
        support::write_fixture(&tree, PLAIN);
        let path = tree.join(unreadable);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        let out = work.path().join("out");
        let output = if support::is_root() {
            // root reads everything; run as nobody so permissions apply.
            let Some(mut nobody) = support::kiln_as_nobody(work.path()) else { return };
            support::run(nobody.arg("pack").arg(&tree).args(["--ref", "bad:v1", "--out"]).arg(&out))
        } else {
            pack(&tree, &out)
        };
        assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
        let message = stderr(&output);
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("Permission denied"), "{message}");
        assert!(message.contains("hint: check the permissions"), "{message}");
        let expected: &[&str] = if support::is_root() { &["kiln", "tree"] } else { &["tree"] };
        assert_no_leftovers(work.path(), expected);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        fs::remove_dir_all(&tree).unwrap();
    }
}

#[test]
fn bad_arguments_and_environment_have_their_exit_codes() {
    let (work, tree) = support::fixture();

    // Usage: a reference without a tag.
    let output = support::run(support::kiln().arg("pack").arg(&tree).args(["--ref", "NoTag", "--out", "x"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("missing `:TAG`"), "{}", stderr(&output));

    // Input: SOURCE_DATE_EPOCH that is not a number of seconds.
    let output = support::run(
        support::kiln()
            .env("SOURCE_DATE_EPOCH", "yesterday")
            .arg("pack")
            .arg(&tree)
            .args(["--ref", "a:b", "--out"])
            .arg(work.path().join("o")),
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("SOURCE_DATE_EPOCH=\"yesterday\""), "{}", stderr(&output));

    // Input: the tree is a file; the output is a file.
    let file = tree.join("etc/hostname");
    let output = pack(&file, &work.path().join("o"));
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains(&format!("{} is not a directory", file.display())));
    let outside = work.path().join("o-file");
    fs::write(&outside, "a file").unwrap();
    let output = pack(&tree, &outside);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("exists and is not an OCI image layout"), "{}", stderr(&output));
    fs::remove_file(&outside).unwrap();

    // Input: inspecting something that is not a layout names what is missing.
    let output = support::run(support::kiln().arg("inspect").arg(&tree));
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("has no oci-layout file"), "{}", stderr(&output));
    assert_no_leftovers(work.path(), &["tree"]);
}

#[test]
fn a_corrupt_blob_is_detected_by_inspect() {
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    let digest = support::pack(&tree, &out, "img:v1", &[]);
    let manifest = support::blob_json(&out, &digest);
    let config = support::blob_path(&out, manifest["config"]["digest"].as_str().unwrap());
    let mut bytes = fs::read(&config).unwrap();
    bytes[10] ^= 1;
    fs::write(&config, bytes).unwrap();
    let output = support::run(support::kiln().arg("inspect").arg(&out));
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("has digest sha256:"), "{}", stderr(&output));
    assert!(stderr(&output).contains("hint: the layout is corrupt"), "{}", stderr(&output));
}

#[test]
fn a_layout_inside_the_tree_it_packs_is_refused() {
    let (work, tree) = support::fixture();
    for out in [tree.join("layout"), tree.clone(), tree.join("a/deeper/layout")] {
        let output =
            support::run(support::kiln().arg("pack").arg(&tree).args(["--ref", "x:1", "--out"]).arg(&out));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{}: {stderr}", out.display());
        assert!(stderr.contains("is inside the tree"), "{stderr}");
    }
    assert!(!tree.join("layout").exists() && !tree.join("a/deeper").exists());
    assert_no_leftovers(work.path(), &["tree"]);
}

/// `kill -9` in the middle of a pack leaves its staging directory (a new layout) or its blob's
/// temporary file (an existing one); the next pack there removes them, and leaves a live pack's
/// alone.
#[test]
fn what_a_killed_pack_left_is_removed_by_the_next() {
    use rustix::process::{Pid, Signal, kill_process};
    let (work, tree) = support::fixture();
    // Incompressible bytes, so the pack takes long enough to be killed in the middle.
    let mut noise = vec![0u8; 256 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for byte in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    fs::write(tree.join("noise"), &noise).unwrap();
    let existing = work.path().join("existing");
    support::ok(
        support::kiln()
            .arg("pack")
            .arg(work.path().join("tree/etc"))
            .args(["--ref", "small:1", "--out"])
            .arg(&existing),
    );
    for (out, leftover) in
        [(work.path().join("new"), work.path().to_owned()), (existing.clone(), existing.join("blobs/sha256"))]
    {
        let mut child = support::kiln()
            .arg("pack")
            .arg(&tree)
            .args(["--ref", "big:1", "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let hidden = |dir: &Path| -> Vec<String> {
            fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(".kiln-layout-") || name.starts_with(".tmp-"))
                .collect()
        };
        let started = std::time::Instant::now();
        while hidden(&leftover).is_empty() && started.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        kill_process(Pid::from_child(&child), Signal::KILL).unwrap();
        child.wait().unwrap();
        assert!(
            !hidden(&leftover).is_empty(),
            "the killed pack left nothing to clean in {}",
            leftover.display()
        );
        support::ok(
            support::kiln()
                .arg("pack")
                .arg(work.path().join("tree/etc"))
                .args(["--ref", "again:1", "--out"])
                .arg(&out),
        );
        assert_eq!(hidden(&leftover), Vec::<String>::new(), "left in {}", leftover.display());
    }
}

/// Control characters from untrusted places (a step's output, a layout's names, a failing
/// step's last lines) reach the terminal escaped, never raw.
#[test]
fn control_characters_never_reach_the_terminal_raw() {
    let raw = |output: &std::process::Output| {
        output.stdout.iter().chain(&output.stderr).any(|&b| b == 0x1b || b == 0x07 || b == b'\r')
    };
    // A script's output.
    let output = support::run(
        support::kiln().args(["sandbox", "printf '\\033]52;c;b3duZWQ=\\007\\033[2Jtitle\\r\\n'"]),
    );
    assert!(output.status.success());
    assert!(!raw(&output), "{:?}", String::from_utf8_lossy(&output.stdout));
    assert!(String::from_utf8_lossy(&output.stdout).contains("\\u{1b}]52;c;b3duZWQ=\\u{7}"));

    // A failing step's last lines, in the error.
    let work = support::tempdir();
    let recipe = work.path().join("recipe");
    fs::create_dir_all(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        "[recipe]\nname = \"loud\"\n\n[steps.loud]\nscript = \"printf '\\\\033]0;owned\\\\007\\\\n'; exit 3\"\n",
    )
    .unwrap();
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", work.path().join("cache"))
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(work.path().join("out")),
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(!raw(&output), "{:?}", String::from_utf8_lossy(&output.stderr));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("\\u{1b}]0;owned\\u{7}"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A layout's annotations, as inspect shows them.
    let (work, tree) = support::fixture();
    let layout = work.path().join("layout");
    support::pack(&tree, &layout, "evil:1", &[]);
    let index_path = layout.join("index.json");
    let index = fs::read_to_string(&index_path).unwrap();
    fs::write(&index_path, index.replace("\"evil:1\"", "\"evil:1\\u001b]0;owned\\u0007\"")).unwrap();
    let output = support::run(support::kiln().arg("inspect").arg(&layout));
    assert!(!raw(&output), "{:?}", String::from_utf8_lossy(&output.stdout));
}
