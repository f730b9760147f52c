//! `kiln build --cache-from/--cache-to`: machines (separate cache directories) sharing steps
//! through a real registry on loopback — the smoke kernel pulled instead of compiled, damaged
//! entries refused and rebuilt, concurrent writers of one key, an unreachable registry.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::support::{self, Registry};

/// A recipe of two quick steps: `make` writes files with exact modes and links, pausing `pause`
/// seconds; `use` reads them; one image from `use`.
fn recipe(dir: &Path, who: &str, pause: u32) -> PathBuf {
    let recipe = dir.join(format!("recipe-{who}-{pause}"));
    fs::create_dir_all(&recipe).unwrap();
    let toml = format!(
        r#"[recipe]
name = "shared"
source-date-epoch = 1735689600

[steps.make]
env = {{ WHO = "{who}" }}
script = '''
mkdir -p /out/usr/bin /out/etc/private
printf 'hello %s\n' "$WHO" > /out/etc/greeting
printf '#!/bin/sh\necho hi\n' > /out/usr/bin/hi
chmod 0755 /out/usr/bin/hi
chmod 0600 /out/etc/greeting
chmod 0700 /out/etc/private
mkdir /out/etc/sealed && touch /out/etc/sealed/inside && chmod 0555 /out/etc/sealed
ln -s ../../usr/bin/hi /out/usr/bin/up
ln -s hi /out/usr/bin/relative
head -c 300000 /dev/zero | tr '\0' 'k' > /out/etc/large
sleep {pause}
'''

[steps.use]
inputs = ["make"]
script = "cat /inputs/make/etc/greeting > /out/greeting.txt && ls -l /inputs/make/usr/bin > /out/listing"

[images."shared:dev"]
from = "use"
"#
    );
    fs::write(recipe.join("kiln.toml"), toml).unwrap();
    recipe
}

/// `kiln build RECIPE --json` with the cache `cache` and `extra` arguments.
fn build(recipe: &Path, cache: &Path, extra: &[&str]) -> Output {
    support::run(&mut build_command(recipe, cache, extra))
}

fn build_command(recipe: &Path, cache: &Path, extra: &[&str]) -> Command {
    build_command_from(support::kiln(), recipe, cache, extra)
}

/// `command` (kiln, perhaps with a credentials store) building as [`build`] does.
fn build_command_from(mut command: Command, recipe: &Path, cache: &Path, extra: &[&str]) -> Command {
    command
        .env("KILN_CACHE", cache)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("KILN_CACHE_FROM")
        .env_remove("KILN_CACHE_TO")
        .arg("build")
        .arg(recipe)
        .arg("--out")
        .arg(cache.with_extension("out"))
        .arg("--json")
        .args(extra);
    command
}

/// The report of a build that must succeed, and its log.
fn built(output: &Output) -> (Value, String) {
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    (serde_json::from_slice(&output.stdout).unwrap(), log)
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap()
}

fn images(report: &Value) -> Vec<(String, String)> {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap().to_owned(), i["digest"].as_str().unwrap().to_owned()))
        .collect()
}

fn skopeo_manifest(reference: &str) -> Value {
    let raw = support::ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    serde_json::from_str(&raw).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An OCI descriptor of `bytes`.
fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": format!("sha256:{}", sha256_hex(bytes)), "size": bytes.len() })
}

/// A gzipped tar of `entries`: a path and a symbolic link's target, or a file's size (zeros).
fn forged_tree(entries: &[(&str, Result<&str, usize>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, entry) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o777);
        match entry {
            Ok(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, path, target).unwrap();
            }
            Err(size) => {
                header.set_size(*size as u64);
                tar.append_data(&mut header, path, std::io::repeat(0).take(*size as u64)).unwrap();
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// An entry for `key` claiming `output` and `bytes`, with `tree` as its layer.
fn forged_entry(key: &str, output: &str, bytes: u64, tree: Vec<u8>) -> (Vec<u8>, [Vec<u8>; 2]) {
    let config = format!(r#"{{"bytes":{bytes},"format":1,"key":"{key}","output":"{output}"}}"#);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.kiln.step.v1",
        "config": descriptor("application/vnd.kiln.step.config.v1+json", config.as_bytes()),
        "layers": [descriptor("application/vnd.kiln.step.tree.v1.tar+zstd", &tree)],
    });
    (serde_json::to_vec(&manifest).unwrap(), [config.into_bytes(), tree])
}

/// Pushes `manifest` (with the blobs `blobs`) under `name` with kiln push: how a damaged or
/// malicious entry gets into a registry.
fn push_manifest(work: &Path, address: &str, name: &str, manifest: &[u8], blobs: &[Vec<u8>]) {
    let layout = work.join(format!("forged-{}", sha256_hex(manifest)));
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for blob in blobs.iter().chain(std::iter::once(&manifest.to_vec())) {
        fs::write(layout.join("blobs/sha256").join(sha256_hex(blob)), blob).unwrap();
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256_hex(manifest)),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": name },
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    support::ok(support::kiln().arg("push").arg(&layout).args(["--to", address, "--insecure-http"]));
}

#[test]
fn a_second_machine_pulls_the_smoke_kernel_instead_of_compiling_it() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("musl-gcc") || !support::require_tool("skopeo") {
        return;
    }
    let location = format!("http://{}/kiln/cache", registry.address);
    let work = support::tempdir();
    let smoke = support::smoke_recipe();

    // Machine A: the cache scripts/smoke filled (its kernel built once per run) pushes every step.
    let started = Instant::now();
    let (first, log) = built(&build(&smoke, &support::shared_cache(), &["--cache-to", &location]));
    let pushing = started.elapsed();
    let kernel = step(&first, "kernel");
    let key = kernel["key"].as_str().unwrap();
    assert!(
        kernel["pushed"].as_str().is_some_and(|e| e.contains(&format!("/kiln/cache:step-{key}@sha256:"))),
        "{kernel}\n{log}"
    );
    for entry in first["steps"].as_array().unwrap() {
        assert!(entry["pushed"].is_string(), "every step is shared: {entry}");
    }
    // skopeo reads the entry as an OCI artifact of kiln's type.
    let manifest = skopeo_manifest(&format!("{}/kiln/cache:step-{key}", registry.address));
    assert_eq!(manifest["artifactType"], "application/vnd.kiln.step.v1");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.kiln.step.tree.v1.tar+zstd");

    // Machine B: an empty cache builds nothing and makes the same images.
    let cache_b = work.path().join("machine-b");
    let started = Instant::now();
    let (second, log) = built(&build(&smoke, &cache_b, &["--cache-from", &location]));
    let pulling = started.elapsed();
    for entry in second["steps"].as_array().unwrap() {
        assert!(entry["pulled"].is_string() && entry["cached"] == true, "{entry}\n{log}");
    }
    assert!(log.contains("kernel: pulled") && log.contains("  pulled kernel"), "{log}");
    assert!(!log.contains("built "), "{log}");
    assert_eq!(images(&first), images(&second));
    let pulled_kernel = cache_b.join("steps").join(key);
    assert_eq!(
        fs::read_to_string(pulled_kernel.join("log")).unwrap(),
        format!("pulled from {}\n", step(&second, "kernel")["pulled"].as_str().unwrap())
    );
    support::eprintln_skip(&format!(
        "(figure) smoke recipe: machine A pushed every step in {pushing:.1?}; machine B, empty \
         cache, pulled every step in {pulling:.1?} (bench/remote-cache.sh compares with a cold build)"
    ));

    // Again on B: everything is in its own cache now; nothing is pulled.
    let (third, _) = built(&build(&smoke, &cache_b, &["--cache-from", &location]));
    assert!(third["steps"].as_array().unwrap().iter().all(|s| s["pulled"].is_null() && s["cached"] == true));
}

#[test]
fn damaged_or_forged_entries_are_rebuilt_never_used() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("skopeo") {
        return;
    }
    let location = format!("http://{}/kiln/cache", registry.address);
    let work = support::tempdir();
    let good = recipe(work.path(), "kiln", 0);
    let (reference, _) = built(&build(&good, &work.path().join("a"), &["--cache-to", &location]));
    let key = step(&reference, "make")["key"].as_str().unwrap().to_owned();
    let tag = format!("kiln/cache:step-{key}");
    let manifest = skopeo_manifest(&format!("{}/{tag}", registry.address));
    let tree = registry.blob_data(manifest["layers"][0]["digest"].as_str().unwrap());
    let original = fs::read(&tree).unwrap();

    // Each machine starts empty and must refuse the entry, build `make` itself, and make the
    // same image as the first build.
    let mut machine = 0;
    let mut refused = |expected: &str| {
        machine += 1;
        let cache = work.path().join(format!("machine-{machine}"));
        let (report, log) = built(&build(&good, &cache, &["--cache-from", &location]));
        let make = step(&report, "make");
        assert!(make["pulled"].is_null() && make["cached"] == false, "{make}\n{log}");
        assert!(log.contains("not used") && log.contains(expected), "expected {expected:?}:\n{log}");
        assert!(log.contains("built  make"), "{log}");
        assert_eq!(images(&report), images(&reference));
    };

    // A flipped byte in the stored tree.
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x55;
    fs::write(&tree, &flipped).unwrap();
    refused("digest");

    // A truncated tree.
    fs::write(&tree, &original[..original.len() / 2]).unwrap();
    refused("digest");
    fs::write(&tree, &original).unwrap();

    // Another step's tree under this step's config: the extracted tree is not what it says.
    // Same file sizes, other content.
    let other = recipe(work.path(), "kilo", 0);
    let (other_report, _) = built(&build(&other, &work.path().join("b"), &["--cache-to", &location]));
    let other_key = step(&other_report, "make")["key"].as_str().unwrap().to_owned();
    let other_manifest_raw = support::ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/kiln/cache:step-{other_key}", registry.address),
    ]));
    let other_manifest: Value = serde_json::from_str(&other_manifest_raw).unwrap();
    let mut mixed = manifest.clone();
    mixed["layers"] = other_manifest["layers"].clone();
    let blob =
        |descriptor: &Value| fs::read(registry.blob_data(descriptor["digest"].as_str().unwrap())).unwrap();
    let blobs = [blob(&manifest["config"]), blob(&other_manifest["layers"][0])];
    push_manifest(work.path(), &registry.address, &tag, &serde_json::to_vec(&mixed).unwrap(), &blobs);
    refused("its tree has digest");
    // A machine that also writes refuses it too, and replaces it although its config is honest.
    let both = ["--cache-from", location.as_str(), "--cache-to", location.as_str()];
    let (report, log) = built(&build(&good, &work.path().join("repair-mixed"), &both));
    assert!(log.contains("its tree has digest") && step(&report, "make")["pushed"].is_string(), "{log}");
    let (report, log) = built(&build(&good, &work.path().join("after-mixed"), &["--cache-from", &location]));
    assert!(step(&report, "make")["pulled"].is_string(), "{log}");

    // A tree with a link leading out of it, or holding more than its config says (a
    // decompression bomb): refused at extraction, whatever its config says.
    let output = step(&reference, "make")["output"].as_str().unwrap().to_owned();
    let (forged, blobs) = forged_entry(&key, &output, 0, forged_tree(&[("etc/passwd", Ok("/etc/passwd"))]));
    push_manifest(work.path(), &registry.address, &tag, &forged, &blobs);
    refused("symbolic link to the absolute path");
    // Links whose text stays inside and which lead out together.
    let chained = forged_tree(&[("l1", Ok(".")), ("x", Ok("l1/l1/../../etc"))]);
    let (forged, blobs) = forged_entry(&key, &output, 0, chained);
    push_manifest(work.path(), &registry.address, &tag, &forged, &blobs);
    refused("which resolves outside the root");
    let (forged, blobs) = forged_entry(&key, &output, 10, forged_tree(&[("etc/zeros", Err(50_000_000))]));
    push_manifest(work.path(), &registry.address, &tag, &forged, &blobs);
    refused("more than the 10 bytes the archive may hold");

    // Another step's whole entry, retagged.
    let blobs = [blob(&other_manifest["config"]), blob(&other_manifest["layers"][0])];
    push_manifest(work.path(), &registry.address, &tag, other_manifest_raw.trim().as_bytes(), &blobs);
    refused("another step");

    // A machine that also writes replaces the forged entry; the next one pulls the good one.
    let (report, log) = built(&build(&good, &work.path().join("repair"), &["--cache-to", &location]));
    assert!(step(&report, "make")["pushed"].is_string(), "{log}");
    let (report, log) = built(&build(&good, &work.path().join("after"), &["--cache-from", &location]));
    assert!(step(&report, "make")["pulled"].is_string(), "{log}");
    assert_eq!(images(&report), images(&reference));
    // The pulled tree has the modes and links the step made.
    let out = work.path().join("after/steps").join(&key).join("out");
    let mode = |path: &str| {
        std::os::unix::fs::PermissionsExt::mode(&fs::symlink_metadata(out.join(path)).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(
        (mode("etc/greeting"), mode("etc/private"), mode("etc/sealed"), mode("usr/bin/hi")),
        (0o600, 0o700, 0o555, 0o755)
    );
    assert_eq!(fs::read_link(out.join("usr/bin/up")).unwrap(), Path::new("../../usr/bin/hi"));
    assert_eq!(fs::read_link(out.join("usr/bin/relative")).unwrap(), Path::new("hi"));
}

#[test]
fn concurrent_builds_of_one_key_on_two_machines_both_succeed() {
    let Some(registry) = Registry::start() else { return };
    let location = format!("http://{}/kiln/cache", registry.address);
    let work = support::tempdir();
    // The pause keeps both builds inside `make` at once: both miss, both push the same entry.
    let slow = recipe(work.path(), "kiln", 5);
    let args = ["--cache-from", &location, "--cache-to", &location];
    let children: Vec<_> = ["one", "two"]
        .iter()
        .map(|machine| {
            build_command(&slow, &work.path().join(machine), &args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<(Value, String)> =
        children.into_iter().map(|child| built(&child.wait_with_output().unwrap())).collect();
    for (_, log) in &reports {
        assert!(!log.contains("warning"), "{log}");
    }
    assert_eq!(images(&reports[0].0), images(&reports[1].0));
    let pushed: Vec<&str> =
        reports.iter().filter_map(|(report, _)| step(report, "make")["pushed"].as_str()).collect();
    assert!(!pushed.is_empty());
    if pushed.len() == 2 {
        // Both wrote: the same bytes, so the same entry.
        assert_eq!(pushed[0], pushed[1]);
    } else {
        support::eprintln_skip("the two builds did not overlap: one pulled what the other pushed");
    }
    // Whatever the tag ended on is a complete entry: a third machine pulls both steps.
    let (third, log) = built(&build(&slow, &work.path().join("three"), &["--cache-from", &location]));
    assert!(third["steps"].as_array().unwrap().iter().all(|s| s["pulled"].is_string()), "{log}");
    assert_eq!(images(&third), images(&reports[0].0));
}

#[test]
fn a_step_that_is_not_reproducible_is_named_and_one_with_setuid_files_is_not_shared() {
    let Some(registry) = Registry::start() else { return };
    let location = format!("http://{}/kiln/cache", registry.address);
    let work = support::tempdir();
    let recipe = work.path().join("stamped");
    fs::create_dir_all(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        r#"[recipe]
name = "stamped"
source-date-epoch = 1735689600

[steps.stamp]
script = "date +%s%N > /out/stamp"

[steps.privileged]
script = "echo tool > /out/tool && chmod 4755 /out/tool"

[steps.chained]
script = "ln -s . /out/l1 && ln -s l1/l1/../../etc /out/x"
"#,
    )
    .unwrap();
    let (first, log) = built(&build(&recipe, &work.path().join("a"), &["--cache-to", &location]));
    assert!(step(&first, "stamp")["pushed"].is_string(), "{log}");
    assert!(step(&first, "privileged")["pushed"].is_null(), "{log}");
    assert!(log.contains("privileged is not shared") && log.contains("tool is setuid or setgid"), "{log}");
    assert!(step(&first, "chained")["pushed"].is_null(), "{log}");
    assert!(log.contains("chained is not shared") && log.contains("x links to l1/l1/../../etc"), "{log}");
    // Another machine builds on its own, then shares: its stamp differs from the entry's.
    let b = work.path().join("b");
    built(&build(&recipe, &b, &[]));
    let (second, log) = built(&build(&recipe, &b, &["--cache-to", &location]));
    assert!(step(&second, "stamp")["pushed"].is_null(), "{log}");
    assert!(log.contains("warning: stamp is not reproducible"), "{log}");
    assert!(log.contains(step(&first, "stamp")["output"].as_str().unwrap()), "{log}");
}

#[test]
fn a_cache_behind_token_auth_is_used_with_the_credentials_of_kiln_push() {
    let (user, password) = ("ci", "cache-secret");
    let work = support::tempdir();
    let tokens = crate::token_server::TokenServer::start(work.path(), user, password, 0);
    let access =
        support::Access::Token { realm: tokens.realm.clone(), certificate: tokens.certificate.clone() };
    let Some(registry) = Registry::start_with(&access) else { return };
    let location = format!("http://{}/kiln/cache", registry.address);
    let quick = recipe(work.path(), "kiln", 0);
    let auths = json!({ registry.address.clone(): { "username": user, "password": password } });
    let with_credentials = || support::kiln_with_credentials(&work.path().join("docker"), &auths);

    let (first, log) = built(
        &build_command_from(with_credentials(), &quick, &work.path().join("a"), &["--cache-to", &location])
            .output()
            .unwrap(),
    );
    assert!(first["steps"].as_array().unwrap().iter().all(|s| s["pushed"].is_string()), "{log}");
    let (second, log) = built(
        &build_command_from(with_credentials(), &quick, &work.path().join("b"), &["--cache-from", &location])
            .output()
            .unwrap(),
    );
    assert!(second["steps"].as_array().unwrap().iter().all(|s| s["pulled"].is_string()), "{log}");
    assert!(tokens.log.lock().unwrap().iter().all(|(_, granted)| *granted));

    // Read-only credentials with --cache-to: the refused push stops pushes only; a step the
    // registry has is still pulled after it ("aaa", new, runs before "make").
    let reader = json!({ registry.address.clone(): {
        "username": crate::token_server::READER.0,
        "password": crate::token_server::READER.1,
    } });
    let with_new_step = quick.with_file_name("recipe-with-a-new-step");
    support::ok(Command::new("cp").arg("-R").arg(&quick).arg(&with_new_step));
    let toml = with_new_step.join("kiln.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, format!("{text}\n[steps.aaa]\nscript = \"echo new > /out/new\"\n")).unwrap();
    let both = ["--cache-from", location.as_str(), "--cache-to", location.as_str()];
    let read_only = support::kiln_with_credentials(&work.path().join("reader"), &reader);
    let (report, log) = built(
        &build_command_from(read_only, &with_new_step, &work.path().join("r"), &both).output().unwrap(),
    );
    assert_eq!(log.matches("is not used for pushes for the rest of the build").count(), 1, "{log}");
    assert!(!log.contains("is not used for pulls"), "{log}");
    assert_eq!(report["steps"][0]["step"], "aaa", "the refused push comes first");
    assert!(step(&report, "aaa")["cached"] == false && step(&report, "aaa")["pushed"].is_null(), "{log}");
    assert!(
        step(&report, "make")["pulled"].is_string() && step(&report, "use")["pulled"].is_string(),
        "{log}"
    );

    // Without credentials the registry refuses: said once, and the steps are built.
    let anonymous = support::kiln_with_credentials(&work.path().join("nobody"), &json!({}));
    let (third, log) = built(
        &build_command_from(anonymous, &quick, &work.path().join("c"), &["--cache-from", &location])
            .output()
            .unwrap(),
    );
    assert_eq!(log.matches("is not used for pulls for the rest of the build").count(), 1, "{log}");
    assert!(log.contains("refused access"), "{log}");
    assert!(third["steps"].as_array().unwrap().iter().all(|s| s["cached"] == false));
    assert_eq!(images(&third), images(&first));
}

#[test]
fn an_unreachable_cache_is_reported_once_and_the_build_goes_on() {
    let work = support::tempdir();
    // Nothing listens on port 1: connections are refused at once.
    let location = "http://127.0.0.1:1/kiln/cache";
    let quick = recipe(work.path(), "kiln", 0);
    let (report, log) = built(&build(
        &quick,
        &work.path().join("cache"),
        &["--cache-from", location, "--cache-to", location],
    ));
    assert_eq!(log.matches("is not used for pulls for the rest of the build").count(), 1, "{log}");
    assert_eq!(log.matches("is not used for pushes for the rest of the build").count(), 1, "{log}");
    assert!(
        report["steps"].as_array().unwrap().iter().all(|s| s["cached"] == false && s["pushed"].is_null())
    );

    // The same locations from the environment, as CI sets them.
    let output = support::run(
        build_command(&quick, &work.path().join("env"), &[])
            .env("KILN_CACHE_FROM", format!("{location},http://127.0.0.1:1/other"))
            .env("KILN_CACHE_TO", location),
    );
    let (_, log) = built(&output);
    assert_eq!(log.matches("is not used for pulls for the rest of the build").count(), 2, "{log}");
    assert_eq!(log.matches("is not used for pushes for the rest of the build").count(), 1, "{log}");

    // A location that is not one is an input error, before anything is built.
    let output = build(&quick, &work.path().join("bad"), &["--cache-to", "kiln/cache"]);
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("REGISTRY/REPOSITORY"));
}
