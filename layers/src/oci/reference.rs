//! `NAME:TAG` names of images inside a layout.
//!
//! The name follows the distribution specification's repository grammar (lowercase components
//! separated by `/`, each `[a-z0-9]+` joined by `.`, `_`, `__` or `-`s), the tag its tag grammar
//! (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`), so the same reference can be pushed unchanged. The whole
//! string is what `org.opencontainers.image.ref.name` holds and what skopeo reads from
//! `oci:LAYOUT:NAME:TAG`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An image name and tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    name: String,
    tag: String,
}

impl Reference {
    /// Repository-style name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason| Error::InvalidReference { value: value.to_owned(), reason };
        let (name, tag) = value.rsplit_once(':').ok_or_else(|| error("missing `:TAG`"))?;
        check_name(name).map_err(error)?;
        check_tag(tag).map_err(error)?;
        Ok(Reference { name: name.to_owned(), tag: tag.to_owned() })
    }
}

/// Checks a repository name (`org/kernel`) against the distribution grammar, at most 255
/// characters; the reason when it does not match. What a registry URL is built from must pass
/// this: it holds no `..`, no empty component, no `%`, `?` or `#`.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.split('/').any(|component| !valid_component(component)) {
        return Err("NAME must be lowercase components [a-z0-9] joined by '.', '_', '__' or '-'");
    }
    if name.len() > 255 {
        return Err("NAME is longer than 255 characters");
    }
    Ok(())
}

/// Checks a tag against the distribution grammar; the reason when it does not match.
pub fn check_tag(tag: &str) -> Result<(), &'static str> {
    if valid_tag(tag) {
        Ok(())
    } else {
        Err("TAG must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|[-]+)[a-z0-9]+)*`
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut i = 0;
    let run = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && alnum(bytes[*i]) {
            *i += 1;
        }
        *i > start
    };
    if !run(&mut i) {
        return false;
    }
    while i < bytes.len() {
        let separator = match bytes[i] {
            b'.' => 1,
            b'_' if bytes.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => bytes[i..].iter().take_while(|&&b| b == b'-').count(),
            _ => return false,
        };
        i += separator;
        if !run(&mut i) {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(&bytes[0])
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_distribution_names() {
        for good in ["kernel:custom-solana-v1.10.3", "a/b_c/d__e:1", "my--name.x:latest", "x:_"] {
            let reference: Reference = good.parse().unwrap();
            assert_eq!(reference.to_string(), good);
        }
        let reference: Reference = "ghcr.io/org/x:v1".parse().unwrap();
        assert_eq!((reference.name(), reference.tag()), ("ghcr.io/org/x", "v1"));
    }

    #[test]
    fn rejects_bad_names_and_tags() {
        for bad in [
            "kernel",
            "Kernel:v1",
            ":v1",
            "a//b:v1",
            "a/:v1",
            "a.:v1",
            "a___b:v1",
            "k:",
            "k:-x",
            "k:.x",
            "k:a/b",
            "k:ü",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
        assert!(format!("k:{}", "a".repeat(129)).parse::<Reference>().is_err());
        for bad in ["../victim/app", "a/../b", "a/./b", "/a", "a/", "a%2fb", "a?b", "a#b", "A", "a b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(256)).is_err());
        assert!(check_name(&"a".repeat(255)).is_ok());
    }
}
