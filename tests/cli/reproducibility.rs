//! The same tree content gives the same digests whatever the environment, the way the tree was
//! created, the build directory and the thread count.

use std::path::Path;
use std::process::Command;

use crate::support::{self, PLAIN, Variation};

/// Packs under a perturbed environment: umask 077, another time zone and locale, run from
/// another working directory.
fn pack_perturbed(tree: &Path, out: &Path, reference: &str, extra: &[&str], cwd: &Path) -> String {
    let mut command = Command::new("sh");
    command
        .args(["-c", "umask 077 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_kiln"), "pack"])
        .arg(tree)
        .args(["--ref", reference, "--out"])
        .arg(out)
        .args(extra)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", "1234567890")
        .env("TZ", "Pacific/Chatham")
        .env("LANG", "de_DE.UTF-8")
        .env("LC_ALL", "de_DE.UTF-8")
        .env("KILN_UNRELATED_NOISE", "x".repeat(1000));
    support::ok(&mut command);
    support::manifest_digest(out, reference)
}

#[test]
fn digests_independent_of_environment_tree_history_and_threads() {
    let a = support::tempdir();
    // The second tree lives on tmpfs where available: another file system, another directory
    // order (tmpfs lists newest first), another build directory.
    let shm = Path::new("/dev/shm");
    let b = if shm.is_dir() { support::tempdir_in(shm) } else { support::tempdir() };
    let tree_a = a.path().join("tree");
    let tree_b = b.path().join("deeper/build/dir/tree");
    support::write_fixture(&tree_a, PLAIN);
    support::write_fixture(&tree_b, Variation { reverse: true, perturb: true });

    for (compression, threads_a, threads_b) in [("gzip", "1", "5"), ("zstd", "1", "3"), ("none", "2", "1")] {
        let reference = format!("repro:{compression}");
        let digest_a = {
            let out = a.path().join("out");
            support::ok(
                support::kiln()
                    .env("SOURCE_DATE_EPOCH", "1234567890")
                    .arg("pack")
                    .arg(&tree_a)
                    .args([
                        "--ref",
                        &reference,
                        "--compression",
                        compression,
                        "--threads",
                        threads_a,
                        "--out",
                    ])
                    .arg(&out),
            );
            support::manifest_digest(&out, &reference)
        };
        let digest_b = pack_perturbed(
            &tree_b,
            &b.path().join("out"),
            &reference,
            &["--compression", compression, "--threads", threads_b],
            b.path(),
        );
        assert_eq!(digest_a, digest_b, "{compression}: manifests differ");
    }
    // Not just the manifests: the layouts are the same files with the same modes, although
    // the second was written under umask 077.
    assert_eq!(support::tree_listing(&a.path().join("out")), support::tree_listing(&b.path().join("out")));
}

#[test]
fn epoch_changes_the_digest_and_mtime_clamp_keeps_older_times() {
    let work = support::tempdir();
    let tree = work.path().join("tree");
    support::write_fixture(&tree, Variation { reverse: false, perturb: true });
    let out = work.path().join("out");
    let pack = |epoch: &str, reference: &str, extra: &[&str]| {
        support::ok(
            support::kiln()
                .env("SOURCE_DATE_EPOCH", epoch)
                .arg("pack")
                .arg(&tree)
                .args(["--ref", reference, "--compression", "none", "--out"])
                .arg(&out)
                .args(extra),
        );
        support::manifest_digest(&out, reference)
    };
    let first = pack("1000000000", "e:1", &[]);
    assert_ne!(first, pack("1000000001", "e:2", &[]));
    assert_eq!(first, pack("1000000000", "e:3", &[]));

    // perturb() gives the n-th path an mtime of n × 100000000 + 12345 seconds; with an epoch
    // of 1000000000 the clamped layer keeps times below it and caps the rest.
    pack("1000000000", "e:clamp", &["--mtime", "clamp"]);
    let (layer, _, _) = support::layer_of(&out, "e:clamp");
    let mut archive = tar::Archive::new(std::fs::File::open(support::blob_path(&out, &layer)).unwrap());
    let mtimes: Vec<u64> = archive.entries().unwrap().map(|e| e.unwrap().header().mtime().unwrap()).collect();
    assert!(mtimes.iter().all(|&t| t <= 1_000_000_000), "{mtimes:?}");
    assert!(mtimes.iter().any(|&t| t < 1_000_000_000 && t % 100_000_000 == 12345), "{mtimes:?}");
}
