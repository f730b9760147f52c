//! `kiln push`, `kiln pull` and `kiln inspect REF` against a real registry on loopback, checked
//! with skopeo in both directions.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{self, Registry};

fn skopeo(args: &[&str]) -> String {
    support::ok(Command::new("skopeo").args(args))
}

/// The fixture packed twice (gzip and zstd) into one layout: two images sharing a config blob.
fn two_images(work: &Path, tree: &Path) -> std::path::PathBuf {
    let out = work.join("out");
    support::pack(tree, &out, "app:gzip", &[]);
    support::pack(tree, &out, "other:zstd", &["--compression", "zstd"]);
    out
}

/// `kiln push OUT --to TO --jobs 1` succeeds and prints the image `app` with `digest`.
fn push_one_at_a_time(out: &Path, to: &str, digest: &str) {
    let push = support::run(support::kiln().arg("push").arg(out).args([
        "--to",
        to,
        "--insecure-http",
        "--jobs",
        "1",
    ]));
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    assert_eq!(String::from_utf8_lossy(&push.stdout), format!("{to}/app@{digest}\n"));
}

fn push_json(layout: &Path, to: &str, extra: &[&str]) -> Vec<Value> {
    let stdout = support::ok(
        support::kiln().arg("push").arg(layout).args(["--to", to, "--insecure-http", "--json"]).args(extra),
    );
    serde_json::from_str::<Value>(&stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn push_then_skopeo_reads_the_same_digests() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("skopeo") {
        return;
    }
    let (work, tree) = support::fixture();
    let out = two_images(work.path(), &tree);
    let to = format!("{}/kiln/test", registry.address);

    let stdout = support::ok(support::kiln().arg("push").arg(&out).args([
        "--to",
        &to,
        "--insecure-http",
        "--tag",
        "extra",
    ]));
    let gzip = support::manifest_digest(&out, "app:gzip");
    let zstd = support::manifest_digest(&out, "other:zstd");
    assert_eq!(stdout, format!("{to}/app@{gzip}\n{to}/other@{zstd}\n"));

    for (repository, tag, digest) in
        [("app", "gzip", &gzip), ("app", "extra", &gzip), ("other", "zstd", &zstd)]
    {
        let source = format!("docker://{to}/{repository}:{tag}");
        let inspect: Value =
            serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &source])).unwrap();
        assert_eq!(inspect["Digest"], digest.as_str(), "{source}");
        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &source]);
        assert_eq!(
            raw.as_bytes(),
            fs::read(support::blob_path(&out, digest)).unwrap(),
            "exact manifest bytes"
        );
    }
    let back = work.path().join("back");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--preserve-digests",
        &format!("docker://{to}/app:gzip"),
        &format!("oci:{}:app:gzip", back.display()),
    ]);
    assert_eq!(support::manifest_digest(&back, "app:gzip"), gzip);
    let (layer, _, _) = support::layer_of(&out, "app:gzip");
    assert_eq!(
        fs::read(support::blob_path(&back, &layer)).unwrap(),
        fs::read(support::blob_path(&out, &layer)).unwrap()
    );
}

#[test]
fn second_push_uploads_nothing_and_shared_blobs_are_mounted() {
    let Some(registry) = Registry::start() else { return };
    let (work, tree) = support::fixture();
    let out = two_images(work.path(), &tree);
    let to = format!("{}/mount", registry.address);

    let first = push_json(&out, &to, &[]);
    // app:gzip uploads its config and layer; other:zstd shares the config (same diff_id and
    // epoch), which is mounted across repositories, and uploads only its own layer.
    assert_eq!(first[0]["uploadedBlobs"], 2, "{first:#?}");
    assert_eq!(first[1]["uploadedBlobs"], 1, "{first:#?}");
    let second = push_json(&out, &to, &[]);
    for image in &second {
        assert_eq!(
            (image["uploadedBlobs"].as_u64(), image["uploadedBytes"].as_u64()),
            (Some(0), Some(0)),
            "{second:#?}"
        );
    }
    let only = push_json(&out, &to, &["--image", "other:zstd"]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["image"], "other:zstd");
}

#[test]
fn skopeo_push_then_kiln_pull_gives_the_same_digests() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("skopeo") {
        return;
    }
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    let digest = support::pack(&tree, &out, "app:v1", &[]);
    let remote = format!("{}/by-skopeo/app:v1", registry.address);
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--preserve-digests",
        &format!("oci:{}:app:v1", out.display()),
        &format!("docker://{remote}"),
    ]);

    let pulled = work.path().join("pulled");
    let stdout =
        support::ok(support::kiln().args(["pull", &remote, "--insecure-http", "--out"]).arg(&pulled));
    assert_eq!(stdout, format!("by-skopeo/app:v1 {digest}\n"));
    assert_eq!(support::manifest_digest(&pulled, "by-skopeo/app:v1"), digest);
    let diff = support::run(
        support::kiln()
            .arg("diff")
            .arg(format!("{}:app:v1", out.display()))
            .arg(format!("{}:by-skopeo/app:v1", pulled.display())),
    );
    assert_eq!(diff.status.code(), Some(0), "{}", String::from_utf8_lossy(&diff.stdout));

    // inspect REF reads the registry directly.
    let inspect: Value = serde_json::from_str(&support::ok(support::kiln().args([
        "inspect",
        "--json",
        "--insecure-http",
        &remote,
    ])))
    .unwrap();
    assert_eq!(inspect["images"][0]["digest"], digest.as_str());
    assert_eq!(inspect["images"][0]["kind"], "image");
}

#[test]
fn an_image_index_round_trips() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("skopeo") {
        return;
    }
    let (work, tree) = support::fixture();
    let out = two_images(work.path(), &tree);
    // An index of the two images as two platforms, stored and named in the layout.
    let entries: Vec<Value> = [("app:gzip", "amd64"), ("other:zstd", "arm64")]
        .iter()
        .map(|(name, arch)| {
            let digest = support::manifest_digest(&out, name);
            let size = fs::metadata(support::blob_path(&out, &digest)).unwrap().len();
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                               "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries})).unwrap();
    let index_digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&index)));
    fs::write(support::blob_path(&out, &index_digest), &index).unwrap();
    let mut layout_index = support::index(&out);
    layout_index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi:v1"}}));
    fs::write(out.join("index.json"), serde_json::to_vec(&layout_index).unwrap()).unwrap();

    let to = format!("{}/idx", registry.address);
    support::ok(support::kiln().arg("push").arg(&out).args([
        "--to",
        &to,
        "--insecure-http",
        "--image",
        "multi:v1",
    ]));
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{to}/multi:v1")]);
    assert_eq!(raw.as_bytes(), index.as_slice());

    let pulled = work.path().join("pulled");
    support::ok(
        support::kiln()
            .args(["pull", &format!("{to}/multi:v1"), "--insecure-http", "--name", "multi:v1", "--out"])
            .arg(&pulled),
    );
    assert_eq!(support::manifest_digest(&pulled, "multi:v1"), index_digest);
    let summary: Value =
        serde_json::from_str(&support::ok(support::kiln().args(["inspect", "--json"]).arg(&pulled))).unwrap();
    let children = summary["images"][0]["manifests"].as_array().unwrap();
    assert_eq!(summary["images"][0]["kind"], "index");
    assert_eq!(
        children.iter().map(|c| c["platform"].as_str().unwrap()).collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    // Every layer of both platforms arrived.
    skopeo(&["inspect", &format!("oci:{}:multi:v1", pulled.display())]);
}

#[test]
fn registry_errors_name_the_url_and_status() {
    let Some(registry) = Registry::start() else { return };
    let (work, _tree) = support::fixture();
    let missing = support::run(
        support::kiln()
            .args(["pull", &format!("{}/nothing/here:v1", registry.address), "--insecure-http", "--out"])
            .arg(work.path().join("o")),
    );
    assert_eq!(missing.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("returned 404") && stderr.contains("MANIFEST_UNKNOWN"), "{stderr}");
    assert!(!work.path().join("o").exists(), "no partial layout");

    // Nothing listens on this port (the listener is closed again before kiln connects).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = support::run(support::kiln().args(["inspect", &format!("127.0.0.1:{port}/x:v1")]));
    assert_eq!(refused.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("cannot reach https://127.0.0.1:{port}/v2/x/manifests/v1")), "{stderr}");
    assert!(stderr.contains("hint: if the registry serves plain HTTP, pass --insecure-http"), "{stderr}");
}

#[test]
fn htpasswd_over_tls_with_a_private_ca() {
    let (user, password) = ("kiln-ci", "s3cret-Pa55word");
    let Some(registry) = Registry::start_with(&support::Access::Htpasswd { user, password }) else { return };
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    let digest = support::pack(&tree, &out, "app:v1", &[]);
    let to = format!("{}/private", registry.address);
    let ca = registry.ca_cert();
    let encode = |secret: &str| crate::token_server::base64(format!("{user}:{secret}").as_bytes(), false);
    let secrets =
        [password.to_owned(), encode(password), "wrong-Pa55word".to_owned(), encode("wrong-Pa55word")];
    let assert_no_secret = |output: &std::process::Output| {
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a credential leaked into the output:\n{text}");
        }
    };

    // The right password, with the test CA trusted: push and pull work.
    let good = work.path().join("good");
    let auths = serde_json::json!({ registry.address.clone(): { "auth": encode(password) } });
    let push = support::run(
        support::kiln_with_credentials(&good, &auths)
            .arg("push")
            .arg(&out)
            .args(["--to", &to, "--ca-cert"])
            .arg(&ca),
    );
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    assert_eq!(String::from_utf8_lossy(&push.stdout), format!("{to}/app@{digest}\n"));
    assert_no_secret(&push);
    let pulled = work.path().join("pulled");
    let pull = support::run(
        support::kiln_with_credentials(&good, &auths)
            .args(["pull", &format!("{to}/app:v1"), "--ca-cert"])
            .arg(&ca)
            .arg("--out")
            .arg(&pulled),
    );
    assert!(pull.status.success(), "{}", String::from_utf8_lossy(&pull.stderr));
    assert_eq!(support::manifest_digest(&pulled, "private/app:v1"), digest);

    // A wrong password: refused, clearly, without echoing it.
    let bad = work.path().join("bad");
    let wrong = serde_json::json!({ registry.address.clone(): { "auth": encode("wrong-Pa55word") } });
    let refused = support::run(
        support::kiln_with_credentials(&bad, &wrong)
            .arg("push")
            .arg(&out)
            .args(["--to", &to, "--ca-cert"])
            .arg(&ca),
    );
    assert_eq!(refused.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("{} refused access to repository:private/app:pull,push", registry.address)),
        "{stderr}"
    );
    assert!(stderr.contains("hint: log in to"), "{stderr}");
    assert_no_secret(&refused);

    // No credentials at all, and no CA: each failure says what is missing.
    let none = support::run(
        support::kiln_with_credentials(&work.path().join("none"), &serde_json::json!({}))
            .arg("push")
            .arg(&out)
            .args(["--to", &to, "--ca-cert"])
            .arg(&ca),
    );
    assert_eq!(none.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("none is configured"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
    let untrusted =
        support::run(support::kiln_with_credentials(&good, &auths).arg("push").arg(&out).args(["--to", &to]));
    assert_eq!(untrusted.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("--ca-cert FILE"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    assert_no_secret(&untrusted);
}

#[test]
fn bearer_tokens_from_a_token_server() {
    let (user, password) = ("kiln-ci", "t0ken-Pa55word");
    if !support::require_tool("openssl") {
        return;
    }
    let (work, tree) = support::fixture();
    // The first token the server issues has a broken signature: the registry answers 401 and
    // kiln must run the challenge again, as when a token expires mid-push.
    let tokens = crate::token_server::TokenServer::start(work.path(), user, password, 1);
    let access =
        support::Access::Token { realm: tokens.realm.clone(), certificate: tokens.certificate.clone() };
    let Some(registry) = Registry::start_with(&access) else { return };
    let out = two_images(work.path(), &tree);
    let to = format!("{}/tokens", registry.address);
    let auths = serde_json::json!({ registry.address.clone(): { "username": user, "password": password } });
    let good = work.path().join("good");
    let push = support::run(support::kiln_with_credentials(&good, &auths).arg("push").arg(&out).args([
        "--to",
        &to,
        "--insecure-http",
    ]));
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    let log = tokens.log.lock().unwrap().clone();
    assert!(log.iter().all(|(_, granted)| *granted), "{log:#?}");
    let first_scope = &log[0].0;
    assert_eq!(
        log.iter().filter(|(scopes, _)| scopes == first_scope).count(),
        2,
        "the refused first token was fetched again for the same scope: {log:#?}"
    );
    // The second image's shared config blob was mounted: its token names both repositories.
    assert!(
        log.iter().any(|(scopes, _)| scopes.contains(&"repository:tokens/other:pull,push".to_owned())
            && scopes.contains(&"repository:tokens/app:pull".to_owned())),
        "{log:#?}"
    );
    let pulled = work.path().join("pulled");
    support::ok(
        support::kiln_with_credentials(&good, &auths)
            .args(["pull", &format!("{to}/app:gzip"), "--insecure-http", "--out"])
            .arg(&pulled),
    );
    assert_eq!(
        support::manifest_digest(&pulled, "tokens/app:gzip"),
        support::manifest_digest(&out, "app:gzip")
    );

    let wrong =
        serde_json::json!({ registry.address.clone(): { "username": user, "password": "nope-Pa55word" } });
    let refused = support::run(
        support::kiln_with_credentials(&work.path().join("bad"), &wrong).arg("push").arg(&out).args([
            "--to",
            &to,
            "--insecure-http",
        ]),
    );
    assert_eq!(refused.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("refused access") && stderr.contains("answered 401"), "{stderr}");
    assert!(!stderr.contains("nope-Pa55word"), "{stderr}");
}

#[test]
fn push_survives_resets_503s_and_429s() {
    use crate::proxy::{Fault, Proxy, Rule};
    let Some(registry) = Registry::start() else { return };
    let (work, tree) = support::fixture();
    let out = work.path().join("out");
    let digest = support::pack(&tree, &out, "app:v1", &[]);
    let rule = |method, path, fault, times| Rule { method, path, min_body: 0, fault, times };
    let proxy = Proxy::start(
        &registry.address,
        vec![
            rule("HEAD", "/blobs/sha256:", Fault::TooManyRequests(1), 1),
            rule("POST", "/blobs/uploads/", Fault::Status(503), 2),
            // The layer is ~300 KB: its first upload breaks off 64 KiB into the body.
            rule("PUT", "/blobs/uploads/", Fault::ResetAfter(64 * 1024), 1),
            rule("PUT", "/blobs/uploads/", Fault::Status(502), 1),
            rule("PUT", "/manifests/", Fault::Status(503), 1),
            rule("GET", "/v2/", Fault::Status(500), 1),
        ],
    );
    let to = format!("{}/faults", proxy.address);
    let started = std::time::Instant::now();
    push_one_at_a_time(&out, &to, &digest);
    let counts = proxy.counts();
    // Every fault was injected as planned (the GET rule never matches: kiln does not probe).
    assert_eq!(counts.injected, [1, 2, 1, 1, 1, 0], "{counts:#?}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 was honoured");
    let puts =
        counts.requests.iter().filter(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/")).count();
    assert_eq!(puts, 2 + 2, "two blobs, plus a new session for each failed upload: {counts:#?}");

    // The registry, read directly, has the image intact: skopeo verifies every blob digest.
    let pulled = work.path().join("pulled");
    support::ok(
        support::kiln()
            .args(["pull", &format!("{}/faults/app:v1", registry.address), "--insecure-http", "--out"])
            .arg(&pulled),
    );
    assert_eq!(support::manifest_digest(&pulled, "faults/app:v1"), digest);
    let (layer, _, _) = support::layer_of(&out, "app:v1");
    assert_eq!(
        fs::read(support::blob_path(&pulled, &layer)).unwrap(),
        fs::read(support::blob_path(&out, &layer)).unwrap()
    );
}

#[test]
fn a_two_gib_layer_pushes_in_bounded_memory() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("/usr/bin/time") {
        return;
    }
    let work = support::tempdir();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    // A sparse 2 GiB file: cheap to create, and an uncompressed layer of 2 GiB on disk.
    fs::File::create(tree.join("disk.img")).unwrap().set_len(2 << 30).unwrap();
    let out = work.path().join("out");
    let digest = support::pack(&tree, &out, "big:v1", &["--compression", "none"]);
    let (layer, _, _) = support::layer_of(&out, "big:v1");
    assert!(fs::metadata(support::blob_path(&out, &layer)).unwrap().len() > 2 << 30);

    let to = format!("{}/big", registry.address);
    let rss = work.path().join("rss");
    let output = support::run(
        Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss)
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .arg("push")
            .arg(&out)
            .args(["--to", &to, "--insecure-http"]),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{to}/big@{digest}\n"));
    let peak_kib: u64 = fs::read_to_string(&rss).unwrap().trim().parse().unwrap();
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB pushing a 2 GiB layer");
    // The registry has the whole layer: its HEAD reports the size.
    let inspect: Value = serde_json::from_str(&support::ok(support::kiln().args([
        "inspect",
        "--json",
        "--insecure-http",
        &format!("{to}/big:v1"),
    ])))
    .unwrap();
    assert_eq!(
        inspect["images"][0]["layers"][0]["size"],
        fs::metadata(support::blob_path(&out, &layer)).unwrap().len()
    );
}

#[test]
fn chunked_uploads_where_a_proxy_refuses_large_bodies() {
    use crate::proxy::{Fault, Proxy, Rule};
    const MIB: u64 = 1 << 20;
    let Some(registry) = Registry::start() else { return };
    let work = support::tempdir();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("data"), support::big_content().repeat(26)).unwrap();
    let out = work.path().join("out");
    let digest = support::pack(&tree, &out, "app:v1", &["--compression", "none"]);
    let (layer, _, _) = support::layer_of(&out, "app:v1");
    let layer_size = fs::metadata(support::blob_path(&out, &layer)).unwrap().len();
    assert!(layer_size > 10 * MIB);

    // A proxy that refuses request bodies over 3 MiB, before a registry that asks for chunks of
    // at least `min` bytes.
    let proxy_for = |min: &'static str| {
        let rule =
            |method, min_body, fault, times| Rule { method, path: "/blobs/uploads/", min_body, fault, times };
        Proxy::start(
            &registry.address,
            vec![
                rule("POST", 0, Fault::AddHeader(min), usize::MAX),
                rule("PUT", 1, Fault::Status(413), usize::MAX),
                rule("PATCH", 3 * MIB + 1, Fault::Status(413), usize::MAX),
                // The first chunk that gets through breaks off: its session is abandoned.
                rule("PATCH", 0, Fault::ResetAfter(100 * 1024), 1),
            ],
        )
    };

    let proxy = proxy_for("OCI-Chunk-Min-Length: 1048576");
    let to = format!("{}/chunked", proxy.address);
    push_one_at_a_time(&out, &to, &digest);
    let counts = proxy.counts();
    let posts = counts.requests.iter().filter(|r| r.starts_with("POST ")).count();
    assert_eq!(counts.injected[0], posts, "{counts:#?}");
    assert_eq!(counts.injected[1], 1, "only the first monolithic PUT is tried: {counts:#?}");
    assert!(counts.injected[2] >= 1, "large chunks were refused and made smaller: {counts:#?}");
    assert_eq!(counts.injected[3], 1, "{counts:#?}");
    let patches: Vec<u64> = counts
        .requests
        .iter()
        .zip(&counts.body_lengths)
        .filter(|(r, _)| r.starts_with("PATCH "))
        .map(|(_, &length)| length)
        .collect();
    // Chunks under the minimum are only a blob's last: the layer's and the small config's.
    assert!(patches.iter().filter(|&&l| l < MIB).count() <= 2, "{patches:?}");
    let accepted: u64 = patches.iter().filter(|&&l| l <= 3 * MIB).sum();
    assert!(accepted >= layer_size, "the layer went through in chunks: {patches:?}");

    let pulled = work.path().join("pulled");
    support::ok(
        support::kiln()
            .args(["pull", &format!("{}/chunked/app:v1", registry.address), "--insecure-http", "--out"])
            .arg(&pulled),
    );
    assert_eq!(support::manifest_digest(&pulled, "chunked/app:v1"), digest);
    assert_eq!(
        fs::read(support::blob_path(&pulled, &layer)).unwrap(),
        fs::read(support::blob_path(&out, &layer)).unwrap()
    );

    // A registry minimum above the proxy's limit cannot work: the error says why.
    let proxy = proxy_for("OCI-Chunk-Min-Length: 4194304");
    let to = format!("{}/stuck", proxy.address);
    let push = support::run(support::kiln().arg("push").arg(&out).args(["--to", &to, "--insecure-http"]));
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert_eq!(push.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("PATCH") && stderr.contains("413"), "{stderr}");
    assert!(stderr.contains("OCI-Chunk-Min-Length"), "{stderr}");
}
