//! Attestations of built images: what fed each image (its sources and steps, found by walking
//! the step graph back from the image), its SBOM ([`crate::sbom`]) and provenance
//! ([`crate::provenance`]), attached to the image in the output layout and written beside it.
//!
//! In the layout each document is an OCI artifact manifest whose `subject` is the image's
//! manifest (see [`kiln_layers::oci::artifact`]): `application/spdx+json` for the SBOM,
//! `application/vnd.in-toto+json` for the provenance, listed in `index.json` with their
//! `artifactType` and `dev.kiln.subject = NAME:TAG`. The same documents are written to
//! `<OUT>.attestations/<NAME>_<TAG>.spdx.json` and `<NAME>_<TAG>.intoto.json` (`/` and `:` of
//! the image's name become `_`), each by atomic rename. Same inputs, same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use kiln_layers::digest::Digest;
use kiln_layers::oci::artifact::{self, Attachment};
use kiln_layers::oci::layout::LayoutWriter;
use kiln_layers::oci::media_type;
use kiln_layers::oci::spec::Descriptor;
use kiln_reproducible::Epoch;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::recipe::Recipe;

/// A source that fed an image, as its SBOM and provenance name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInput {
    /// The source's name in the recipe.
    pub name: String,
    /// Where it comes from, as the recipe writes it (URL, image, path).
    pub origin: String,
    /// A URI for it: the `http(s)` URL, `oci://REGISTRY/REPOSITORY@DIGEST` for an image,
    /// `file:PATH` for a file or directory of the recipe (relative to the recipe directory).
    pub uri: String,
    /// Whether it is an `http(s)` download (the URI is where it can be had again).
    pub downloadable: bool,
    /// Digests by algorithm: `sha256`, `sha512` (a file's, or an image's manifest's),
    /// `kiln-tree-sha256` (a directory's content, as `kiln_builder::tree::digest_as_committed`).
    pub digests: BTreeMap<String, String>,
    /// Whether `--source` replaced it for this build (its pin was not checked).
    pub overridden: bool,
    /// For a file a Debian package installs: the package as `kiln.lock` pins it, as a purl
    /// (`pkg:deb/debian/NAME@VERSION?arch=ARCH`), and its version.
    pub package: Option<(String, String)>,
}

/// A step on the way to an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepInput {
    /// The step's name.
    pub name: String,
    /// Its cache key (SHA-256 over everything it can see).
    pub key: String,
    /// The digest of its output tree.
    pub output: String,
}

/// One packed image and what fed it.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// `NAME:TAG` in the layout.
    pub name: String,
    /// The image's manifest.
    pub manifest: Descriptor,
    /// The tree packed as its own (top) layer.
    pub tree: PathBuf,
    /// Sources that flowed into it (through steps, or as a base), by name.
    pub sources: Vec<SourceInput>,
    /// Steps on the way to it, in build order.
    pub steps: Vec<StepInput>,
    /// Its base image: `NAME:TAG` (of this recipe) or the source's name, and the manifest digest.
    pub base: Option<(String, Digest)>,
    /// The kernel's source, when the kernel's step is among [`steps`](Self::steps).
    pub kernel_source: Option<String>,
}

/// What every image of one build shares.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The build's time.
    pub epoch: Epoch,
    /// `[recipe] name`.
    pub recipe: String,
    /// SHA-256 of `kiln.toml`.
    pub recipe_sha256: String,
    /// SHA-256 of `kiln.lock`, when the recipe has one (after the build).
    pub lock_sha256: Option<String>,
    /// The sandbox's environment, without a step's own variables.
    pub environment: BTreeMap<String, String>,
    /// The sandbox's hostname.
    pub hostname: String,
    /// The toolchain's identity as the steps' keys use it, when a step was keyed.
    pub toolchain: Option<String>,
}

/// The attestations of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Attested {
    /// The SBOM's artifact manifest.
    pub sbom: Digest,
    /// The provenance's artifact manifest.
    pub provenance: Digest,
}

/// The sources and steps an image is made of: everything its `from` step reads, transitively,
/// and its base's (an image source, or another image of the recipe and what fed that).
pub fn image_graph(recipe: &Recipe, image: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut sources, mut steps) = (BTreeSet::new(), BTreeSet::new());
    let mut images = vec![image.to_owned()];
    let mut seen_images = BTreeSet::new();
    while let Some(name) = images.pop() {
        if !seen_images.insert(name.clone()) {
            continue;
        }
        let Some(image) = recipe.images.get(&name) else { continue };
        let mut pending: Vec<String> = image.from.iter().cloned().collect();
        while let Some(node) = pending.pop() {
            if recipe.sources.contains_key(&node) {
                sources.insert(node);
            } else if steps.insert(node.clone()) {
                pending.extend(recipe.inputs(&node));
            }
        }
        match &image.base {
            Some(base) if recipe.sources.contains_key(base) => {
                sources.insert(base.clone());
            }
            Some(base) => images.push(base.clone()),
            None => {}
        }
    }
    (sources, steps)
}

/// A source as the attestations name it: its URI and the digests the build held it to (the
/// recipe's pin, or `kiln.lock`'s; for `--source`, what was used).
pub(crate) fn source_input(
    recipe: &Recipe,
    name: &str,
    lock: Option<&crate::lock::Lock>,
    fetched: Option<&crate::source::Fetched>,
) -> Result<SourceInput> {
    let source = &recipe.sources[name];
    let origin = crate::source::recipe_origin(source);
    let file_uri =
        |path: &str| if path.starts_with('/') { format!("file://{path}") } else { format!("file:{path}") };
    let mut input = SourceInput {
        name: name.to_owned(),
        origin: origin.clone(),
        uri: file_uri(&origin),
        downloadable: false,
        digests: BTreeMap::new(),
        overridden: false,
        package: None,
    };
    if let Some(fetched) = fetched.filter(|f| f.overridden) {
        input.overridden = true;
        match &fetched.sha256 {
            Some(sha256) => input.digests.insert("sha256".into(), sha256.clone()),
            None => input.digests.insert(
                "kiln-tree-sha256".into(),
                fetched.identity.rsplit(':').next().unwrap_or_default().to_owned(),
            ),
        };
        return Ok(input);
    }
    if crate::source::is_local_dir(recipe, source) {
        let identity = crate::source::identity(recipe, source)?;
        let digest = identity.rsplit(':').next().unwrap_or_default().to_owned();
        input.digests.insert("kiln-tree-sha256".into(), digest);
        return Ok(input);
    }
    let resolved = crate::source::resolve(recipe, name, lock).unwrap_or_else(|_| source.clone());
    if let Some(image) = &resolved.image {
        input.uri = format!("oci://{image}");
        if let Some(digest) = crate::source::image_digest(&resolved) {
            input.uri = match image.split_once('@') {
                Some(_) => format!("oci://{image}"),
                None => format!("oci://{image}@{digest}"),
            };
            input.digests.insert(digest.algorithm().name().to_owned(), digest.encoded().to_owned());
        }
        return Ok(input);
    }
    if let Some(url) = &resolved.url {
        input.uri = url.clone();
        input.downloadable = true;
    }
    let locked = lock.and_then(|lock| lock.sources.get(name));
    if let (Some(package), Some(version), Some(architecture)) = (
        locked.and_then(|l| l.package.as_ref()),
        locked.and_then(|l| l.version.as_ref()),
        locked.and_then(|l| l.architecture.as_ref()),
    ) {
        input.package = Some((deb_purl(package, version, architecture), version.clone()));
    }
    let locked_sha256 = locked.map(|entry| entry.sha256.clone());
    let sha256 = resolved.sha256.clone().or(locked_sha256).or_else(|| fetched.and_then(|f| f.sha256.clone()));
    if let Some(sha256) = sha256.filter(|s| !s.is_empty()) {
        input.digests.insert("sha256".into(), sha256);
    }
    if let Some(sha512) = &resolved.sha512 {
        input.digests.insert("sha512".into(), sha512.clone());
    }
    Ok(input)
}

/// The package URL of a Debian package: `pkg:deb/debian/NAME@VERSION?arch=ARCH`, the version
/// percent-encoded where purl reserves a character (`:` of an epoch, `+`).
fn deb_purl(package: &str, version: &str, architecture: &str) -> String {
    let version: String = version
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '~' => c.to_string(),
            other => format!("%{:02X}", u32::from(other)),
        })
        .collect();
    format!("pkg:deb/debian/{package}@{version}?arch={architecture}")
}

/// Where the documents are written beside the layout `out`: `<OUT>.attestations`.
pub fn directory(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "out".into());
    name.push(".attestations");
    out.with_file_name(name)
}

/// The file name stem of an image's documents: `NAME_TAG`, `/` and `:` replaced by `_`.
pub fn file_stem(image: &str) -> String {
    image.replace(['/', ':'], "_")
}

/// Writes the SBOM and provenance of each image into the layout at `out` (as artifacts about
/// it) and into [`directory`]`(out)`.
pub fn attach(
    out: &Path,
    images: &[ImageInputs],
    context: &BuildContext,
) -> Result<BTreeMap<String, Attested>> {
    let created = context.epoch.to_rfc3339();
    let mut documents = Vec::new();
    for image in images {
        let sbom = crate::sbom::document(image, context)?;
        let provenance = crate::provenance::statement(image, context)?;
        documents.push((image, sbom, provenance));
    }
    let mut layout = LayoutWriter::create_or_update(out)?;
    let mut attested = BTreeMap::new();
    for (image, sbom, provenance) in &documents {
        let mut attach = |artifact_type, document: &[u8]| {
            let attachment = Attachment { artifact_type, document, created: &created };
            artifact::attach(&mut layout, &image.name, &image.manifest, &attachment).map(|d| d.digest)
        };
        let sbom_digest = attach(media_type::SPDX_JSON, sbom)?;
        let provenance_digest = attach(media_type::IN_TOTO_JSON, provenance)?;
        attested.insert(image.name.clone(), Attested { sbom: sbom_digest, provenance: provenance_digest });
    }
    layout.commit()?;
    let dir = directory(out);
    fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
    for (image, sbom, provenance) in &documents {
        let stem = file_stem(&image.name);
        write_atomically(&dir.join(format!("{stem}.spdx.json")), sbom)?;
        write_atomically(&dir.join(format!("{stem}.intoto.json")), provenance)?;
    }
    Ok(attested)
}

/// Writes a file by rename of a temporary file beside it, mode 0644.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_error = |source| Error::Write { path: path.to_owned(), source };
    let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir).map_err(write_error)?;
    temp.write_all(bytes).map_err(write_error)?;
    temp.as_file().set_permissions(fs::Permissions::from_mode(0o644)).map_err(write_error)?;
    temp.persist(path).map_err(|error| write_error(error.error))?;
    Ok(())
}

/// Encodes a document as canonical JSON.
pub(crate) fn encode<T: Serialize>(image: &str, what: &'static str, document: &T) -> Result<Vec<u8>> {
    kiln_reproducible::json::to_vec(document).map_err(|error| Error::Attestation {
        image: image.to_owned(),
        reason: format!("cannot encode the {what}: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn debian_purls_encode_what_purl_reserves_in_a_version() {
        assert_eq!(
            deb_purl("linux-source-6.12", "6.12.117-1~deb12u1", "all"),
            "pkg:deb/debian/linux-source-6.12@6.12.117-1~deb12u1?arch=all"
        );
        assert_eq!(
            deb_purl("busybox-static", "1:1.35.0-4+deb12u1+b1", "amd64"),
            "pkg:deb/debian/busybox-static@1%3A1.35.0-4%2Bdeb12u1%2Bb1?arch=amd64"
        );
    }

    /// A small image: a file, an executable ELF header, a module-like name that is no module.
    fn fixture() -> (tempfile::TempDir, ImageInputs, BuildContext) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tree = dir.path().join("tree");
        let write = |path: &str, bytes: &[u8], mode: u32| {
            let path = tree.join(path);
            fs::create_dir_all(path.parent().unwrap_or(&tree)).unwrap_or_else(|e| panic!("{e}"));
            fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
        };
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        elf[16] = 2;
        write("usr/bin/tool", &elf, 0o755);
        write("etc/motd", b"hello\n", 0o644);
        write("usr/lib/modules/6.12.0/extras/broken.ko", b"not a module", 0o644);
        let manifest = Descriptor::new(media_type::IMAGE_MANIFEST, Digest::sha256_of(b"manifest"), 8);
        let image = ImageInputs {
            name: "tool:v1".into(),
            manifest,
            tree,
            sources: vec![SourceInput {
                name: "tool-src".into(),
                origin: "https://example.invalid/tool-1.0.tar.gz".into(),
                uri: "https://example.invalid/tool-1.0.tar.gz".into(),
                downloadable: true,
                digests: [("sha256".to_owned(), "ab".repeat(32))].into(),
                overridden: false,
                package: None,
            }],
            steps: vec![StepInput { name: "tool".into(), key: "cd".repeat(32), output: "ef".repeat(32) }],
            base: None,
            kernel_source: None,
        };
        let context = BuildContext {
            epoch: Epoch::from_secs(1_735_689_600),
            recipe: "tool".into(),
            recipe_sha256: "01".repeat(32),
            lock_sha256: Some("02".repeat(32)),
            environment: crate::sandbox::Spec::new("", "", Epoch::from_secs(1_735_689_600)).environment(),
            hostname: crate::sandbox::HOSTNAME.into(),
            toolchain: Some("03".repeat(32)),
        };
        (dir, image, context)
    }

    /// Golden digests: a change of these documents' bytes is a visible, deliberate change.
    #[test]
    fn sbom_and_provenance_bytes_are_pinned() {
        let (_dir, image, context) = fixture();
        let sbom = crate::sbom::document(&image, &context).unwrap_or_else(|e| panic!("{e}"));
        let provenance = crate::provenance::statement(&image, &context).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&sbom);
        assert!(text.contains(r#""fileName":"./usr/bin/tool""#) && text.contains("unreadable"), "{text}");
        assert_eq!(
            (hex::encode(sha2::Sha256::digest(&sbom)), hex::encode(sha2::Sha256::digest(&provenance))),
            (
                "3f29f355f855ad2d1b72e96f186f9a66da143fdb7b09c0e52c39fb684c6dc9d2".to_owned(),
                "15ce7e8def5a03fcfe77c8d5439666b86c16f625b467a1e6cb9506259202d0cf".to_owned()
            ),
            "{text}\n{}",
            String::from_utf8_lossy(&provenance)
        );
    }

    #[test]
    fn the_graph_reaches_sources_through_steps_and_bases() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let text = r#"
[recipe]
name = "g"
[sources.a]
url = "https://example.invalid/a.tar.gz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[sources.b]
url = "https://example.invalid/b.tar.gz"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[steps.one]
inputs = ["a"]
script = "true"
[steps.two]
inputs = ["one"]
script = "true"
[steps.three]
inputs = ["b"]
script = "true"
[images."base:x"]
from = "three"
[images."top:x"]
from = "two"
base = "base:x"
"#;
        let recipe =
            Recipe::parse(dir.path(), &dir.path().join("kiln.toml"), text).unwrap_or_else(|e| panic!("{e}"));
        let (sources, steps) = image_graph(&recipe, "top:x");
        assert_eq!(sources.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(steps.into_iter().collect::<Vec<_>>(), ["one", "three", "two"]);
        let (sources, _) = image_graph(&recipe, "base:x");
        assert_eq!(sources.into_iter().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn documents_sit_beside_the_layout() {
        assert_eq!(directory(Path::new("build/out")), Path::new("build/out.attestations"));
        assert_eq!(file_stem("org/kernel:v1"), "org_kernel_v1");
    }
}
