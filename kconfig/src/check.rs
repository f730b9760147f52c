//! Whether requested values survived into a final `.config`, by the rule of the kernel's
//! `merge_config.sh`: for every symbol the requested text sets, the lines mentioning it (as a
//! whole word) must be the same text in both files. A requested `# CONFIG_X is not set` is
//! therefore reported when X is missing from the final file altogether.

use std::fmt;

use crate::text;

/// One requested value that is not in the final configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The symbol, with `CONFIG_`.
    pub symbol: String,
    /// The requested lines mentioning it.
    pub requested: String,
    /// The final file's lines mentioning it (empty when absent).
    pub actual: String,
}

impl fmt::Display for Mismatch {
    /// The four lines `merge_config.sh` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Value requested for {} not in final .config", self.symbol)?;
        writeln!(f, "Requested value:  {}", self.requested)?;
        writeln!(f, "Actual value:     {}", self.actual)
    }
}

/// Every requested value (from merged fragments) missing from `final_config`, in the order the
/// requested text sets them.
pub fn check(requested: &str, final_config: &str) -> Vec<Mismatch> {
    text::mentioned_symbols(requested)
        .into_iter()
        .filter_map(|symbol| {
            let wanted = text::grep_word(requested, &symbol);
            let actual = text::grep_word(final_config, &symbol);
            (wanted != actual).then_some(Mismatch { symbol, requested: wanted, actual })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changed_and_vanished_values() {
        let requested = "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n# CONFIG_D is not set\n";
        let final_config = "CONFIG_A=y\nCONFIG_B=m\n# CONFIG_D is not set\n";
        let mismatches = check(requested, final_config);
        assert_eq!(
            mismatches.iter().map(ToString::to_string).collect::<String>(),
            "Value requested for CONFIG_B not in final .config\nRequested value:  CONFIG_B=y\nActual value:     CONFIG_B=m\n\
             Value requested for CONFIG_C not in final .config\nRequested value:  # CONFIG_C is not set\nActual value:     \n"
        );
    }
}
