//! `manifest.yaml`: an extension's name, version, author, description and compatibility.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Error, yaml};

/// The only manifest format version Talos reads.
const MANIFEST_VERSION: &str = "v1alpha1";

/// The metadata of a Talos system extension, as in its `manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.version`.
    pub version: String,
    /// `metadata.author`.
    pub author: String,
    /// `metadata.description`.
    pub description: String,
    /// `metadata.compatibility.talos.version`, a range such as `>= v1.10.0`; `None` (or empty)
    /// means compatible with every Talos version.
    pub talos_version: Option<String>,
    /// `metadata.extraInfo`; `None` or empty means absent.
    pub extra_info: Option<String>,
}

impl Manifest {
    /// manifest.yaml bytes: `version: v1alpha1` + metadata, deterministic, strings quoted safely.
    ///
    /// An empty `talos_version` or `extra_info` is written like `None`, as Talos would read it.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        yaml::key_value(&mut out, 0, "version", MANIFEST_VERSION);
        yaml::key(&mut out, 0, "metadata");
        self.write_metadata(&mut out, 2, false);
        out
    }

    /// Appends the metadata fields at `indent`. With `always_compatibility`, an absent
    /// constraint is written as `version: ""` (the shape Talos's own writer gives).
    pub(crate) fn write_metadata(&self, out: &mut String, indent: usize, always_compatibility: bool) {
        yaml::key_value(out, indent, "name", &self.name);
        yaml::key_value(out, indent, "version", &self.version);
        yaml::key_value(out, indent, "author", &self.author);
        yaml::key_value(out, indent, "description", &self.description);
        let constraint = self.talos_version.as_deref().filter(|c| !c.is_empty());
        if constraint.is_some() || always_compatibility {
            yaml::key(out, indent, "compatibility");
            yaml::key(out, indent + 2, "talos");
            yaml::key_value(out, indent + 4, "version", constraint.unwrap_or(""));
        }
        if let Some(extra) = self.extra_info.as_deref().filter(|e| !e.is_empty()) {
            yaml::key_value(out, indent, "extraInfo", extra);
        }
    }

    /// Parses manifest.yaml; errors name `path` and the line.
    ///
    /// Requires `version: v1alpha1` ("unsupported manifest version" otherwise), rejects unknown
    /// fields, and requires non-empty `name`, `version`, `author` and `description`. The format
    /// of `metadata.version` is not checked here (Talos does not); see [`is_valid_version`].
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, Error> {
        let document: Document = yaml::parse(text, path)?;
        if document.version.value != MANIFEST_VERSION {
            return Err(error_at(
                path,
                &document.version,
                format!(
                    "unsupported manifest version {:?} (expected {MANIFEST_VERSION})",
                    document.version.value
                ),
            ));
        }
        document.metadata.into_manifest(path)
    }
}

/// Whether `version` has one of the forms the official extensions-validator accepts:
/// `v?X.Y.Z(-pre)?`, `YYYYMMDD(.N)?`, `X.Y.Z-vA.B.C(-pre)?`, `<hex>-vA.B.C(-pre)?` or `v?X.Y`
/// (where a pre-release also covers a `-N-gSHA[-dirty]` suffix).
pub fn is_valid_version(version: &str) -> bool {
    let without_v = version.strip_prefix('v').unwrap_or(version);
    if is_semver(without_v) || is_date(version) || is_numbers(without_v, 2) {
        return true;
    }
    match version.split_once("-v") {
        Some((prefix, rest)) => {
            (is_numbers(prefix, 3)
                || (!prefix.is_empty() && prefix.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))))
                && is_semver(rest)
        }
        None => false,
    }
}

/// `X.Y.Z` optionally followed by `-` and dot-separated identifiers of `[0-9A-Za-z-]`.
fn is_semver(text: &str) -> bool {
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (text, None),
    };
    is_numbers(core, 3)
        && pre.is_none_or(|pre| {
            pre.split('.')
                .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        })
}

/// `count` dot-separated runs of ASCII digits.
fn is_numbers(text: &str, count: usize) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == count && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Eight digits, optionally `.` and one digit.
fn is_date(text: &str) -> bool {
    let (date, suffix) = match text.split_once('.') {
        Some((date, suffix)) => (date, Some(suffix)),
        None => (text, None),
    };
    date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && suffix.is_none_or(|s| s.len() == 1 && s.bytes().all(|b| b.is_ascii_digit()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    version: Spanned<String>,
    metadata: Metadata,
}

/// The `metadata` mapping, shared with `/extensions.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Metadata {
    name: Spanned<String>,
    version: Spanned<String>,
    author: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    compatibility: Option<Compatibility>,
    #[serde(default)]
    extra_info: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Compatibility {
    #[serde(default)]
    talos: Option<Constraint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Constraint {
    #[serde(default)]
    version: Option<String>,
}

impl Metadata {
    pub(crate) fn into_manifest(self, path: &Path) -> Result<Manifest, Error> {
        for (field, value) in [
            ("name", &self.name),
            ("version", &self.version),
            ("author", &self.author),
            ("description", &self.description),
        ] {
            if value.value.trim().is_empty() {
                return Err(error_at(path, value, format!("metadata.{field} must not be empty")));
            }
        }
        Ok(Manifest {
            name: self.name.value,
            version: self.version.value,
            author: self.author.value,
            description: self.description.value,
            talos_version: self
                .compatibility
                .and_then(|c| c.talos)
                .and_then(|t| t.version)
                .filter(|v| !v.is_empty()),
            extra_info: self.extra_info.filter(|e| !e.is_empty()),
        })
    }
}

fn error_at(path: &Path, value: &Spanned<String>, message: String) -> Error {
    let line = value.referenced.line();
    Error::Parse {
        path: path.to_owned(),
        line: (line > 0).then_some(line),
        column: (line > 0).then(|| value.referenced.column()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, Error> {
        Manifest::parse(text, Path::new("ext/manifest.yaml"))
    }

    fn full() -> Manifest {
        Manifest {
            name: "hello-world".into(),
            version: "1.10".into(),
            author: "kiln: \"tests\"".into(),
            description: "yes\nsecond line, with # and ünïcode".into(),
            talos_version: Some(">= v1.10.0".into()),
            extra_info: Some("  leading spaces".into()),
        }
    }

    #[test]
    fn written_bytes_are_fixed() {
        assert_eq!(
            full().to_yaml(),
            "version: v1alpha1\nmetadata:\n  name: hello-world\n  version: \"1.10\"\n  author: \"kiln: \\\"tests\\\"\"\n  \
             description: \"yes\\nsecond line, with # and ünïcode\"\n  compatibility:\n    talos:\n      \
             version: \">= v1.10.0\"\n  extraInfo: \"  leading spaces\"\n"
        );
    }

    #[test]
    fn round_trips() {
        let manifest = full();
        assert_eq!(parse(&manifest.to_yaml()).unwrap(), manifest);
        let bare = Manifest { talos_version: None, extra_info: None, ..full() };
        assert!(!bare.to_yaml().contains("compatibility"));
        assert_eq!(parse(&bare.to_yaml()).unwrap(), bare);
    }

    #[test]
    fn reads_official_style_manifests() {
        let text = "version: v1alpha1\nmetadata:\n  name: i915\n  version: 20250109-v1.10.0\n  author: Sidero Labs\n  \
                    description: |\n    Intel GPU firmware.\n  compatibility:\n    talos:\n      version: \">= v1.10.0\"\n";
        let manifest = parse(text).unwrap();
        assert_eq!(manifest.version, "20250109-v1.10.0");
        assert_eq!(manifest.description, "Intel GPU firmware.\n");
        assert_eq!(manifest.talos_version.as_deref(), Some(">= v1.10.0"));
    }

    fn parse_error(text: &str) -> (Option<u64>, String) {
        match parse(text) {
            Err(Error::Parse { path, line, message, .. }) => {
                assert_eq!(path, Path::new("ext/manifest.yaml"));
                (line, message)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_manifest_version() {
        let (line, message) =
            parse_error("version: v1alpha2\nmetadata: {name: a, version: b, author: c, description: d}\n");
        assert_eq!(line, Some(1));
        assert!(message.contains("unsupported manifest version"), "{message}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let (line, message) = parse_error(
            "version: v1alpha1\nmetadata:\n  name: a\n  version: b\n  author: c\n  description: d\n  color: red\n",
        );
        assert_eq!(line, Some(7));
        assert!(message.contains("color"), "{message}");
    }

    #[test]
    fn required_fields() {
        let (line, message) =
            parse_error("version: v1alpha1\nmetadata:\n  name: a\n  version: b\n  author: c\n");
        assert!(line.is_some());
        assert!(message.contains("description"), "{message}");
        let (line, message) = parse_error(
            "version: v1alpha1\nmetadata:\n  name: a\n  version: b\n  author: \"\"\n  description: d\n",
        );
        assert_eq!(line, Some(5));
        assert!(message.contains("metadata.author must not be empty"), "{message}");
    }

    #[test]
    fn malformed_yaml_reports_a_line() {
        let (line, _) = parse_error("version: v1alpha1\nmetadata:\n  name: [a\n");
        assert!(line.is_some_and(|l| l >= 3), "{line:?}");
        let error = parse("version: v1alpha1\nmetadata:\n  name: [a\n").unwrap_err();
        assert!(error.to_string().starts_with("ext/manifest.yaml:"), "{error}");
    }

    #[test]
    fn version_formats() {
        for good in [
            "v1.2.3",
            "1.2.3",
            "1.2.3-rc.1",
            "20250109",
            "20250109.1",
            "535.129.03-v1.8.0",
            "535.129.03-v1.8.0-alpha.0-10-g336fa0f-dirty",
            "5815ee3-v1.8.0-alpha.0-10-g336fa0f",
            "v4.3",
            "4.3",
            "6.12.63-talos",
        ] {
            assert!(is_valid_version(good), "{good:?}");
        }
        for bad in [
            "",
            "latest",
            "v1",
            "1.2.3.4",
            "2025010",
            "2025-01-09",
            "1.2.3.4-v1.0.0",
            "1.2.3-",
            "1.2.3-a..b",
            "xyz-v1.2.3",
            "1.2-v1.2.3",
            "V1.2.3",
            "1.2.3+build",
        ] {
            assert!(!is_valid_version(bad), "{bad:?}");
        }
    }
}
