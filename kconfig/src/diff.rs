//! Symbol-level differences between two configurations (`scripts/diffconfig` style).

use std::collections::BTreeSet;
use std::fmt;

use crate::dotconfig::{DotConfig, Setting};

/// How one symbol differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Symbol without `CONFIG_`.
    pub symbol: String,
    /// Setting in the old configuration.
    pub old: Option<Setting>,
    /// Setting in the new configuration.
    pub new: Option<Setting>,
}

impl fmt::Display for Change {
    /// `-X old`, `+X new` or `X old -> new`, values as written (`n` for "is not set").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.old, &self.new) {
            (Some(old), None) => write!(f, "-{} {}", self.symbol, old.value()),
            (None, Some(new)) => write!(f, "+{} {}", self.symbol, new.value()),
            (Some(old), Some(new)) => write!(f, " {} {} -> {}", self.symbol, old.value(), new.value()),
            (None, None) => Ok(()),
        }
    }
}

/// Every symbol whose setting differs, sorted by name.
pub fn diff(old: &DotConfig, new: &DotConfig) -> Vec<Change> {
    let symbols: BTreeSet<&str> = old.iter().chain(new.iter()).map(|(symbol, _)| symbol).collect();
    symbols
        .into_iter()
        .filter_map(|symbol| {
            let (a, b) = (old.get(symbol), new.get(symbol));
            (a != b).then(|| Change { symbol: symbol.to_owned(), old: a.cloned(), new: b.cloned() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lists_removed_added_and_changed() {
        let parse = |text: &str| DotConfig::parse(text, Path::new("c")).0;
        let old = parse("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_SAME=1\n");
        let new = parse("CONFIG_B=y\nCONFIG_C=y\nCONFIG_D=\"x\"\nCONFIG_SAME=1\n");
        let lines: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();
        assert_eq!(lines, ["-A y", " B m -> y", " C n -> y", "+D \"x\""]);
    }
}
