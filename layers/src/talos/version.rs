//! Talos compatibility ranges such as `>= v1.10.0`, with the semantics of Talos's check:
//! every `v` directly before a digit is dropped, then the text is read as a
//! `github.com/blang/semver/v4` range and evaluated against the core (`X.Y.Z`) of the Talos
//! version.
//!
//! Grammar: comparators `>`, `>=`, `<`, `<=`, `=`, `==`, `!`, `!=` or none (equality), each
//! followed by a strict semantic version (spaces between operator and version allowed);
//! comparators separated by spaces must all hold; `||` between groups means either.
//! Unlike blang/semver, kiln rejects what that library silently drops (one-character tokens)
//! and does not expand `x` wildcards.

use std::cmp::Ordering;
use std::fmt;

/// A semantic version: `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, build ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Patch number.
    pub patch: u64,
    /// Pre-release identifiers, in order.
    pub pre: Vec<Identifier>,
}

/// One pre-release identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// All digits, no leading zero.
    Numeric(u64),
    /// Letters, digits and `-`, not all digits.
    Alphanumeric(String),
}

impl Version {
    /// Parses a strict semantic version (no leading `v`, no missing parts, no leading zeros).
    pub fn parse(text: &str) -> Result<Version, String> {
        if text.is_empty() {
            return Err("empty version".to_owned());
        }
        let mut parts = text.splitn(3, '.');
        let (Some(major), Some(minor), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{text:?} has no MAJOR.MINOR.PATCH"));
        };
        let (rest, build) = match rest.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (rest, None),
        };
        let (patch, pre) = match rest.split_once('-') {
            Some((patch, pre)) => (patch, Some(pre)),
            None => (rest, None),
        };
        let mut version = Version {
            major: number(major, "major", text)?,
            minor: number(minor, "minor", text)?,
            patch: number(patch, "patch", text)?,
            pre: Vec::new(),
        };
        for identifier in pre.into_iter().flat_map(|pre| pre.split('.')) {
            if identifier.is_empty() || !identifier.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!("invalid pre-release identifier {identifier:?} in {text:?}"));
            }
            if identifier.bytes().all(|b| b.is_ascii_digit()) {
                version.pre.push(Identifier::Numeric(number(identifier, "pre-release", text)?));
            } else {
                version.pre.push(Identifier::Alphanumeric(identifier.to_owned()));
            }
        }
        for identifier in build.into_iter().flat_map(|build| build.split('.')) {
            if identifier.is_empty() || !identifier.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!("invalid build identifier {identifier:?} in {text:?}"));
            }
        }
        Ok(version)
    }

    /// Parses a Talos version such as `v1.10.3` or `1.10.0-alpha.1` (leading `v` optional) and
    /// keeps only its core, as Talos does before checking a range.
    pub fn parse_talos(text: &str) -> Result<Version, String> {
        let version = Version::parse(text.strip_prefix('v').unwrap_or(text))?;
        Ok(Version { pre: Vec::new(), ..version })
    }
}

fn number(text: &str, what: &str, version: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what} number {text:?} in {version:?}"));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(format!("{what} number {text:?} has a leading zero in {version:?}"));
    }
    text.parse().map_err(|_| format!("{what} number {text:?} is too large in {version:?}"))
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let core = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        if core != Ordering::Equal {
            return core;
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.pre.cmp(&other.pre),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Identifier {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Identifier::Numeric(a), Identifier::Numeric(b)) => a.cmp(b),
            (Identifier::Numeric(_), Identifier::Alphanumeric(_)) => Ordering::Less,
            (Identifier::Alphanumeric(_), Identifier::Numeric(_)) => Ordering::Greater,
            (Identifier::Alphanumeric(a), Identifier::Alphanumeric(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Identifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, identifier) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match identifier {
                Identifier::Numeric(n) => write!(f, "{n}")?,
                Identifier::Alphanumeric(s) => f.write_str(s)?,
            }
        }
        Ok(())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`, `==` or none.
    Equal,
    /// `!` or `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
}

/// One comparator of a range, such as `>=1.10.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator {
    /// How to compare.
    pub operator: Operator,
    /// What to compare with.
    pub version: Version,
}

impl Comparator {
    /// Whether `version` satisfies this comparator.
    pub fn matches(&self, version: &Version) -> bool {
        let ordering = version.cmp(&self.version);
        match self.operator {
            Operator::Equal => ordering == Ordering::Equal,
            Operator::NotEqual => ordering != Ordering::Equal,
            Operator::Greater => ordering == Ordering::Greater,
            Operator::GreaterOrEqual => ordering != Ordering::Less,
            Operator::Less => ordering == Ordering::Less,
            Operator::LessOrEqual => ordering != Ordering::Greater,
        }
    }
}

/// A parsed range: any of the groups, each holding all of its comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// `||`-separated groups; never empty, and no group is empty.
    pub any_of: Vec<Vec<Comparator>>,
}

impl Range {
    /// Parses a Talos compatibility constraint, first dropping every `v` directly before a digit.
    pub fn parse_constraint(constraint: &str) -> Result<Range, String> {
        Range::parse(&drop_v_before_digits(constraint))
    }

    /// Parses a blang/semver range (no `v` prefixes).
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut any_of = Vec::new();
        let mut group = Vec::new();
        for token in tokens(text) {
            if token == "||" {
                if group.is_empty() {
                    return Err(format!("{text:?} has an empty alternative around ||"));
                }
                any_of.push(std::mem::take(&mut group));
            } else {
                group.push(comparator(&token)?);
            }
        }
        if group.is_empty() {
            return Err(if any_of.is_empty() {
                "empty range".to_owned()
            } else {
                format!("{text:?} ends with ||")
            });
        }
        any_of.push(group);
        Ok(Range { any_of })
    }

    /// Whether `version` is in the range.
    pub fn matches(&self, version: &Version) -> bool {
        self.any_of.iter().any(|group| group.iter().all(|c| c.matches(version)))
    }
}

/// Talos's `trim`: every `v` followed by an ASCII digit goes.
fn drop_v_before_digits(constraint: &str) -> String {
    let mut out = String::with_capacity(constraint.len());
    let mut chars = constraint.chars().peekable();
    while let Some(c) = chars.next() {
        if c == 'v' && chars.peek().is_some_and(char::is_ascii_digit) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Splits on spaces, except that spaces after an operator character join it to the version
/// that follows (blang/semver's `splitAndTrim`).
fn tokens(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut last = None;
    for c in text.chars() {
        if c == ' ' {
            if !matches!(last, Some('>' | '<' | '=')) && !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
            last = Some(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn comparator(token: &str) -> Result<Comparator, String> {
    let Some(start) = token.find(|c: char| c.is_ascii_digit()) else {
        return Err(format!("{token:?} holds no version"));
    };
    let (operator, version) = token.split_at(start);
    let operator = match operator.trim() {
        "" | "=" | "==" => Operator::Equal,
        "!" | "!=" => Operator::NotEqual,
        ">" => Operator::Greater,
        ">=" => Operator::GreaterOrEqual,
        "<" => Operator::Less,
        "<=" => Operator::LessOrEqual,
        other => return Err(format!("unknown operator {other:?} in {token:?}")),
    };
    let version = Version::parse(version)?;
    Ok(Comparator { operator, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn holds(constraint: &str, talos: &str) -> bool {
        Range::parse_constraint(constraint).unwrap().matches(&Version::parse_talos(talos).unwrap())
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(v("1.10.0"), Version { major: 1, minor: 10, patch: 0, pre: vec![] });
        assert_eq!(
            v("1.10.0-alpha.1+build.5").pre,
            [Identifier::Alphanumeric("alpha".into()), Identifier::Numeric(1)]
        );
        for bad in [
            "",
            "1",
            "1.10",
            "v1.10.0",
            "01.1.1",
            "1.01.1",
            "1.1.01",
            "1.1.1-",
            "1.1.1-a..b",
            "1.1.1-01",
            "1.1.1+",
            "1.1.1+a_b",
            "1.1.x",
            "1.1.1 ",
            "99999999999999999999.0.0",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn precedence_follows_semver() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.10.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a").cmp(&v("1.0.0+b")), Ordering::Equal);
    }

    #[test]
    fn talos_versions_lose_pre_release_and_build() {
        assert_eq!(Version::parse_talos("v1.10.0-alpha.1+dirty").unwrap(), v("1.10.0"));
        assert_eq!(Version::parse_talos("1.10.3").unwrap(), v("1.10.3"));
        assert!(Version::parse_talos("v1.10").is_err());
    }

    #[test]
    fn operators() {
        assert!(holds(">= v1.10.0", "v1.10.0"));
        assert!(holds(">=v1.10.0", "v1.10.3"));
        assert!(!holds(">= v1.10.0", "v1.9.5"));
        assert!(holds("> 1.9.0", "1.10.0"));
        assert!(!holds(">1.10.0", "1.10.0"));
        assert!(holds("<1.11.0", "1.10.9"));
        assert!(!holds("<1.10.0", "1.10.0"));
        assert!(holds("<=1.10.0", "1.10.0"));
        assert!(holds("1.10.0", "v1.10.0"));
        assert!(holds("=1.10.0", "v1.10.0"));
        assert!(holds("==1.10.0", "v1.10.0"));
        assert!(!holds("!=1.10.0", "v1.10.0"));
        assert!(holds("!1.10.0", "v1.10.1"));
    }

    #[test]
    fn pre_release_of_the_talos_version_is_ignored() {
        // 1.10.0-alpha.1 is checked as 1.10.0, so it satisfies >= 1.10.0.
        assert!(holds(">= v1.10.0", "v1.10.0-alpha.1"));
        // A pre-release in the range is compared as such: 1.10.0 > 1.10.0-beta.0.
        assert!(holds("> v1.10.0-beta.0", "v1.10.0-alpha.1"));
    }

    #[test]
    fn and_or() {
        let range = ">= v1.9.0 < v1.11.0 || >= v2.0.0";
        assert!(holds(range, "v1.10.0"));
        assert!(!holds(range, "v1.11.0"));
        assert!(holds(range, "v2.1.0"));
        assert!(!holds(range, "v1.8.0"));
        assert_eq!(Range::parse_constraint(range).unwrap().any_of.len(), 2);
    }

    #[test]
    fn v_is_dropped_only_before_digits() {
        assert_eq!(drop_v_before_digits(">= v1.10.0 || v2.0.0-dev"), ">= 1.10.0 || 2.0.0-dev");
        assert!(Range::parse_constraint(">= vX").is_err());
    }

    #[test]
    fn malformed_ranges_are_errors() {
        for bad in [
            "",
            " ",
            "||",
            "|| 1.0.0",
            "1.0.0 ||",
            "1.0.0 || || 2.0.0",
            ">=",
            "=> 1.0.0",
            "~1.0.0",
            "^1.0.0",
            ">= 1.10",
            ">= 1.x",
            "1.0.0 !",
            "1.0.0 - 2.0.0",
            ">= 1.0.0 | 2.0.0",
            "latest",
        ] {
            assert!(Range::parse_constraint(bad).is_err(), "{bad:?} parsed");
        }
    }
}
