//! `kiln verify`: perturbed rebuilds from clean caches, and a planted non-determinism caught and
//! explained down to the file and its first differing bytes.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support;

fn recipe(dir: &Path, script: &str) -> PathBuf {
    let recipe = dir.join("recipe");
    fs::create_dir_all(recipe.join("files")).unwrap();
    fs::write(recipe.join("files/greeting"), "hello\n").unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        format!(
            "[recipe]\nname = \"planted\"\n\n[sources.files]\npath = \"files\"\n\n\
             [steps.stamp]\ninputs = [\"files\"]\nscript = \"\"\"\n{script}\n\"\"\"\n\n\
             [images.\"stamp:v1\"]\nfrom = \"stamp\"\n"
        ),
    )
    .unwrap();
    recipe
}

#[test]
fn perturbed_rebuilds_of_a_deterministic_recipe_reproduce_its_digests() {
    let work = support::tempdir();
    let recipe =
        recipe(work.path(), "cp /inputs/files/greeting /out/\nmkdir /out/dir && echo x > /out/dir/x");
    let output = support::run(support::kiln().arg("verify").arg(&recipe).args(["--rebuilds", "3"]));
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 rebuild(s) reproduced all 3 digest(s)"), "{stdout}");
    // The image, and its SBOM's and provenance's artifact manifests.
    assert!(stdout.starts_with("stamp:v1 sha256:"), "{stdout}");
    assert!(
        stdout.contains("\nstamp:v1#sbom sha256:") && stdout.contains("\nstamp:v1#provenance sha256:"),
        "{stdout}"
    );
    // Each rebuild says what it changed.
    for perturbation in ["umask 077", "TZ=Asia/Kolkata", "one CPU", "reverse order", "empty cache"] {
        assert!(stderr.contains(perturbation), "{perturbation} not reported:\n{stderr}");
    }
    if support::is_root() {
        assert!(stderr.contains("user nobody") && stderr.contains("another host name"), "{stderr}");
    }

    // A release's digest file is the reference instead of a first build.
    let digests = work.path().join("digests.txt");
    fs::write(&digests, stdout.lines().next().unwrap()).unwrap();
    let output = support::run(
        support::kiln().arg("verify").arg(&recipe).args(["--rebuilds", "1", "--expect"]).arg(&digests),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("first build"), "{stderr}");
}

#[test]
fn a_planted_nondeterminism_is_caught_and_named_down_to_the_file() {
    let work = support::tempdir();
    let recipe = recipe(work.path(), "cp /inputs/files/greeting /out/\ndate +%s%N >/out/stamp");
    let output = support::run(support::kiln().arg("verify").arg(&recipe).args(["--rebuilds", "1"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("the rebuild 1 build differs"), "{stdout}");
    assert!(stdout.contains("image stamp:v1"), "{stdout}");
    assert!(stdout.contains("layer 0: sha256:"), "{stdout}");
    assert!(stdout.contains("changed stamp"), "{stdout}");
    assert!(!stdout.contains("changed greeting"), "{stdout}");
    assert!(stdout.contains("first difference at byte"), "{stdout}");
    assert!(stdout.contains("diffoscope ") && stdout.contains("kept in "), "{stdout}");
    let kept =
        stdout.lines().find_map(|l| l.split_once("kept in ").map(|(_, p)| PathBuf::from(p.trim()))).unwrap();
    assert!(kept.join("first/out/index.json").is_file());
    fs::remove_dir_all(kept).unwrap();

    // Against a digest file that does not match: the images named, and what to look at.
    let digests = work.path().join("digests.txt");
    fs::write(&digests, format!("stamp:v1 sha256:{}\n", "0".repeat(64))).unwrap();
    let output = support::run(
        support::kiln().arg("verify").arg(&recipe).args(["--rebuilds", "1", "--expect"]).arg(&digests),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("image stamp:v1: expected sha256:{}", "0".repeat(64))), "{stdout}");
}

#[test]
fn a_malformed_digest_file_names_its_line() {
    let work = support::tempdir();
    let recipe = recipe(work.path(), "cp /inputs/files/greeting /out/");
    let digests = work.path().join("digests.txt");
    let good = format!("stamp:v1 sha256:{}", "a".repeat(64));
    let bad = [
        "not a digest line".to_owned(),
        "stamp:v1 sha256:abc".to_owned(),
        "stamp:v1 sha256:".to_owned(),
        format!("stamp:v1 sha256:{}", "z".repeat(64)),
        format!("stamp:v1 sha512:{}", "a".repeat(128)),
        format!("Stamp:v1 sha256:{}", "a".repeat(64)),
        format!("stamp sha256:{}", "a".repeat(64)),
        format!("stamp:v1#signature sha256:{}", "a".repeat(64)),
        format!("\u{1b}]0;owned\u{7}stamp:v1 sha256:{}", "a".repeat(64)),
    ];
    for line in bad {
        fs::write(&digests, format!("# release v1\n{good}\n{line}\n")).unwrap();
        let output = support::run(support::kiln().arg("verify").arg(&recipe).arg("--expect").arg(&digests));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{line:?}: {stderr}");
        assert!(stderr.contains("digests.txt:3"), "{line:?}: {stderr}");
        assert!(!stderr.contains('\u{1b}'), "a control character reached the terminal: {stderr:?}");
    }
}
