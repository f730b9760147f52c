//! `.config` files and fragments, read the way the kernel's `conf` reads them
//! (`scripts/kconfig/confdata.c`, `conf_read_simple`).
//!
//! Accepted lines are `CONFIG_<SYMBOL>=<value>` and `# CONFIG_<SYMBOL> is not set`; blank lines
//! and other `#` lines are ignored; anything else is "unexpected data". A symbol assigned twice
//! keeps the last value, with an "override" warning. Values are kept as written (a string keeps
//! its quotes and escapes) because their type is only known from the Kconfig tree.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The prefix of every symbol in a `.config` file.
pub const PREFIX: &str = "CONFIG_";

/// A symbol's setting in a `.config` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `CONFIG_X=<value>`, the value as written (`y`, `m`, `"text"`, `64`, `0x1000`).
    Value(String),
    /// `# CONFIG_X is not set`.
    NotSet,
}

impl Setting {
    /// The value as `conf` sees it: `n` for "is not set".
    pub fn value(&self) -> &str {
        match self {
            Setting::Value(value) => value,
            Setting::NotSet => "n",
        }
    }

    /// The line that sets `symbol` (without `CONFIG_`) to this.
    pub fn line(&self, symbol: &str) -> String {
        match self {
            Setting::Value(value) => format!("{PREFIX}{symbol}={value}"),
            Setting::NotSet => format!("# {PREFIX}{symbol} is not set"),
        }
    }
}

/// Something `conf` would warn about while reading a file; reading continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: warning: {}", self.path.display(), self.line, self.message)
    }
}

/// A file that cannot be read as a `.config` at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not text.
    #[error("{}:{line}: not UTF-8 text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
        /// The first line that is not UTF-8.
        line: usize,
    },
}

/// The settings of a `.config` file or fragment, by symbol name (without `CONFIG_`).
///
/// Equality compares the settings only; the order of assignments (which decides between the
/// members of a choice, the last one winning) is kept apart.
#[derive(Debug, Clone, Default)]
pub struct DotConfig {
    settings: BTreeMap<String, Setting>,
    /// For each symbol, the ordinal of its last assignment.
    order: BTreeMap<String, usize>,
}

impl PartialEq for DotConfig {
    fn eq(&self, other: &DotConfig) -> bool {
        self.settings == other.settings
    }
}

impl Eq for DotConfig {}

impl DotConfig {
    /// Parses `text`, naming `path` in warnings.
    pub fn parse(text: &str, path: &Path) -> (DotConfig, Vec<Warning>) {
        let mut config = DotConfig::default();
        let mut warnings = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let mut warn = |message: String| {
                warnings.push(Warning { path: path.to_owned(), line: index + 1, message });
            };
            let Some((symbol, setting)) = parse_line(line, &mut warn) else { continue };
            if !valid_symbol(symbol) {
                warn(format!("invalid symbol name {symbol:?}"));
                continue;
            }
            if let Setting::Value(value) = &setting
                && let Err(problem) = check_string(value)
            {
                warn(format!("{problem} for symbol {symbol}"));
                continue;
            }
            config.order.insert(symbol.to_owned(), index);
            if config.settings.insert(symbol.to_owned(), setting).is_some() {
                warn(format!("override: reassigning to symbol {symbol}"));
            }
        }
        (config, warnings)
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<(DotConfig, Vec<Warning>), Error> {
        let text = read_text(path)?;
        Ok(DotConfig::parse(&text, path))
    }

    /// The setting of `symbol` (without `CONFIG_`).
    pub fn get(&self, symbol: &str) -> Option<&Setting> {
        self.settings.get(symbol)
    }

    /// Sets `symbol` (without `CONFIG_`).
    pub fn set(&mut self, symbol: &str, setting: Setting) {
        let last = self.order.values().max().map_or(0, |last| last + 1);
        self.order.insert(symbol.to_owned(), last);
        self.settings.insert(symbol.to_owned(), setting);
    }

    /// The ordinal of the last assignment to `symbol`: later assignments have larger ones.
    pub fn position(&self, symbol: &str) -> Option<usize> {
        self.order.get(symbol).copied()
    }

    /// All settings, sorted by symbol.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.settings.iter().map(|(symbol, setting)| (symbol.as_str(), setting))
    }

    /// Number of symbols set.
    pub fn len(&self) -> usize {
        self.settings.len()
    }

    /// Whether no symbol is set.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// The settings as a fragment: one line per symbol, sorted by name.
    pub fn to_fragment(&self) -> String {
        self.iter().map(|(symbol, setting)| setting.line(symbol) + "\n").collect()
    }
}

/// Reads a file as UTF-8 text, naming the first bad line otherwise.
pub fn read_text(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        Error::NotText { path: path.to_owned(), line: valid.iter().filter(|&&b| b == b'\n').count() + 1 }
    })
}

/// One line → (symbol, setting), or `None` for lines `conf` skips.
fn parse_line<'a>(line: &'a str, warn: &mut impl FnMut(String)) -> Option<(&'a str, Setting)> {
    if line.is_empty() {
        return None;
    }
    if let Some(comment) = line.strip_prefix('#') {
        let rest = comment.strip_prefix(' ')?.strip_prefix(PREFIX)?;
        let (symbol, tail) = rest.split_once(' ')?;
        return (tail == "is not set").then_some((symbol, Setting::NotSet));
    }
    let Some((symbol, value)) = line.strip_prefix(PREFIX).and_then(|rest| rest.split_once('=')) else {
        warn(format!("unexpected data: {line}"));
        return None;
    };
    Some((symbol, Setting::Value(value.to_owned())))
}

fn valid_symbol(symbol: &str) -> bool {
    !symbol.is_empty() && symbol.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A value starting with `"` must be one complete quoted string (`\` escapes the next byte).
fn check_string(value: &str) -> Result<(), &'static str> {
    let Some(body) = value.strip_prefix('"') else { return Ok(()) };
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                return if i + 1 == body.len() { Ok(()) } else { Err("text after the closing quote") };
            }
            _ => {}
        }
    }
    Err("invalid string found (no closing quote)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (DotConfig, Vec<String>) {
        let (config, warnings) = DotConfig::parse(text, Path::new("x.config"));
        (config, warnings.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn reads_assignments_and_not_set_lines() {
        let (config, warnings) = parse(
            "#\n# Automatically generated file; DO NOT EDIT.\n#\nCONFIG_A=y\r\nCONFIG_B=m\n# CONFIG_C is not set\n\
             CONFIG_S=\"a \\\"quoted\\\" word\"\nCONFIG_H=0x10\n#CONFIG_D is not set\n# CONFIG_E is unset\n\n",
        );
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(config.get("A"), Some(&Setting::Value("y".into())));
        assert_eq!(config.get("B").map(Setting::value), Some("m"));
        assert_eq!(config.get("C"), Some(&Setting::NotSet));
        assert_eq!(config.get("S").map(Setting::value), Some("\"a \\\"quoted\\\" word\""));
        assert_eq!(config.get("H").map(Setting::value), Some("0x10"));
        assert_eq!((config.get("D"), config.get("E")), (None, None));
        assert_eq!(config.len(), 5);
    }

    #[test]
    fn warns_with_file_and_line_and_keeps_the_last_value() {
        let (config, warnings) = parse(
            "CONFIG_A=y\nstray text\nCONFIG_NOEQUALS\nCONFIG_A=m\nCONFIG_S=\"open\nCONFIG_B-C=y\nCONFIG_Q=\"a\"b\n",
        );
        assert_eq!(
            warnings,
            [
                "x.config:2: warning: unexpected data: stray text",
                "x.config:3: warning: unexpected data: CONFIG_NOEQUALS",
                "x.config:4: warning: override: reassigning to symbol A",
                "x.config:5: warning: invalid string found (no closing quote) for symbol S",
                "x.config:6: warning: invalid symbol name \"B-C\"",
                "x.config:7: warning: text after the closing quote for symbol Q",
            ]
        );
        assert_eq!(config.get("A").map(Setting::value), Some("m"));
        assert_eq!((config.get("S"), config.get("Q")), (None, None));
    }

    #[test]
    fn fragment_round_trips() {
        let (config, _) = parse("CONFIG_Z=y\n# CONFIG_A is not set\nCONFIG_M=\"x\"\n");
        let fragment = config.to_fragment();
        assert_eq!(fragment, "# CONFIG_A is not set\nCONFIG_M=\"x\"\nCONFIG_Z=y\n");
        assert_eq!(parse(&fragment).0, config);
    }

    #[test]
    fn non_utf8_file_names_its_line() {
        let dir = std::env::temp_dir().join(format!("kiln-kconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.config");
        std::fs::write(&path, b"CONFIG_A=y\nCONFIG_B=\"\xff\"\n").unwrap();
        let error = DotConfig::read(&path).unwrap_err();
        assert!(matches!(error, Error::NotText { line: 2, .. }), "{error:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
