//! The line-matching primitives of the shell tools `merge_config.sh` is built from, so that
//! kiln's messages and merged files match the script's byte for byte.

/// Whether `c` is a word character for `grep -w`.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `grep -w WORD`: whether `line` contains `word` with no word character on either side.
pub(crate) fn contains_word(line: &str, word: &str) -> bool {
    let (line, word) = (line.as_bytes(), word.as_bytes());
    if word.is_empty() || word.len() > line.len() {
        return false;
    }
    (0..=line.len() - word.len()).any(|start| {
        let end = start + word.len();
        &line[start..end] == word
            && (start == 0 || !is_word(line[start - 1]))
            && (end == line.len() || !is_word(line[end]))
    })
}

/// `$(grep -w WORD FILE)`: the matching lines joined by newlines (command substitution drops the
/// trailing newline).
pub(crate) fn grep_word(text: &str, word: &str) -> String {
    lines(text).filter(|line| contains_word(line, word)).collect::<Vec<_>>().join("\n")
}

/// `sed -i "/SYMBOL[ =]/d"`: drops every line containing `SYMBOL ` or `SYMBOL=`.
pub(crate) fn delete_symbol_lines(text: &str, symbol: &str) -> String {
    let (space, equals) = (format!("{symbol} "), format!("{symbol}="));
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let content = line.strip_suffix('\n').unwrap_or(line);
        if !(content.contains(&space) || content.contains(&equals)) {
            out.push_str(line);
        }
    }
    out
}

/// Lines as the shell tools see them: split at `\n`, a final newline does not start a line.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n').map(|l| l.strip_suffix('\n').unwrap_or(l))
}

/// Unquoted `echo $A $B`: words split at blanks and newlines, joined by one space.
pub(crate) fn echo_words(parts: &[&str]) -> String {
    parts.iter().flat_map(|p| p.split_ascii_whitespace()).collect::<Vec<_>>().join(" ")
}

/// The symbols a fragment sets, in order of appearance, as the script's two sed expressions
/// extract them: `^(PREFIX[a-zA-Z0-9_]*)=` and `^# (PREFIX[a-zA-Z0-9_]*) is not set$`.
pub(crate) fn mentioned_symbols(text: &str) -> Vec<String> {
    let symbol = |s: &str| -> Option<usize> {
        let rest = s.strip_prefix("CONFIG_")?;
        Some("CONFIG_".len() + rest.bytes().take_while(|&b| is_word(b)).count())
    };
    lines(text)
        .filter_map(|line| {
            if let Some(end) = symbol(line)
                && line.as_bytes().get(end) == Some(&b'=')
            {
                return Some(line[..end].to_owned());
            }
            let inner = line.strip_prefix("# ")?.strip_suffix(" is not set")?;
            (symbol(inner) == Some(inner.len())).then(|| inner.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_matching_follows_grep_w() {
        assert!(contains_word("CONFIG_A=y", "CONFIG_A"));
        assert!(contains_word("# CONFIG_A is not set", "CONFIG_A"));
        assert!(!contains_word("CONFIG_AB=y", "CONFIG_A"));
        assert!(!contains_word("XCONFIG_A=y", "CONFIG_A"));
        assert!(contains_word("CONFIG_AB=y CONFIG_A", "CONFIG_A"), "a later occurrence counts");
        assert!(contains_word("x-CONFIG_A.y", "CONFIG_A"));
    }

    #[test]
    fn deletes_like_sed() {
        let text = "CONFIG_A=y\nCONFIG_AB=y\n# CONFIG_A is not set\nCONFIG_XCONFIG_A=1\n# about CONFIG_A\n";
        assert_eq!(delete_symbol_lines(text, "CONFIG_A"), "CONFIG_AB=y\n# about CONFIG_A\n");
    }

    #[test]
    fn extracts_symbols_like_the_sed_expressions() {
        let text = "CONFIG_A=y\n# CONFIG_B is not set\n#CONFIG_C is not set\n# CONFIG_D is not set \nCONFIG_E\nX CONFIG_F=y\nCONFIG_=1";
        assert_eq!(mentioned_symbols(text), ["CONFIG_A", "CONFIG_B", "CONFIG_"]);
    }

    #[test]
    fn echo_collapses_blanks() {
        assert_eq!(
            echo_words(&["Previous  value:", "CONFIG_A=\"a  b\"\nCONFIG_A=y"]),
            "Previous value: CONFIG_A=\"a b\" CONFIG_A=y"
        );
    }
}
