//! YAML for Talos formats: reading through `serde-saphyr` with errors that name the file and
//! line, and writing through a small emitter whose bytes depend only on the values.
//!
//! Scalars are written plain when no YAML 1.1 or 1.2 reader could take them for anything but
//! the same string (`yes`, `1.10`, `~`, `: x`, `#` and leading spaces are all quoted), and
//! double-quoted with escapes otherwise.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::Error;

/// `value` as a YAML scalar: plain when that is unambiguous, otherwise double-quoted.
pub fn scalar(value: &str) -> String {
    if is_plain_safe(value) { value.to_owned() } else { double_quoted(value) }
}

/// Appends `key: value` at `indent` spaces, the value written by [`scalar`].
pub(crate) fn key_value(out: &mut String, indent: usize, key: &str, value: &str) {
    push_indent(out, indent);
    out.push_str(key);
    out.push_str(": ");
    out.push_str(&scalar(value));
    out.push('\n');
}

/// Appends `key:` at `indent` spaces, to be followed by a nested block.
pub(crate) fn key(out: &mut String, indent: usize, key: &str) {
    push_indent(out, indent);
    out.push_str(key);
    out.push_str(":\n");
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Parses one YAML document as `T`. Syntax errors, type mismatches, unknown and missing fields
/// become [`Error::Parse`] naming `path` and the line.
pub(crate) fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, Error> {
    serde_saphyr::from_str(text).map_err(|error| {
        let location = error.location().filter(|l| l.line() > 0);
        let mut message = error.without_snippet().to_string();
        if let Some(l) = location {
            let suffix = format!(" at line {}, column {}", l.line(), l.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        Error::Parse {
            path: path.to_owned(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message,
        }
    })
}

/// Words YAML 1.1 or 1.2 resolve to null or a boolean (compared ignoring ASCII case).
const SPECIAL_WORDS: [&str; 10] = ["~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"];

fn is_plain_safe(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    if !(first.is_alphanumeric() || first == '/') {
        return false;
    }
    if value.ends_with([' ', ':']) || value.contains(": ") || value.contains(" #") {
        return false;
    }
    if SPECIAL_WORDS.iter().any(|w| value.eq_ignore_ascii_case(w)) {
        return false;
    }
    // Anything starting with a digit and made only of characters that occur in YAML 1.1
    // integers, floats, sexagesimals and timestamps might not stay a string.
    if first.is_ascii_digit() && value.chars().all(|c| c.is_ascii_hexdigit() || "xXoOtTzZ._:+- ".contains(c))
    {
        return false;
    }
    value.chars().all(|c| c.is_alphanumeric() || " ._/+-=@~()%,;:#".contains(c))
}

fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => out.push_str(&format!("\\x{:02X}", u32::from(c))),
            '\u{feff}' | '\u{fffe}' | '\u{ffff}' => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        value: String,
    }

    fn round_trip(value: &str) -> String {
        let mut text = String::new();
        key_value(&mut text, 0, "value", value);
        let doc: Doc = parse(&text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        doc.value
    }

    #[test]
    fn plain_when_unambiguous() {
        for value in [
            "hello",
            "v1.10.0",
            "6.12.63-talos",
            "/usr/local/bin",
            "Talos Machinery",
            "a:b",
            "a#b",
            "ünïcode",
        ] {
            assert_eq!(scalar(value), value);
        }
    }

    #[test]
    fn quoted_when_a_reader_could_take_it_otherwise() {
        let cases = [
            ("", "\"\""),
            ("yes", "\"yes\""),
            ("No", "\"No\""),
            ("~", "\"~\""),
            ("null", "\"null\""),
            ("1.10", "\"1.10\""),
            ("0x1F", "\"0x1F\""),
            ("2024-01-01", "\"2024-01-01\""),
            ("1:20", "\"1:20\""),
            (": x", "\": x\""),
            ("#", "\"#\""),
            ("a #b", "\"a #b\""),
            (" lead", "\" lead\""),
            ("trail ", "\"trail \""),
            ("- item", "\"- item\""),
            (">= v1.10.0", "\">= v1.10.0\""),
            ("two\nlines", "\"two\\nlines\""),
            ("tab\there", "\"tab\\there\""),
            ("say \"hi\" \\", "\"say \\\"hi\\\" \\\\\""),
            ("\u{7}\u{85}\u{feff}", "\"\\x07\\N\\uFEFF\""),
        ];
        for (value, written) in cases {
            assert_eq!(scalar(value), written, "{value:?}");
        }
    }

    #[test]
    fn every_written_scalar_reads_back_unchanged() {
        let values = [
            "",
            "yes",
            "no",
            "true",
            "False",
            "on",
            "OFF",
            "y",
            "N",
            "~",
            "null",
            "1.10",
            "1",
            "-1",
            "+1",
            "1e3",
            ".inf",
            "-.inf",
            ".nan",
            "0o17",
            "0x1f",
            "1_000",
            "1:20:30",
            "2001-12-14t21:59:43.10-05:00",
            ": x",
            "x:",
            "#",
            "a #b",
            "a: b",
            " lead",
            "trail ",
            "  ",
            "- x",
            "-",
            "?",
            "? x",
            "[a]",
            "{a}",
            "*a",
            "&a",
            "!a",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "%x",
            "@x",
            "`x`",
            "---",
            "...",
            "ünïcode ✓ 日本語",
            "two\nlines",
            "\r\n",
            "\t",
            "\0",
            "\u{7f}",
            "\u{85}",
            "\u{2028}\u{2029}",
            "\u{feff}x",
            "emoji 🦀",
            "back\\slash",
            "6.12.63-talos",
            "v1.10.0",
            "a,b",
            "(x)",
            "a=b",
            "100%",
        ];
        for value in values {
            assert_eq!(round_trip(value), value, "written as {}", scalar(value));
        }
    }

    #[test]
    fn parse_errors_name_the_file_and_line() {
        let error = parse::<Doc>("value: a\nvalue2: [\n", Path::new("/x/m.yaml")).unwrap_err();
        let Error::Parse { path, line, .. } = &error else { panic!("{error}") };
        assert_eq!(path, Path::new("/x/m.yaml"));
        assert_eq!(*line, Some(2));
        assert!(error.to_string().starts_with("/x/m.yaml:2:"), "{error}");
    }
}
