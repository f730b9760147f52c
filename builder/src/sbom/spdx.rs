//! The SPDX 2.3 JSON document model, as much of it as kiln writes.
//!
//! Field names follow the SPDX 2.3 JSON schema; optional fields are left out when empty, and
//! every list is in an order kiln chooses deterministically. Encoded with canonical JSON.

use serde::Serialize;

/// `SPDX-2.3`.
pub(crate) const VERSION: &str = "SPDX-2.3";
/// The data licence every SPDX document carries.
pub(crate) const DATA_LICENSE: &str = "CC0-1.0";
/// The document's own SPDXID.
pub(crate) const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
/// "No assertion is made".
pub(crate) const NOASSERTION: &str = "NOASSERTION";

/// An SPDX document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Document {
    pub(crate) spdx_version: &'static str,
    pub(crate) data_license: &'static str,
    #[serde(rename = "SPDXID")]
    pub(crate) spdx_id: &'static str,
    pub(crate) name: String,
    pub(crate) document_namespace: String,
    pub(crate) creation_info: CreationInfo,
    pub(crate) document_describes: Vec<String>,
    pub(crate) packages: Vec<Package>,
    pub(crate) files: Vec<File>,
    pub(crate) relationships: Vec<Relationship>,
}

/// Who made the document, and when.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreationInfo {
    /// The build's epoch, RFC 3339.
    pub(crate) created: String,
    /// `Tool: kiln-<version>`.
    pub(crate) creators: Vec<String>,
}

/// A package: the image, its kernel, a kernel module, a source.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Package {
    #[serde(rename = "SPDXID")]
    pub(crate) spdx_id: String,
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version_info: Option<String>,
    pub(crate) download_location: String,
    pub(crate) files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) has_files: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) primary_package_purpose: Option<&'static str>,
    pub(crate) license_concluded: &'static str,
    pub(crate) license_declared: &'static str,
    pub(crate) copyright_text: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) annotations: Vec<Annotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) comment: Option<String>,
}

impl Package {
    /// A package with nothing but its identity and `NOASSERTION` where SPDX wants a value.
    pub(crate) fn new(spdx_id: String, name: String) -> Package {
        Package {
            spdx_id,
            name,
            version_info: None,
            download_location: NOASSERTION.into(),
            files_analyzed: false,
            package_verification_code: None,
            has_files: Vec::new(),
            checksums: Vec::new(),
            source_info: None,
            primary_package_purpose: None,
            license_concluded: NOASSERTION,
            license_declared: NOASSERTION,
            copyright_text: NOASSERTION,
            external_refs: Vec::new(),
            annotations: Vec::new(),
            comment: None,
        }
    }
}

/// `packageVerificationCode`: SHA-1 over the sorted SHA-1s of the package's files.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerificationCode {
    pub(crate) package_verification_code_value: String,
}

/// A file of the image.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct File {
    #[serde(rename = "SPDXID")]
    pub(crate) spdx_id: String,
    /// `./path` in the image.
    pub(crate) file_name: String,
    /// SHA1 (which SPDX requires) and SHA256.
    pub(crate) checksums: Vec<Checksum>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) file_types: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) comment: Option<String>,
}

/// A checksum.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checksum {
    /// `SHA1`, `SHA256`, `SHA512`.
    pub(crate) algorithm: &'static str,
    /// Lowercase hex.
    pub(crate) checksum_value: String,
}

/// A reference to the package outside the document (a purl).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExternalRef {
    pub(crate) reference_category: &'static str,
    pub(crate) reference_type: &'static str,
    pub(crate) reference_locator: String,
}

/// A note about an element, by kiln, at the build's epoch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Annotation {
    pub(crate) annotation_date: String,
    pub(crate) annotation_type: &'static str,
    pub(crate) annotator: String,
    pub(crate) comment: String,
}

/// A relationship between two elements.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Relationship {
    pub(crate) spdx_element_id: String,
    pub(crate) relationship_type: &'static str,
    pub(crate) related_spdx_element: String,
}

impl Relationship {
    pub(crate) fn new(from: &str, kind: &'static str, to: &str) -> Relationship {
        Relationship {
            spdx_element_id: from.to_owned(),
            relationship_type: kind,
            related_spdx_element: to.to_owned(),
        }
    }
}

/// An SPDXID: `SPDXRef-<kind>-<what>`, `what` reduced to the characters SPDX allows (letters,
/// digits, `.`, `-`), with 12 hex digits of the SHA-256 of the raw `what` appended whenever the
/// reduction changed it, so distinct names keep distinct ids.
pub(crate) fn id(kind: &str, what: &[u8]) -> String {
    use sha2::Digest as _;
    let plain: String = what
        .iter()
        .map(|&b| if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' { char::from(b) } else { '-' })
        .collect();
    if plain.as_bytes() == what && !plain.is_empty() {
        format!("SPDXRef-{kind}-{plain}")
    } else {
        let hash = hex::encode(sha2::Sha256::digest(what));
        format!("SPDXRef-{kind}-{plain}-{}", &hash[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_plain_names_and_disambiguate_reduced_ones() {
        assert_eq!(id("Source", b"linux"), "SPDXRef-Source-linux");
        let (a, b) = (id("File", b"usr/lib/a_b"), id("File", b"usr/lib/a-b"));
        assert!(a.starts_with("SPDXRef-File-usr-lib-a-b-"), "{a}");
        assert_ne!(a, b);
        assert!(id("File", b"\xff").starts_with("SPDXRef-File---"));
    }
}
