//! Archives written by `kiln_layers::cpio` are listed and extracted by GNU cpio as written,
//! and archives GNU cpio writes are read back entry for entry.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use kiln_layers::cpio;
use kiln_reproducible::{Epoch, Owner, Policy};

/// Whether GNU cpio can run; without it the test fails under CI and is skipped elsewhere.
#[expect(clippy::print_stderr, reason = "a skipped test must say why")]
fn have_cpio() -> bool {
    match Command::new("cpio").arg("--version").output() {
        Ok(output) if output.status.success() => true,
        _ if std::env::var_os("CI").is_some() => panic!("GNU cpio is required for this test under CI"),
        _ => {
            eprintln!("skipped: GNU cpio is not installed");
            false
        }
    }
}

/// Runs `cpio args` in `dir` with `input` on stdin; returns stdout.
fn run_cpio(dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "cpio {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("usr/lib/modules")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/os-release"), "NAME=Talos\n").unwrap();
    fs::write(
        root.join("usr/lib/modules/big.ko"),
        (0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(root.join("init"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(root.join("empty"), "").unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
}

const NAMES: [&str; 9] = [
    "empty",
    "etc",
    "etc/os-release",
    "init",
    "lib",
    "usr",
    "usr/lib",
    "usr/lib/modules",
    "usr/lib/modules/big.ko",
];

#[test]
fn gnu_cpio_lists_and_extracts_written_archives() {
    if !have_cpio() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tree(&root);
    let policy = Policy {
        owner: Owner { uid: 1000, gid: 100 },
        ..Policy::with_epoch(Epoch::from_secs(1_700_000_000))
    };
    let archive = cpio::write_tree(&root, Vec::new(), &policy).unwrap();

    let listed = text(run_cpio(dir.path(), &["-t", "--quiet"], &archive));
    assert_eq!(listed.lines().collect::<Vec<_>>(), NAMES);

    let verbose = text(run_cpio(dir.path(), &["-tvn", "--quiet"], &archive));
    let lines: Vec<Vec<&str>> = verbose.lines().map(|l| l.split_whitespace().collect()).collect();
    let summary = |i: usize| (lines[i][0], lines[i][1], lines[i][2], lines[i][3], lines[i][4]);
    assert_eq!(summary(1), ("drwxr-xr-x", "2", "1000", "100", "0"), "etc");
    assert_eq!(summary(2), ("-rw-r--r--", "1", "1000", "100", "11"), "etc/os-release");
    assert_eq!(summary(3), ("-rwxr-xr-x", "1", "1000", "100", "10"), "init");
    assert_eq!(summary(4), ("lrwxrwxrwx", "1", "1000", "100", "7"), "lib");
    assert_eq!(lines[4][lines[4].len() - 3..], ["lib", "->", "usr/lib"]);
    assert!(verbose.contains("Nov 14  2023"), "mtime 1700000000 shown: {verbose}");

    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    run_cpio(&out, &["-i", "--no-absolute-filenames", "-d", "--quiet"], &archive);
    for name in NAMES {
        let (a, b) = (root.join(name), out.join(name));
        let (ma, mb) = (fs::symlink_metadata(&a).unwrap(), fs::symlink_metadata(&b).unwrap());
        assert_eq!(ma.file_type(), mb.file_type(), "{name}");
        if ma.is_file() {
            assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{name}");
        } else if ma.is_symlink() {
            assert_eq!(fs::read_link(&a).unwrap(), fs::read_link(&b).unwrap(), "{name}");
        }
    }
    assert_eq!(fs::metadata(out.join("init")).unwrap().permissions().mode() & 0o777, 0o755);
}

#[test]
fn archives_written_by_gnu_cpio_read_back() {
    if !have_cpio() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let list: String = NAMES.iter().map(|n| format!("{n}\n")).collect();
    let gnu = run_cpio(dir.path(), &["-o", "-H", "newc", "--quiet"], list.as_bytes());
    assert_eq!(gnu.len() % 512, 0, "GNU cpio pads to 512-byte blocks");

    // Followed by one of ours, as an initramfs of several archives would be.
    let mut concatenated = gnu.clone();
    let mut writer = cpio::Writer::new(Vec::new());
    writer.file(b"extra", 0o644, 0, 2, &mut &b"ok"[..]).unwrap();
    concatenated.extend(writer.finish().unwrap());

    let entries = cpio::read(&concatenated).unwrap();
    let names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
    let mut expected: Vec<&[u8]> = NAMES.iter().map(|n| n.as_bytes()).collect();
    expected.push(b"extra");
    assert_eq!(names, expected);
    for entry in &entries[..NAMES.len()] {
        let path = dir.path().join(std::str::from_utf8(&entry.name).unwrap());
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(entry.mode, std::os::unix::fs::MetadataExt::mode(&meta), "{path:?}");
        if meta.is_file() {
            assert_eq!(entry.data, fs::read(&path).unwrap(), "{path:?}");
        } else if meta.is_symlink() {
            assert_eq!(entry.data, fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes());
        }
    }
    assert_eq!(entries[NAMES.len()].data, b"ok");
}
