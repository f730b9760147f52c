//! `kiln diff` reports manifest → config → layer → file differences and exits 1 on any.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::support;

#[test]
fn identical_images_exit_zero() {
    let (work, tree) = support::fixture();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    support::pack(&tree, &a, "img:v1", &[]);
    support::pack(&tree, &b, "img:v1", &["--threads", "3"]);
    let output = support::run(support::kiln().arg("diff").arg(&a).arg(&b));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "image img:v1: identical\n");
}

#[test]
fn reports_the_file_and_field_that_differ() {
    let (work, tree) = support::fixture();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    support::pack(&tree, &a, "img:v1", &[]);
    fs::write(tree.join("etc/hostname"), "other\n").unwrap();
    fs::set_permissions(tree.join("etc/os-release"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(tree.join("usr/lib/empty")).unwrap();
    fs::write(tree.join("etc/new"), "").unwrap();
    support::pack(&tree, &b, "img:v1", &[]);

    let output = support::run(support::kiln().arg("diff").arg(format!("{}:img:v1", a.display())).arg(&b));
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "image img:v1: differs",
        "    added    etc/new",
        "    removed  usr/lib/empty",
        "    changed  etc/os-release: mode 0644 → 0755",
    ] {
        assert!(text.lines().any(|l| l == expected), "missing {expected:?} in:\n{text}");
    }
    let hostname = text.lines().find(|l| l.contains("changed  etc/hostname:")).unwrap();
    assert!(hostname.contains("size 5 → 6") && hostname.contains("content sha256:"), "{hostname}");
    assert!(text.contains("config.rootfs.diff_ids[0]"), "{text}");

    let json = support::run(support::kiln().args(["diff", "--json"]).arg(&a).arg(&b));
    assert_eq!(json.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["images"][0]["status"], "differs");
    let entries = report["images"][0]["layers"][0]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{entries:#?}");
}

#[test]
fn images_only_on_one_side_and_compression_only_changes() {
    let (work, tree) = support::fixture();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    support::pack(&tree, &a, "img:v1", &[]);
    support::pack(&tree, &a, "only:a", &[]);
    support::pack(&tree, &b, "img:v1", &["--compression", "zstd"]);
    let output = support::run(support::kiln().arg("diff").arg(&a).arg(&b));
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("image only:a: only in A"), "{text}");
    assert!(text.contains("same uncompressed content, different compression"), "{text}");
}
