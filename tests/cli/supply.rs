//! SBOMs and provenance of built images: valid SPDX (checked by `pyspdxtools`), complete (every
//! file of the image, every source that fed it), the provenance naming the image and its
//! sources, byte-identical across builds, attached in the layout and pushed as referrers (the
//! referrers tag on Debian's `docker-registry`, which has no referrers API).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{self, Registry};

const SPDX: &str = "application/spdx+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// A small recipe: a source tarball (unpacked), a directory of the recipe, and a step that
/// puts both and an ELF program from the toolchain into the image `supply:test`.
fn recipe(dir: &Path) -> (PathBuf, String) {
    let recipe = dir.join("recipe");
    let payload = dir.join("payload");
    for (path, content) in [("payload-1.0/share/data.txt", "data\n"), ("payload-1.0/share/more/b.txt", "b\n")]
    {
        let file = payload.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, content).unwrap();
    }
    fs::create_dir_all(recipe.join("files")).unwrap();
    fs::write(recipe.join("files/README"), "supply-chain test\n").unwrap();
    support::ok(
        Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(recipe.join("payload-1.0.tar.gz"))
            .arg("-C")
            .arg(&payload)
            .arg("payload-1.0"),
    );
    let sha256 = support::sha256_file(&recipe.join("payload-1.0.tar.gz"));
    let sha256 = sha256.trim_start_matches("sha256:").to_owned();
    fs::write(
        recipe.join("kiln.toml"),
        format!(
            r#"[recipe]
name = "supply"
source-date-epoch = 1735689600

[sources.payload]
path = "payload-1.0.tar.gz"
sha256 = "{sha256}"
unpack = true
strip-components = 1

[sources.files]
path = "files"

[steps.assemble]
inputs = ["payload", "files"]
script = """
mkdir -p /out/usr/bin /out/usr/share/supply
cp /usr/bin/true /out/usr/bin/supply-true
cp -R /inputs/payload/share/. /out/usr/share/supply/
cp /inputs/files/README /out/usr/share/supply/README
ln -s supply-true /out/usr/bin/alias
"""

[images."supply:test"]
from = "assemble"
"#
        ),
    )
    .unwrap();
    (recipe, sha256)
}

fn build(recipe: &Path, out: &Path, cache: &Path) {
    support::ok(support::kiln().env("KILN_CACHE", cache).arg("build").arg(recipe).arg("--out").arg(out));
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// `pyspdxtools`, from PATH or the venv `scripts/install-deps` makes; `None` (said why) without.
fn pyspdxtools() -> Option<PathBuf> {
    let venv = PathBuf::from("/opt/kiln-venv/bin/pyspdxtools");
    if venv.exists() {
        return Some(venv);
    }
    support::require_tool("pyspdxtools").then(|| PathBuf::from("pyspdxtools"))
}

fn validate(sbom: &Path) {
    let Some(tool) = pyspdxtools() else { return };
    let output = support::run(Command::new(tool).arg("-i").arg(sbom));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && !text.contains("invalid"), "{}: {text}", sbom.display());
}

/// The artifacts `index.json` lists about `image`: artifactType → manifest digest.
fn artifacts(out: &Path, image: &str) -> Vec<(String, String)> {
    let index = support::index(out);
    let mut found: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["annotations"]["dev.kiln.subject"] == image)
        .map(|m| {
            assert!(m["annotations"].get("org.opencontainers.image.ref.name").is_none(), "{m}");
            (m["artifactType"].as_str().unwrap().to_owned(), m["digest"].as_str().unwrap().to_owned())
        })
        .collect();
    found.sort();
    found
}

/// Regular files of an image's (single) layer: `./path` → sha256 hex.
fn layer_files(out: &Path, image: &str, work: &Path) -> BTreeSet<(String, String)> {
    let (layer, _, _) = support::layer_of(out, image);
    let dir = work.join(format!("layer-{}", image.replace(':', "_")));
    fs::create_dir_all(&dir).unwrap();
    support::ok(Command::new("tar").arg("-xzf").arg(support::blob_path(out, &layer)).arg("-C").arg(&dir));
    support::tree_listing(&dir)
        .into_iter()
        .filter(|line| !line.contains(" -> ") && !line.split(' ').next().unwrap().ends_with('/'))
        .map(|line| {
            let mut parts = line.rsplitn(3, ' ');
            let digest = parts.next().unwrap().trim_start_matches("sha256:").to_owned();
            let _mode = parts.next();
            (format!("./{}", parts.next().unwrap()), digest)
        })
        .collect()
}

fn sbom_files(sbom: &Value) -> BTreeSet<(String, String)> {
    sbom["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let sums = f["checksums"].as_array().unwrap();
            let sum = |algorithm: &str| {
                sums.iter().find(|c| c["algorithm"] == algorithm).map(|c| c["checksumValue"].clone())
            };
            assert!(sum("SHA1").is_some(), "SPDX requires SHA1: {f}");
            (f["fileName"].as_str().unwrap().to_owned(), sum("SHA256").unwrap().as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn every_image_gets_a_valid_complete_sbom_and_provenance_attached() {
    let work = support::tempdir();
    let (recipe, payload_sha256) = recipe(work.path());
    let (out, cache) = (work.path().join("out"), work.path().join("cache"));
    build(&recipe, &out, &cache);
    let digest = support::manifest_digest(&out, "supply:test");
    let dir = work.path().join("out.attestations");
    let (sbom_path, provenance_path) =
        (dir.join("supply_test.spdx.json"), dir.join("supply_test.intoto.json"));
    validate(&sbom_path);

    // Every regular file of the image, with its SHA-256; the ELF program marked as one.
    let sbom = json(&sbom_path);
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    assert_eq!(sbom["creationInfo"]["created"], "2025-01-01T00:00:00Z");
    let hex = digest.trim_start_matches("sha256:");
    assert_eq!(sbom["documentNamespace"], format!("https://kiln.invalid/spdx/supply/test/sha256-{hex}"));
    assert_eq!(sbom_files(&sbom), layer_files(&out, "supply:test", work.path()));
    let program =
        sbom["files"].as_array().unwrap().iter().find(|f| f["fileName"] == "./usr/bin/supply-true").unwrap();
    assert_eq!(program["fileTypes"], serde_json::json!(["APPLICATION", "BINARY"]));

    // Every source that fed it, with its pin.
    let packages = sbom["packages"].as_array().unwrap();
    let sources: BTreeSet<&str> = packages
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "SOURCE")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, BTreeSet::from(["files", "payload"]));
    let payload = packages.iter().find(|p| p["name"] == "payload").unwrap();
    assert_eq!(payload["checksums"][0]["checksumValue"], payload_sha256.as_str());
    let relationships = sbom["relationships"].as_array().unwrap();
    assert!(
        relationships
            .iter()
            .any(|r| r["relationshipType"] == "DESCRIBES" && r["relatedSpdxElement"] == "SPDXRef-Image")
    );
    assert_eq!(relationships.iter().filter(|r| r["relationshipType"] == "GENERATED_FROM").count(), 2);

    // The provenance names the image by its manifest digest and the recipe's sources.
    let provenance = json(&provenance_path);
    assert_eq!(provenance["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(provenance["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(provenance["subject"][0]["digest"]["sha256"], hex);
    assert_eq!(provenance["subject"][0]["name"], "supply:test");
    let definition = &provenance["predicate"]["buildDefinition"];
    assert_eq!(definition["buildType"], "https://kiln.invalid/build/v1");
    assert_eq!(
        definition["externalParameters"]["recipe"]["sha256"],
        support::sha256_file(&recipe.join("kiln.toml")).trim_start_matches("sha256:")
    );
    assert_eq!(
        definition["externalParameters"]["lock"]["sha256"],
        support::sha256_file(&recipe.join("kiln.lock")).trim_start_matches("sha256:")
    );
    assert_eq!(definition["internalParameters"]["SOURCE_DATE_EPOCH"], "1735689600");
    assert_eq!(definition["internalParameters"]["environment"]["TZ"], "UTC");
    let dependencies: Vec<(&str, &Value)> = definition["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), &d["digest"]))
        .collect();
    assert_eq!(dependencies.len(), 2, "{dependencies:?}");
    assert_eq!(dependencies[1], ("payload", &serde_json::json!({ "sha256": payload_sha256 })));
    assert!(dependencies[0].1["kiln-tree-sha256"].is_string());
    assert_eq!(
        provenance["predicate"]["runDetails"]["builder"]["id"],
        format!("https://kiln.invalid/kiln@{}", env!("CARGO_PKG_VERSION"))
    );

    // Attached in the layout: artifact manifests about the image, holding the same bytes.
    let attached = artifacts(&out, "supply:test");
    assert_eq!(attached.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), [SPDX, IN_TOTO]);
    for (artifact_type, manifest_digest) in &attached {
        let manifest = support::blob_json(&out, manifest_digest);
        assert_eq!(manifest["artifactType"], artifact_type.as_str());
        assert_eq!(manifest["subject"]["digest"], digest.as_str());
        assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        assert_eq!(
            fs::read(support::blob_path(&out, manifest["config"]["digest"].as_str().unwrap())).unwrap(),
            b"{}"
        );
        assert_eq!(manifest["annotations"]["org.opencontainers.image.created"], "2025-01-01T00:00:00Z");
        let document = if artifact_type == SPDX { &sbom_path } else { &provenance_path };
        assert_eq!(
            fs::read(support::blob_path(&out, manifest["layers"][0]["digest"].as_str().unwrap())).unwrap(),
            fs::read(document).unwrap()
        );
    }
    // Other tools still see one image; kiln inspect shows the artifacts.
    if support::require_tool("skopeo") {
        support::ok(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:supply:test", out.display())));
    }
    let inspect = support::ok(support::kiln().arg("inspect").arg(&out));
    assert!(
        inspect.contains("artifact application/spdx+json") && inspect.contains(&format!("about {digest}")),
        "{inspect}"
    );
}

#[test]
fn sboms_and_provenance_are_the_same_bytes_from_another_build() {
    let work = support::tempdir();
    let (recipe_a, _) = recipe(&work.path().join("a"));
    let (recipe_b, _) = recipe(&work.path().join("b"));
    let (out_a, out_b) = (work.path().join("a/out"), work.path().join("b/out"));
    build(&recipe_a, &out_a, &work.path().join("a/cache"));
    support::ok(
        Command::new("sh")
            .args(["-c", "umask 077 && exec \"$@\"", "sh"])
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .arg("build")
            .arg(&recipe_b)
            .arg("--out")
            .arg(&out_b)
            .env("KILN_CACHE", work.path().join("b/cache"))
            .env("TZ", "America/New_York")
            .env_remove("SOURCE_DATE_EPOCH"),
    );
    for name in ["supply_test.spdx.json", "supply_test.intoto.json"] {
        let (a, b) = (
            work.path().join("a/out.attestations").join(name),
            work.path().join("b/out.attestations").join(name),
        );
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "{name}");
    }
    assert_eq!(fs::read(out_a.join("index.json")).unwrap(), fs::read(out_b.join("index.json")).unwrap());
    assert_eq!(artifacts(&out_a, "supply:test").len(), 2);
    // A rebuild into the same layout replaces the attachments rather than adding more.
    build(&recipe_a, &out_a, &work.path().join("a/cache"));
    assert_eq!(fs::read(out_a.join("index.json")).unwrap(), fs::read(out_b.join("index.json")).unwrap());
}

#[test]
fn push_sends_the_attestations_as_referrers_through_the_referrers_tag() {
    let Some(registry) = Registry::start() else { return };
    if !support::require_tool("curl") {
        return;
    }
    let work = support::tempdir();
    let (recipe, _) = recipe(work.path());
    let out = work.path().join("out");
    build(&recipe, &out, &work.path().join("cache"));
    let digest = support::manifest_digest(&out, "supply:test");
    let to = format!("{}/kiln", registry.address);
    let stdout =
        support::ok(support::kiln().arg("push").arg(&out).args(["--to", &to, "--insecure-http", "--json"]));
    let pushed: Value = serde_json::from_str(&stdout).unwrap();
    let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    assert_eq!(pushed[0]["referrersTag"], tag.as_str());
    assert_eq!(pushed[0]["referrers"].as_array().unwrap().len(), 2);

    let get = |path: &str| -> (u16, Vec<u8>) {
        let output = support::run(Command::new("curl").args(["-s", "-o", "-", "-w", "\n%{http_code}", "-H"]).arg(
            "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        ).arg(format!("http://{}/v2/kiln/supply/{path}", registry.address)));
        let body = output.stdout;
        let split = body.iter().rposition(|&b| b == b'\n').unwrap();
        (String::from_utf8_lossy(&body[split + 1..]).parse().unwrap(), body[..split].to_vec())
    };
    // The registry has no referrers API: the referrers tag lists both artifacts.
    assert_eq!(get(&format!("referrers/{digest}")).0, 404);
    let (status, body) = get(&format!("manifests/{tag}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let mut listed: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert!(m["annotations"]["org.opencontainers.image.created"].is_string(), "{m}");
            (m["artifactType"].as_str().unwrap().to_owned(), m["digest"].as_str().unwrap().to_owned())
        })
        .collect();
    listed.sort();
    assert_eq!(listed, artifacts(&out, "supply:test"));
    // Each artifact manifest is there by digest, about the image.
    for (_, manifest_digest) in &listed {
        let (status, body) = get(&format!("manifests/{manifest_digest}"));
        assert_eq!(status, 200);
        assert_eq!(body, fs::read(support::blob_path(&out, manifest_digest)).unwrap());
        let manifest: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(manifest["subject"]["digest"], digest.as_str());
    }
    if support::require_tool("skopeo") {
        let raw = support::ok(
            Command::new("skopeo")
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{to}/supply:{tag}")),
        );
        assert_eq!(raw.as_bytes(), body);
    }

    // Pushing again leaves the referrers tag as it was.
    support::ok(support::kiln().arg("push").arg(&out).args(["--to", &to, "--insecure-http"]));
    assert_eq!(get(&format!("manifests/{tag}")).1, body);
}

/// The smoke recipe's kernel and extension images, when `scripts/smoke` (or the kernel tests)
/// built them into the shared cache: valid SBOMs that list the kernel and every module with its
/// version.
#[test]
fn the_smoke_kernel_and_extension_sboms_list_the_kernel_and_modules() {
    let cache = support::shared_cache();
    if !cache.join("steps").is_dir() {
        support::eprintln_skip("the smoke kernel is not in the shared cache; scripts/smoke builds it");
        return;
    }
    if !support::require_tool("musl-gcc") {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    let out = work.path().join("out");
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", &cache)
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(&out)
            .arg("--offline"),
    );
    if !output.status.success() {
        assert!(std::env::var_os("CI").is_none(), "{}", String::from_utf8_lossy(&output.stderr));
        support::eprintln_skip("the smoke recipe does not build offline from the shared cache");
        return;
    }
    let dir = work.path().join("out.attestations");
    for image in ["kernel_smoke", "solana-optimizer_smoke", "installer_smoke"] {
        let path = dir.join(format!("{image}.spdx.json"));
        validate(&path);
        support::eprintln_skip(&format!(
            "(figure) SBOM of {image}: {} bytes",
            fs::metadata(&path).unwrap().len()
        ));
    }
    let kernel = json(&dir.join("kernel_smoke.spdx.json"));
    let packages = kernel["packages"].as_array().unwrap();
    let linux =
        packages.iter().find(|p| p["primaryPackagePurpose"] == "OPERATING-SYSTEM").expect("the kernel");
    assert_eq!(linux["name"], "linux");
    // The release of the kernel Debian's linux-source-6.12 holds today, with the recipe's suffix.
    let release = format!("{}-kiln-smoke", support::linux_version(&support::linux_source().unwrap()));
    assert_eq!(linux["versionInfo"], release.as_str());
    assert!(linux["annotations"][0]["comment"].as_str().unwrap().starts_with("config digest: sha256:"));
    let modules: Vec<&Value> =
        packages.iter().filter(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-Module-")).collect();
    let module_files = kernel["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["fileName"].as_str().unwrap().ends_with(".ko"))
        .count();
    assert_eq!(modules.len(), module_files);
    assert!(modules.iter().all(|m| m["comment"].as_str().unwrap().contains("signer: ")), "{modules:?}");
    assert!(modules.iter().all(|m| m["versionInfo"] == release.as_str()), "{modules:?}");
    let extension = json(&dir.join("solana-optimizer_smoke.spdx.json"));
    let optimizer = extension["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "solana_optimizer" || p["name"] == "solana-optimizer")
        .expect("the optimizer module");
    assert!(optimizer["versionInfo"].is_string(), "{optimizer}");
    let sources: BTreeSet<&str> = extension["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "SOURCE")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains("linux") && sources.contains("optimizer") && sources.contains("compat-src"),
        "{sources:?}"
    );
}
