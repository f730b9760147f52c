//! Fragment merging with the semantics and messages of the kernel's
//! `scripts/kconfig/merge_config.sh` (Linux 6.12).
//!
//! The base file is copied; for each fragment, every symbol it sets that the accumulated text
//! already mentions (as a whole word) is reported when its lines differ and then deleted from the
//! accumulated text (`sed "/CONFIG_X[ =]/d"`), and the fragment is appended after an empty line.
//! With `builtin_wins` (`-y`) a `y` is not demoted to `m`: the fragment's line is dropped
//! instead. Messages are the lines the script prints, including its quirk of collapsing runs of
//! blanks in values (it `echo`es them unquoted).

use crate::text;

/// A base file or fragment: the name it is reported by, and its text.
#[derive(Debug, Clone)]
pub struct Input {
    /// Name as given on the command line; appears in messages.
    pub name: String,
    /// Contents.
    pub text: String,
}

/// `merge_config.sh` options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `-y`: a later `m` does not override an earlier `y`.
    pub builtin_wins: bool,
    /// `-s`: any redefinition fails the merge.
    pub strict: bool,
    /// `-r`: report values a fragment sets again unchanged.
    pub report_redundant: bool,
    /// `-Q`: no messages about overridden values.
    pub quiet: bool,
}

/// Result of a merge.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged text: what `make KCONFIG_ALLCONFIG=` is given, and what `check` compares
    /// the final `.config` against.
    pub text: String,
    /// The lines `merge_config.sh` prints while merging.
    pub messages: Vec<String>,
    /// Strict mode was requested and a fragment redefined a value.
    pub strict_violation: bool,
}

/// The message `merge_config.sh` prints when strict mode was violated.
pub const STRICT_VIOLATION: &str = "The fragment redefined a value and strict mode had been passed.";

/// Strict mode was requested and a fragment redefined a value.
#[derive(Debug, thiserror::Error)]
#[error("a fragment redefined a value and strict mode was requested")]
pub struct StrictViolation;

/// Merges `fragments` onto `base`.
pub fn merge(base: &Input, fragments: &[Input], options: Options) -> Merged {
    let mut merged = base.text.clone();
    let mut messages = vec![format!("Using {} as base", base.name)];
    let mut strict_violation = false;
    for fragment in fragments {
        messages.push(format!("Merging {}", fragment.name));
        let mut warn = |parts: &[&str]| {
            if !options.quiet {
                messages.push(text::echo_words(parts));
            }
        };
        let mut appended = fragment.text.clone();
        for symbol in text::mentioned_symbols(&fragment.text) {
            if !text::lines(&merged).any(|line| text::contains_word(line, &symbol)) {
                continue;
            }
            let previous = text::grep_word(&merged, &symbol);
            let new = text::grep_word(&appended, &symbol);
            let keep_builtin =
                options.builtin_wins && assigned_value(&new) == "m" && assigned_value(&previous) == "y";
            if keep_builtin {
                warn(&["Previous  value:", &previous]);
                warn(&["New value:      ", &new]);
                warn(&["-y passed, will not demote y to m"]);
                warn(&[]);
                appended = text::delete_symbol_lines(&appended, &symbol);
                continue;
            }
            if previous != new {
                warn(&["Value of", &symbol, "is redefined by fragment", &format!("{}:", fragment.name)]);
                warn(&["Previous  value:", &previous]);
                warn(&["New value:      ", &new]);
                warn(&[]);
                strict_violation |= options.strict;
            } else if options.report_redundant {
                warn(&["Value of", &symbol, "is redundant by fragment", &format!("{}:", fragment.name)]);
            }
            merged = text::delete_symbol_lines(&merged, &symbol);
        }
        // The script separates fragments with `echo >>`, in case a file lacks a final newline.
        merged.push('\n');
        merged.push_str(&appended);
    }
    if strict_violation {
        messages.push(STRICT_VIOLATION.to_owned());
    }
    Merged { text: merged, messages, strict_violation }
}

/// `${VAL#CONFIG_*=}`: the text after the first `=` when it starts with `CONFIG_`.
fn assigned_value(lines: &str) -> &str {
    match lines.strip_prefix(crate::dotconfig::PREFIX) {
        Some(rest) => rest.split_once('=').map_or(lines, |(_, value)| value),
        None => lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, text: &str) -> Input {
        Input { name: name.into(), text: text.into() }
    }

    #[test]
    fn later_fragment_wins_and_redefinitions_are_reported() {
        let base = input("base", "CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=\"x  y\"\n");
        let one = input("one.config", "CONFIG_B=y\nCONFIG_C=y\nCONFIG_A=y\n");
        let two = input("two.config", "CONFIG_D=\"z\"\n");
        let merged = merge(&base, &[one, two], Options { report_redundant: true, ..Options::default() });
        assert_eq!(merged.text, "\nCONFIG_B=y\nCONFIG_C=y\nCONFIG_A=y\n\nCONFIG_D=\"z\"\n");
        assert_eq!(
            merged.messages,
            [
                "Using base as base",
                "Merging one.config",
                "Value of CONFIG_B is redefined by fragment one.config:",
                "Previous value: CONFIG_B=m",
                "New value: CONFIG_B=y",
                "",
                "Value of CONFIG_C is redefined by fragment one.config:",
                "Previous value: # CONFIG_C is not set",
                "New value: CONFIG_C=y",
                "",
                "Value of CONFIG_A is redundant by fragment one.config:",
                "Merging two.config",
                "Value of CONFIG_D is redefined by fragment two.config:",
                "Previous value: CONFIG_D=\"x y\"",
                "New value: CONFIG_D=\"z\"",
                "",
            ]
        );
        assert!(!merged.strict_violation);
    }

    #[test]
    fn builtin_wins_keeps_y_and_strict_flags_redefinitions() {
        let base = input("base", "CONFIG_A=y\nCONFIG_B=m\n");
        let frag = input("f", "CONFIG_A=m\nCONFIG_B=y\n");
        let merged =
            merge(&base, std::slice::from_ref(&frag), Options { builtin_wins: true, ..Options::default() });
        assert_eq!(merged.text, "CONFIG_A=y\n\nCONFIG_B=y\n");
        assert!(merged.messages.contains(&"-y passed, will not demote y to m".to_owned()));
        let strict = merge(&base, &[frag], Options { strict: true, quiet: true, ..Options::default() });
        assert!(strict.strict_violation);
        assert_eq!(strict.messages, ["Using base as base", "Merging f", STRICT_VIOLATION]);
    }
}
