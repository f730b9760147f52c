//! Hostile layouts: files that are symbolic links, FIFOs or directories, sizes that lie, and
//! documents far larger than any image needs. kiln reads a layout's files only as regular files
//! beneath it, no link followed, never more than a descriptor says, and stops with exit 3
//! naming the file; a push of such a layout sends nothing.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use crate::hostile_registry::{Server, Store, WATCHDOG, sink};
use crate::support;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A packed layout `app:v1` in `dir/name`.
fn packed(tree: &Path, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    support::pack(tree, &out, "app:v1", &[]);
    out
}

/// Moves `path` to `outside` and puts a symbolic link to it in its place: the bytes are the
/// same, only the link is hostile.
fn replace_with_link(path: &Path, outside: &Path) {
    fs::create_dir_all(outside.parent().unwrap()).unwrap();
    fs::rename(path, outside).unwrap();
    symlink(outside, path).unwrap();
}

/// The blobs of an image: (manifest, config, layer) digests.
fn blobs(layout: &Path) -> (String, String, String) {
    let manifest = support::manifest_digest(layout, "app:v1");
    let document = support::blob_json(layout, &manifest);
    (
        manifest,
        document["config"]["digest"].as_str().unwrap().to_owned(),
        document["layers"][0]["digest"].as_str().unwrap().to_owned(),
    )
}

/// What kiln does with a tampered layout: `inspect`, `push` (to a registry that records
/// requests) and `diff` against another image (so every document and layer is read); each as
/// (command, output, requests the registry saw).
fn attempts(layout: &Path, intact: &Path) -> Vec<(&'static str, Output, usize)> {
    let mut results = Vec::new();
    let registry = Server::http("127.0.0.1", sink("/v2/x/blobs/uploads/1".into(), false));
    let inspect = support::run_within(support::kiln().arg("inspect").arg(layout), WATCHDOG);
    results.push(("inspect", inspect, 0));
    let push = support::run_within(
        support::kiln().arg("push").arg(layout).args(["--to", &registry.host, "--insecure-http"]),
        WATCHDOG,
    );
    results.push(("push", push, registry.requests().len()));
    let diff = support::run_within(support::kiln().arg("diff").arg(intact).arg(layout), WATCHDOG);
    results.push(("diff", diff, 0));
    results
}

/// Another image of the fixture (one more file), for `diff` to compare every document and
/// layer against.
fn other_image(tree: &Path, dir: &Path) -> PathBuf {
    let other_tree = dir.join("other-tree");
    support::ok(Command::new("cp").arg("-R").arg(tree).arg(&other_tree));
    fs::write(other_tree.join("etc/extra"), "x\n").unwrap();
    packed(&other_tree, dir, "other")
}

#[test]
fn links_in_a_layout_are_never_followed() {
    let (work, tree) = support::fixture();
    let intact = other_image(&tree, work.path());
    let victim = work.path().join("victim");
    type Tamper = fn(&Path, &Path);
    let cases: [(&str, Tamper, &[&str]); 7] = [
        (
            "the manifest blob is a link",
            |l, v| replace_with_link(&support::blob_path(l, &blobs(l).0), &v.join("m")),
            &["inspect", "push", "diff"],
        ),
        (
            "the config blob is a link",
            |l, v| replace_with_link(&support::blob_path(l, &blobs(l).1), &v.join("c")),
            &["inspect", "push", "diff"],
        ),
        (
            "the layer blob is a link",
            |l, v| replace_with_link(&support::blob_path(l, &blobs(l).2), &v.join("l")),
            &["push", "diff"],
        ),
        (
            "blobs/sha256 is a link",
            |l, v| replace_with_link(&l.join("blobs/sha256"), &v.join("sha256")),
            &["inspect", "push", "diff"],
        ),
        (
            "blobs is a link",
            |l, v| replace_with_link(&l.join("blobs"), &v.join("blobs")),
            &["inspect", "push", "diff"],
        ),
        (
            "index.json is a link",
            |l, v| replace_with_link(&l.join("index.json"), &v.join("index.json")),
            &["inspect", "push", "diff"],
        ),
        (
            "oci-layout is a link",
            |l, v| replace_with_link(&l.join("oci-layout"), &v.join("oci-layout")),
            &["inspect", "push", "diff"],
        ),
    ];
    for (what, tamper, refused_by) in cases {
        let layout = packed(&tree, work.path(), "tampered");
        let outside = victim.join(what.replace(' ', "-"));
        tamper(&layout, &outside);
        for (command, output, requests) in attempts(&layout, &intact) {
            let message = stderr(&output);
            if !refused_by.contains(&command) {
                assert!(output.status.success(), "{what}: {command}: {message}");
                continue;
            }
            assert_eq!(output.status.code(), Some(3), "{what}: {command}: {message}");
            assert!(
                message.contains("refusing ") && message.contains("symbolic link"),
                "{what}: {command}: {message}"
            );
            assert!(
                message.contains("hint: kiln reads a layout's files only as regular files"),
                "{what}: {message}"
            );
            assert_eq!(requests, 0, "{what}: push sent requests for a tampered layout");
        }
        fs::remove_dir_all(&layout).unwrap();
    }
}

#[test]
fn fifos_and_directories_in_a_layout_are_refused_without_blocking() {
    let (work, tree) = support::fixture();
    let intact = other_image(&tree, work.path());
    for (what, pick, kind) in [
        ("config blob", 1, "FIFO"),
        ("layer blob", 2, "FIFO"),
        ("manifest blob", 0, "directory"),
        ("config blob", 1, "directory"),
    ] {
        let layout = packed(&tree, work.path(), "tampered");
        let (manifest, config, layer) = blobs(&layout);
        let path = support::blob_path(&layout, [&manifest, &config, &layer][pick]);
        fs::remove_file(&path).unwrap();
        if kind == "FIFO" {
            support::ok(Command::new("mkfifo").arg(&path));
        } else {
            fs::create_dir(&path).unwrap();
        }
        for (command, output, requests) in attempts(&layout, &intact) {
            let message = stderr(&output);
            if pick == 2 && command == "inspect" {
                assert!(output.status.success(), "{what}: {command}: {message}");
                continue;
            }
            assert_eq!(output.status.code(), Some(3), "{kind} {what}: {command}: {message}");
            assert!(message.contains(&format!("it is a {kind}")), "{kind} {what}: {command}: {message}");
            assert_eq!(requests, 0, "{kind} {what}: push sent requests");
        }
        fs::remove_dir_all(&layout).unwrap();
    }
}

/// Replaces `path` with a sparse file of `size` bytes (holes read as zeros, cost no disk).
fn sparse(path: &Path, size: u64) {
    let _ = fs::remove_file(path);
    fs::File::create(path).unwrap().set_len(size).unwrap();
}

#[test]
fn layout_sizes_are_never_trusted() {
    const HUGE: u64 = 2 << 30;
    let (work, tree) = support::fixture();
    type Tamper = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "a manifest descriptor of 2 GiB, and a 2 GiB blob",
            Box::new(|layout: &Path| {
                let mut index = support::index(layout);
                index["manifests"][0]["size"] = json!(HUGE);
                fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
                sparse(&support::blob_path(layout, &blobs(layout).0), HUGE);
            }),
            "kiln reads documents of at most 4 MiB",
        ),
        (
            "a 2 GiB manifest blob for a small descriptor",
            Box::new(|layout: &Path| sparse(&support::blob_path(layout, &blobs(layout).0), HUGE)),
            "its descriptor says",
        ),
        (
            "a 2 GiB config blob for a small descriptor",
            Box::new(|layout: &Path| sparse(&support::blob_path(layout, &blobs(layout).1), HUGE)),
            "its descriptor says",
        ),
        (
            "a 2 GiB index.json",
            Box::new(|layout: &Path| sparse(&layout.join("index.json"), HUGE)),
            "index.json is 2147483648 bytes; kiln reads documents of at most 4 MiB",
        ),
        (
            "a 2 GiB oci-layout",
            Box::new(|layout: &Path| sparse(&layout.join("oci-layout"), HUGE)),
            "oci-layout is 2147483648 bytes",
        ),
    ];
    for (what, tamper, expected) in cases {
        let layout = packed(&tree, work.path(), "tampered");
        tamper(&layout);
        let registry = Server::http("127.0.0.1", sink("/v2/x/blobs/uploads/1".into(), false));
        for command in ["inspect", "push"] {
            let mut kiln = support::kiln();
            kiln.arg(command).arg(&layout);
            if command == "push" {
                kiln.args(["--to", &registry.host, "--insecure-http"]);
            }
            let started = std::time::Instant::now();
            let Some((output, peak_kib)) = support::peak_rss(&kiln, WATCHDOG) else { return };
            support::eprintln_skip(&format!(
                "(figure) {command} of a layout with {what}: {:.2} s, peak RSS {peak_kib} KiB",
                started.elapsed().as_secs_f64()
            ));
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(3), "{what}: {command}: {message}");
            assert!(message.contains(expected), "{what}: {command}: {message}");
            assert!(peak_kib < 100 * 1024, "{what}: {command}: peak RSS {peak_kib} KiB");
        }
        assert!(registry.requests().is_empty(), "{what}: {:?}", registry.summary());
        fs::remove_dir_all(&layout).unwrap();
    }

    // A config descriptor of 2 GiB in an otherwise valid manifest: refused before it is opened.
    let mut store = Store::default();
    let layer = store.add("application/vnd.oci.image.layer.v1.tar", vec![0u8; 1024]);
    let huge = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": crate::hostile_registry::digest(b"huge"), "size": HUGE});
    let top = store.manifest(&huge, &[layer]);
    let layout = work.path().join("huge-config");
    store.write_layout(&layout, "app:v1", &top);
    sparse(&support::blob_path(&layout, &crate::hostile_registry::digest(b"huge")), HUGE);
    let Some((output, peak_kib)) = support::peak_rss(support::kiln().arg("inspect").arg(&layout), WATCHDOG)
    else {
        return;
    };
    support::eprintln_skip(&format!(
        "(figure) inspect of a layout with a 2 GiB config: peak RSS {peak_kib} KiB"
    ));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("image config"), "{}", stderr(&output));
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
}
