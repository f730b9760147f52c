//! Other tools accept kiln's layouts: skopeo reads and copies them losslessly, umoci unpacks
//! them to the original tree, GNU tar lists normalised headers.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{self, PLAIN};

fn fixture_layout(work: &Path, compression: &str, reference: &str) -> std::path::PathBuf {
    let tree = work.join("tree");
    if !tree.exists() {
        support::write_fixture(&tree, PLAIN);
    }
    let out = work.join("out");
    support::ok(
        support::kiln()
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .arg("pack")
            .arg(&tree)
            .args(["--ref", reference, "--compression", compression, "--out"])
            .arg(&out),
    );
    out
}

/// Digests of every blob a manifest references, with the blob bytes' own digests.
fn referenced_blobs(layout: &Path, manifest: &str) -> Vec<(String, String)> {
    let document = support::blob_json(layout, manifest);
    let mut digests = vec![manifest.to_owned(), document["config"]["digest"].as_str().unwrap().to_owned()];
    for layer in document["layers"].as_array().unwrap() {
        digests.push(layer["digest"].as_str().unwrap().to_owned());
    }
    digests.into_iter().map(|d| (d.clone(), support::sha256_file(&support::blob_path(layout, &d)))).collect()
}

#[test]
fn skopeo_inspects_and_copies_losslessly() {
    if !support::require_tool("skopeo") {
        return;
    }
    let work = support::tempdir();
    for (compression, reference) in [("gzip", "app:gzip"), ("zstd", "app:zstd")] {
        let out = fixture_layout(work.path(), compression, reference);
        let digest = support::manifest_digest(&out, reference);
        let source = format!("oci:{}:{reference}", out.display());

        let inspect: Value =
            serde_json::from_str(&support::ok(Command::new("skopeo").args(["inspect", &source]))).unwrap();
        assert_eq!(inspect["Digest"], digest.as_str());
        assert_eq!(inspect["Architecture"], "amd64");
        assert_eq!(inspect["Os"], "linux");
        assert_eq!(inspect["Created"], "2009-02-13T23:31:30Z");
        let raw = support::ok(Command::new("skopeo").args(["inspect", "--raw", &source]));
        assert_eq!(raw.as_bytes(), fs::read(support::blob_path(&out, &digest)).unwrap());

        let dir = work.path().join(format!("dir-{compression}"));
        let back = work.path().join("back");
        let copy = |from: &str, to: &str| {
            support::ok(Command::new("skopeo").args(["copy", "--quiet", "--preserve-digests", from, to]));
        };
        copy(&source, &format!("dir:{}", dir.display()));
        copy(&format!("dir:{}", dir.display()), &format!("oci:{}:{reference}", back.display()));
        assert_eq!(support::manifest_digest(&back, reference), digest);
        assert_eq!(referenced_blobs(&back, &digest), referenced_blobs(&out, &digest));
        for (digest, content) in referenced_blobs(&out, &digest) {
            assert_eq!(digest, content, "blob stored under the wrong digest");
        }
    }
}

#[test]
fn umoci_unpacks_the_original_tree() {
    if !support::require_tool("umoci") {
        return;
    }
    let work = support::tempdir();
    let out = fixture_layout(work.path(), "gzip", "app:v1");
    let bundle = work.path().join("bundle");
    support::ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:app:v1", out.display()))
            .arg(&bundle),
    );
    let unpacked = support::tree_listing(&bundle.join("rootfs"));
    assert_eq!(unpacked, support::tree_listing(&work.path().join("tree")));
    assert!(unpacked.iter().any(|l| l.starts_with("dangling -> /nonexistent/target")), "{unpacked:#?}");
    // umoci validates the image while it unpacks; `stat` shows the history kiln wrote.
    let stat =
        support::ok(Command::new("umoci").args(["stat", "--image"]).arg(format!("{}:app:v1", out.display())));
    assert!(stat.contains("kiln pack"), "{stat}");
}

#[test]
fn gnu_tar_lists_normalised_headers() {
    if !support::require_tool("tar") {
        return;
    }
    let work = support::tempdir();
    let out = fixture_layout(work.path(), "none", "app:tar");
    let (layer, media_type, _) = support::layer_of(&out, "app:tar");
    assert_eq!(media_type, "application/vnd.oci.image.layer.v1.tar");
    let listing = support::ok(
        Command::new("tar")
            .env("TZ", "UTC")
            .args(["-tvv", "--full-time", "-f"])
            .arg(support::blob_path(&out, &layer)),
    );
    let (long_dir, long_name) = support::long_names();
    let expected = [
        "drwxr-xr-x 0/0               0 2009-02-13 23:31:30 etc/".to_owned(),
        "-rw-r--r-- 0/0               5 2009-02-13 23:31:30 etc/hostname".to_owned(),
        "-rwxr-xr-x 0/0              20 2009-02-13 23:31:30 usr/bin/tool".to_owned(),
        "hrwxr-xr-x 0/0               0 2009-02-13 23:31:30 usr/lib/libx.so.1.0 link to usr/lib/libx-hardlink.so"
            .to_owned(),
        "lrwxrwxrwx 0/0               0 2009-02-13 23:31:30 usr/lib/libx.so.1 -> libx.so.1.0".to_owned(),
        "lrwxrwxrwx 0/0               0 2009-02-13 23:31:30 dangling -> /nonexistent/target".to_owned(),
        "drwxr-xr-x 0/0               0 2009-02-13 23:31:30 var/empty-dir/".to_owned(),
        format!("-rw-r--r-- 0/0               5 2009-02-13 23:31:30 {long_dir}/{}.conf", "f".repeat(90)),
        format!("-rw-r--r-- 0/0               7 2009-02-13 23:31:30 {long_name}"),
        "-rw-r--r-- 0/0               6 2009-02-13 23:31:30 usr/share/\\377\\376-latin1-\\351".to_owned(),
    ];
    for line in &expected {
        assert!(listing.lines().any(|l| l == line), "missing {line:?} in:\n{listing}");
    }
    // Entries in byte order, parents first, and nothing from the host.
    let names: Vec<&str> = listing.lines().map(|l| l.split_whitespace().nth(5).unwrap()).collect();
    assert_eq!(names.first(), Some(&"dangling"));
    assert_eq!(names.iter().position(|n| *n == "etc/"), Some(1));
    assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
    assert!(!listing.contains("PaxHeaders"), "{listing}");

    // The gzip layer holds the same tar stream.
    let gzip = fixture_layout(work.path(), "gzip", "app:gz");
    let (gz_layer, _, _) = support::layer_of(&gzip, "app:gz");
    let gz_listing = support::ok(
        Command::new("tar")
            .env("TZ", "UTC")
            .args(["-tvvz", "--full-time", "-f"])
            .arg(support::blob_path(&gzip, &gz_layer)),
    );
    assert_eq!(gz_listing, listing);
}

#[test]
fn gnu_tar_extracts_long_names_with_newlines() {
    if !support::require_tool("tar") {
        return;
    }
    let work = support::tempdir();
    let tree = work.path().join("tree");
    // Long enough for a PAX path record, whose value then contains a newline.
    let dir = tree.join(format!("\n{}", "x".repeat(150)));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("line\nbreak"), "hi\n").unwrap();
    let out = work.path().join("out");
    support::pack(&tree, &out, "nl:v1", &["--compression", "none"]);
    let (layer, _, _) = support::layer_of(&out, "nl:v1");
    let extracted = work.path().join("extracted");
    fs::create_dir(&extracted).unwrap();
    support::ok(
        Command::new("tar").arg("-xf").arg(support::blob_path(&out, &layer)).arg("-C").arg(&extracted),
    );
    assert_eq!(support::tree_listing(&extracted), support::tree_listing(&tree));
}
