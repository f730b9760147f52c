//! Image references: `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, with Docker Hub's defaults.

use std::fmt;
use std::str::FromStr;

use kiln_layers::digest::Digest;
use kiln_layers::oci::reference;

use crate::error::Error;

/// A registry `HOST[:PORT]`: a host name, an IPv4 address or a bracketed IPv6 address, and
/// digits for the port; nothing a URL would read as user information, a path or a query.
fn check_host(host: &str) -> Result<(), &'static str> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && !port.contains(']') => (name, Some(port)),
        _ => (host, None),
    };
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
    } else {
        !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    if name_ok && port_ok { Ok(()) } else { Err("the registry must be HOST[:PORT]") }
}

/// Docker Hub's registry host, used for references without one.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A registry host and repository, with an optional tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Host and optional port (`ghcr.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`org/kernel`).
    pub repository: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// What to ask the registry for: the digest if known, else the tag, else `latest`.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl FromStr for ImageRef {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| Error::InvalidReference { value: value.to_owned(), reason };
        let (rest, digest) = match value.split_once('@') {
            Some((rest, digest)) => {
                (rest, Some(digest.parse::<Digest>().map_err(|_| error("invalid digest"))?))
            }
            None => (value, None),
        };
        // A tag follows the last ':' after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_owned())),
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
                (host.to_owned(), path.to_owned())
            }
            _ if name.contains('/') => (DOCKER_HUB.to_owned(), name.to_owned()),
            _ => (DOCKER_HUB.to_owned(), format!("library/{name}")),
        };
        check_host(&registry).map_err(error)?;
        if reference::check_name(&repository).is_err() {
            return Err(error("the repository must be lowercase path components"));
        }
        if let Some(tag) = &tag {
            reference::check_tag(tag).map_err(|_| error("invalid tag"))?;
        }
        Ok(ImageRef { registry, repository, tag, digest })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A push destination: a registry and a repository prefix (`ghcr.io/org`, `127.0.0.1:5000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host and optional port.
    pub registry: String,
    /// Repository prefix, possibly empty.
    pub prefix: String,
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| Error::InvalidReference { value: value.to_owned(), reason };
        let (host, prefix) = value.split_once('/').unwrap_or((value, ""));
        if !(host.contains(['.', ':']) || host == "localhost") {
            return Err(error("start with the registry host, e.g. ghcr.io/org or 127.0.0.1:5000"));
        }
        check_host(host).map_err(error)?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() && reference::check_name(prefix).is_err() {
            return Err(error("the repository prefix must be lowercase path components"));
        }
        Ok(Target { registry: host.to_owned(), prefix: prefix.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_tags_and_digests() {
        let r: ImageRef = "127.0.0.1:5000/test/kernel:v1".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "test/kernel", Some("v1"))
        );
        let r: ImageRef = "localhost:5000/x".parse().unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.clone(), r.reference()),
            ("localhost:5000", None, "latest".to_owned())
        );
        let r: ImageRef = "busybox".parse().unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), (DOCKER_HUB, "library/busybox"));
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let r: ImageRef = format!("ghcr.io/org/x:v1@{d}").parse().unwrap();
        assert_eq!(r.reference(), d);
        assert_eq!(r.to_string(), format!("ghcr.io/org/x:v1@{d}"));
    }

    #[test]
    fn parses_targets() {
        let t: Target = "ghcr.io/org/images/".parse().unwrap();
        assert_eq!((t.registry.as_str(), t.prefix.as_str()), ("ghcr.io", "org/images"));
        let t: Target = "127.0.0.1:5000".parse().unwrap();
        assert_eq!((t.registry.as_str(), t.prefix.as_str()), ("127.0.0.1:5000", ""));
        assert!("org/images".parse::<Target>().is_err());
        assert!("ghcr.io/Org".parse::<Target>().is_err());
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "ghcr.io/Org/x",
            "ghcr.io/x:",
            "ghcr.io/x@sha256:12",
            "ghcr.io//x",
            "ghcr.io/x:-v",
            "ghcr.io/a/../b",
            "ghcr.io/a..b",
            "user@ghcr.io/x",
            "ghcr.io:x/y",
            "gh%63r.io/x",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
        for bad in ["127.0.0.1:5000/..", "127.0.0.1:5000/a/../b", "u@h.io/x", "h.io:99999999/x"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        for good in ["localhost/x", "[::1]:5000/x", "registry-1.docker.io/library/busybox"] {
            assert!(good.parse::<ImageRef>().is_ok(), "{good}");
        }
    }
}
