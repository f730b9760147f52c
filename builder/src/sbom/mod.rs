//! SPDX 2.3 JSON SBOMs of built images.
//!
//! One document per image, describing:
//! - the image (`SPDXRef-Image`: name, tag as version, a `pkg:oci` purl with its manifest
//!   digest), which contains every regular file of the tree packed as its own layer
//!   (`hasFiles`; files of a base image's layers are that image's) and is `GENERATED_FROM` each
//!   source that flowed into it, and `DESCENDANT_OF` its base;
//! - every file (`./path`, SHA-1 and SHA-256; ELF objects typed `BINARY`, executables also
//!   `APPLICATION`, with the kind in the comment);
//! - each kernel (a file named `vmlinuz` with a bzImage header): `linux`, its release (from
//!   `usr/lib/modules/<release>` when the image has exactly one, else from the bzImage header),
//!   the SHA-256 of the `config` beside it as an annotation, `GENERATED_FROM` the kernel's source
//!   when the recipe's kernel step fed the image;
//! - each kernel module (`.ko`, compressed or not): its `.modinfo` name, `version` (else
//!   `srcversion`, else the release its vermagic names), SHA-256, vermagic and signer in the
//!   comment, containing its file;
//! - each source: `downloadLocation` (its URL, else `NOASSERTION` with the recipe's path or image
//!   in `sourceInfo`), its pinned SHA-256/SHA-512, a `pkg:oci` purl for image sources.
//!
//! Determinism: `created` is the build's epoch, the creator `Tool: kiln-<version>`, the
//! namespace `https://kiln.invalid/spdx/<NAME>/<TAG>/sha256-<hex of the manifest digest>`, ids
//! derived from paths and names (`SPDXRef-<kind>-<name>`, with 12 hex digits of the name's
//! SHA-256 appended when the name needs reducing to the characters SPDX allows), lists in tree
//! order (raw bytes) or name order, canonical JSON.

mod scan;
mod spdx;

use std::collections::BTreeMap;
use std::path::Path;

use sha1::Sha1;
use sha2::Digest as _;

use crate::attest::{BuildContext, ImageInputs, SourceInput, encode};
use crate::error::Result;
use scan::{Elf, ScannedFile};
use spdx::{Annotation, Checksum, Document, ExternalRef, File, Package, Relationship, VerificationCode};

/// The creator every document names.
fn tool() -> String {
    format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))
}

/// The document namespace of an image's SBOM: `https://kiln.invalid/spdx/NAME/TAG/sha256-HEX`.
pub fn namespace(image: &str, manifest: &kiln_layers::digest::Digest) -> String {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    format!("https://kiln.invalid/spdx/{name}/{tag}/{}-{}", manifest.algorithm().name(), manifest.encoded())
}

/// The SPDX 2.3 JSON SBOM of one image, canonical JSON.
pub fn document(image: &ImageInputs, context: &BuildContext) -> Result<Vec<u8>> {
    let files = scan::files(&image.tree)?;
    let created = context.epoch.to_rfc3339();
    let (name, tag) = image.name.rsplit_once(':').unwrap_or((&image.name, "latest"));
    let digest = &image.manifest.digest;
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    let image_id = "SPDXRef-Image".to_owned();

    let spdx_files: Vec<File> = files.iter().map(file).collect();
    let mut root = Package::new(image_id.clone(), name.to_owned());
    root.version_info = Some(tag.to_owned());
    root.primary_package_purpose = Some("CONTAINER");
    root.external_refs.push(oci_purl(name, digest, Some(tag)));
    root.files_analyzed = true;
    root.package_verification_code = Some(verification_code(files.iter().map(|f| f.sha1.as_str())));
    root.has_files = spdx_files.iter().map(|f| f.spdx_id.clone()).collect();
    root.comment = Some(format!("OCI image {} (manifest {digest})", image.name));
    relationships.push(Relationship::new(spdx::DOCUMENT_ID, "DESCRIBES", &image_id));

    // Sources, by name.
    let mut source_ids = BTreeMap::new();
    for source in &image.sources {
        let package = source_package(source);
        source_ids.insert(source.name.clone(), package.spdx_id.clone());
        relationships.push(Relationship::new(&image_id, "GENERATED_FROM", &package.spdx_id));
        packages.push(package);
    }
    if let Some((base, base_digest)) = &image.base {
        let id = spdx::id("Base", base.as_bytes());
        let mut package = Package::new(id.clone(), base.clone());
        package.primary_package_purpose = Some("CONTAINER");
        let base_name = base.rsplit_once(':').map_or(base.as_str(), |(n, _)| n);
        package.external_refs.push(oci_purl(base_name, base_digest, None));
        package.comment = Some(format!("base image, manifest {base_digest}"));
        relationships.push(Relationship::new(&image_id, "DESCENDANT_OF", &id));
        packages.push(package);
    }

    // Kernels.
    let single_release = module_releases(&files);
    for kernel in files.iter().filter(|f| f.kernel_release.is_some() && basename(&f.relative) == b"vmlinuz") {
        let release = single_release.clone().or_else(|| kernel.kernel_release.clone());
        let id = spdx::id("Kernel", &kernel.relative);
        let mut package = Package::new(id.clone(), "linux".into());
        package.version_info = release;
        package.primary_package_purpose = Some("OPERATING-SYSTEM");
        package.checksums.push(Checksum { algorithm: "SHA256", checksum_value: kernel.sha256.clone() });
        package.comment = Some(format!("Linux kernel image ./{}", String::from_utf8_lossy(&kernel.relative)));
        let config = sibling(&kernel.relative, b"config");
        if let Some(config) = files.iter().find(|f| f.relative == config) {
            package.annotations.push(Annotation {
                annotation_date: created.clone(),
                annotation_type: "OTHER",
                annotator: tool(),
                comment: format!(
                    "config digest: sha256:{} (./{})",
                    config.sha256,
                    String::from_utf8_lossy(&config.relative)
                ),
            });
        }
        if let Some(source) = image.kernel_source.as_ref().and_then(|s| source_ids.get(s)) {
            relationships.push(Relationship::new(&id, "GENERATED_FROM", source));
        }
        relationships.push(Relationship::new(&image_id, "CONTAINS", &id));
        packages.push(package);
    }

    // Kernel modules.
    for (module, spdx_file) in files.iter().zip(&spdx_files) {
        let file_name = String::from_utf8_lossy(basename(&module.relative)).into_owned();
        if !kiln_modules::module::has_module_extension(&file_name) {
            continue;
        }
        let package = module_package(&image.tree, module, spdx_file);
        relationships.push(Relationship::new(&image_id, "CONTAINS", &package.spdx_id));
        packages.push(package);
    }

    let document = Document {
        spdx_version: spdx::VERSION,
        data_license: spdx::DATA_LICENSE,
        spdx_id: spdx::DOCUMENT_ID,
        name: image.name.clone(),
        document_namespace: namespace(&image.name, digest),
        creation_info: spdx::CreationInfo { created, creators: vec![tool()] },
        document_describes: vec![image_id],
        packages: std::iter::once(root).chain(packages).collect(),
        files: spdx_files,
        relationships,
    };
    encode(&image.name, "SBOM", &document)
}

fn file(scanned: &ScannedFile) -> File {
    let mut types = Vec::new();
    let mut comment = None;
    if let Some(elf) = scanned.elf {
        let executable = elf == Elf::Executable;
        if executable {
            types.push("APPLICATION");
        }
        types.push("BINARY");
        comment = Some(
            match elf {
                Elf::Executable => "ELF executable",
                Elf::SharedLibrary => "ELF shared library",
                Elf::Relocatable => "ELF relocatable object",
                Elf::Other => "ELF file",
            }
            .to_owned(),
        );
    }
    File {
        spdx_id: spdx::id("File", &scanned.relative),
        file_name: format!("./{}", String::from_utf8_lossy(&scanned.relative)),
        checksums: vec![
            Checksum { algorithm: "SHA1", checksum_value: scanned.sha1.clone() },
            Checksum { algorithm: "SHA256", checksum_value: scanned.sha256.clone() },
        ],
        file_types: types,
        comment,
    }
}

/// A kernel module's package: what `.modinfo` says of it, containing its file. A module that
/// cannot be read is listed by its file name, with why in the comment.
fn module_package(tree: &Path, scanned: &ScannedFile, file: &File) -> Package {
    let relative = String::from_utf8_lossy(&scanned.relative).into_owned();
    let mut package = Package::new(spdx::id("Module", &scanned.relative), String::new());
    package.primary_package_purpose = Some("LIBRARY");
    package.checksums.push(Checksum { algorithm: "SHA256", checksum_value: scanned.sha256.clone() });
    package.files_analyzed = true;
    package.package_verification_code = Some(verification_code(std::iter::once(scanned.sha1.as_str())));
    package.has_files = vec![file.spdx_id.clone()];
    let path = tree.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&scanned.relative));
    match kiln_modules::Module::read(&path) {
        Ok(module) => {
            package.name = module.value("name").map_or_else(|| module.name.clone(), str::to_owned);
            let srcversion = module.value("srcversion");
            // In-tree modules have neither: they are versioned by the kernel's release.
            let release = module.value("vermagic").and_then(|v| v.split_whitespace().next());
            package.version_info = module.value("version").or(srcversion).or(release).map(str::to_owned);
            let mut notes = vec![format!("Linux kernel module ./{relative}")];
            for key in ["version", "srcversion", "vermagic", "license"] {
                if let Some(value) = module.value(key) {
                    notes.push(format!("{key}: {value}"));
                }
            }
            match &module.signature {
                Some(signature) => {
                    for field in signature
                        .fields
                        .iter()
                        .filter(|f| matches!(f.key.as_str(), "signer" | "sig_key" | "sig_hashalgo"))
                    {
                        notes.push(format!("{}: {}", field.key, field.value));
                    }
                }
                None => notes.push("unsigned".into()),
            }
            package.comment = Some(notes.join("; "));
        }
        Err(error) => {
            package.name = kiln_modules::module::module_name(&path);
            // The error names the host path; the document names the image's.
            let reason = error.to_string().replace(&path.display().to_string(), &format!("./{relative}"));
            package.comment = Some(format!("Linux kernel module ./{relative}; unreadable: {reason}"));
        }
    }
    package
}

fn source_package(source: &SourceInput) -> Package {
    let mut package = Package::new(spdx::id("Source", source.name.as_bytes()), source.name.clone());
    package.primary_package_purpose = Some("SOURCE");
    if source.downloadable {
        package.download_location = source.uri.clone();
    } else {
        package.source_info = Some(format!("recipe source {:?}: {}", source.name, source.origin));
    }
    if let Some((purl, version)) = &source.package {
        package.version_info = Some(version.clone());
        package.external_refs.push(ExternalRef {
            reference_category: "PACKAGE-MANAGER",
            reference_type: "purl",
            reference_locator: purl.clone(),
        });
    }
    for (algorithm, spdx_algorithm) in [("sha256", "SHA256"), ("sha512", "SHA512")] {
        if let Some(value) = source.digests.get(algorithm) {
            package.checksums.push(Checksum { algorithm: spdx_algorithm, checksum_value: value.clone() });
        }
    }
    if let Some(image) = source.uri.strip_prefix("oci://") {
        // The checksum of an image is its manifest's; the purl says so.
        package.checksums.clear();
        let (name, digest) = image.split_once('@').unwrap_or((image, ""));
        let repository = name.rsplit('/').next().unwrap_or(name);
        package.external_refs.push(ExternalRef {
            reference_category: "PACKAGE-MANAGER",
            reference_type: "purl",
            reference_locator: format!(
                "pkg:oci/{repository}@{}?repository_url={}",
                digest.replace(':', "%3A"),
                name
            ),
        });
    }
    let mut notes = Vec::new();
    if let Some(tree) = source.digests.get("kiln-tree-sha256") {
        notes.push(format!("a directory of the recipe, content digest kiln-tree-sha256:{tree}"));
    }
    if source.overridden {
        notes.push("replaced for this build by --source (not checked against its pin)".into());
    }
    if !notes.is_empty() {
        package.comment = Some(notes.join("; "));
    }
    package
}

/// `pkg:oci/NAME@sha256%3AHEX[?tag=TAG]`.
fn oci_purl(name: &str, digest: &kiln_layers::digest::Digest, tag: Option<&str>) -> ExternalRef {
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut locator = format!("pkg:oci/{last}@{}%3A{}", digest.algorithm().name(), digest.encoded());
    if let Some(tag) = tag {
        locator.push_str(&format!("?tag={tag}"));
    }
    ExternalRef { reference_category: "PACKAGE-MANAGER", reference_type: "purl", reference_locator: locator }
}

/// SPDX's package verification code: SHA-1 of the files' sorted SHA-1s, concatenated.
fn verification_code<'a>(sha1s: impl Iterator<Item = &'a str>) -> VerificationCode {
    let mut sorted: Vec<&str> = sha1s.collect();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for sha1 in sorted {
        hasher.update(sha1.as_bytes());
    }
    VerificationCode { package_verification_code_value: hex::encode(hasher.finalize()) }
}

/// The release named by `usr/lib/modules/<release>/…` when every module path names the same.
fn module_releases(files: &[ScannedFile]) -> Option<String> {
    let mut releases = files.iter().filter_map(|f| {
        let rest = f.relative.strip_prefix(b"usr/lib/modules/")?;
        let end = rest.iter().position(|&b| b == b'/')?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    });
    let first = releases.next()?;
    releases.all(|r| r == first).then_some(first)
}

fn basename(relative: &[u8]) -> &[u8] {
    relative.rsplit(|&b| b == b'/').next().unwrap_or(relative)
}

/// `dir/name` for the file `dir/other`.
fn sibling(relative: &[u8], name: &[u8]) -> Vec<u8> {
    match relative.iter().rposition(|&b| b == b'/') {
        Some(slash) => [&relative[..=slash], name].concat(),
        None => name.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verification_code_hashes_sorted_sha1s() {
        let a = verification_code(["b", "a"].into_iter()).package_verification_code_value;
        let b = verification_code(["a", "b"].into_iter()).package_verification_code_value;
        assert_eq!(a, b);
        assert_eq!(a, hex::encode(Sha1::digest(b"ab")));
    }

    #[test]
    fn siblings_and_namespaces() {
        assert_eq!(sibling(b"boot/vmlinuz", b"config"), b"boot/config");
        assert_eq!(sibling(b"vmlinuz", b"config"), b"config");
        let digest = kiln_layers::digest::Digest::sha256_of(b"x");
        assert_eq!(
            namespace("kernel:smoke", &digest),
            format!("https://kiln.invalid/spdx/kernel/smoke/sha256-{}", digest.encoded())
        );
    }
}
