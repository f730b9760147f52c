//! depmod.d configuration (`man depmod.d`), parsed as kmod 30 parses it.
//!
//! Files are given explicitly (kiln never reads the host's `/etc/depmod.d`); a directory
//! contributes its `*.conf` files. All files are read in order of their names, a name seen
//! twice is read once (the first path wins). Lines: `search DIR... | built-in | external`,
//! `override MODULE KERNEL-REGEX SUBDIR`, `external KERNEL-REGEX DIR`, `exclude NAME...`;
//! `#` comments and `\` continuation lines.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One entry of the search list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// A subdirectory of the module directory.
    Path(String),
    /// `built-in`: the priority of everything no other entry matches.
    BuiltIn,
    /// `external`: the external directories, in their order.
    External,
}

/// The resolved configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Search list, highest priority first (`updates` alone when no `search` line was seen).
    pub search: Vec<Search>,
    /// `override` entries matching the kernel release as `SUBDIR/MODULE`, first-listed first.
    pub overrides: Vec<String>,
    /// `external` directories matching the kernel release, in order.
    pub externals: Vec<String>,
    /// `exclude` names: directories (or files) of this name are not searched.
    pub excludes: Vec<String>,
    /// Lines kmod ignores with a message, as `file:line: message`.
    pub warnings: Vec<String>,
}

impl Config {
    /// The default configuration: search `updates` first.
    pub fn empty() -> Config {
        Config { search: vec![Search::Path("updates".into())], ..Config::default() }
    }

    /// Reads the configuration files and directories, for kernel release `release`.
    pub fn load(paths: &[PathBuf], release: &str) -> Result<Config> {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut insert = |name: String, path: PathBuf| {
            if let Err(at) = files.binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes())) {
                files.insert(at, (name, path));
            }
        };
        for path in paths {
            let meta =
                std::fs::metadata(path).map_err(|source| Error::Read { path: path.clone(), source })?;
            if !meta.is_dir() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                insert(name, path.clone());
                continue;
            }
            let entries =
                std::fs::read_dir(path).map_err(|source| Error::Read { path: path.clone(), source })?;
            for entry in entries {
                let entry = entry.map_err(|source| Error::Read { path: path.clone(), source })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let full = entry.path();
                if name.starts_with('.') || name.len() < 6 || !name.ends_with(".conf") || full.is_dir() {
                    continue;
                }
                insert(name, full);
            }
        }
        let mut config = Config::default();
        // kmod prepends every entry to its lists; keep kmod's list order to reproduce its
        // priority rules exactly, then reverse at the end so the first listed comes first.
        for (_, path) in &files {
            let text = std::fs::read(path).map_err(|source| Error::Read { path: path.clone(), source })?;
            config.parse(&String::from_utf8_lossy(&text), path, release);
        }
        if config.search.is_empty() {
            config.search.push(Search::Path("updates".into()));
        }
        Ok(config)
    }

    /// Parses one file's text into this configuration.
    pub fn parse(&mut self, text: &str, path: &Path, release: &str) {
        for (line_number, line) in logical_lines(text) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split(['\t', ' ']).filter(|w| !w.is_empty());
            let Some(command) = words.next() else { continue };
            let at = format!("{}:{line_number}", path.display());
            match command {
                "search" => {
                    for word in words {
                        self.search.push(match word {
                            "built-in" => Search::BuiltIn,
                            "external" => Search::External,
                            path => Search::Path(path.to_owned()),
                        });
                    }
                }
                "override" => match (words.next(), words.next(), words.next()) {
                    (Some(module), Some(kernel), Some(subdir)) => {
                        if kernel_matches(kernel, release) {
                            self.overrides.push(format!("{subdir}/{module}"));
                        }
                    }
                    _ => self.warnings.push(format!("{at}: ignoring bad line starting with '{command}'")),
                },
                "external" => match (words.next(), words.next()) {
                    (Some(kernel), Some(dir)) => {
                        if kernel_matches(kernel, release) {
                            self.externals.push(dir.to_owned());
                        }
                    }
                    _ => self.warnings.push(format!("{at}: ignoring bad line starting with '{command}'")),
                },
                "exclude" => self.excludes.extend(words.map(str::to_owned)),
                "include" | "make_map_files" => {
                    self.warnings.push(format!("{at}: command {command} not implemented yet"));
                }
                _ => self.warnings.push(format!("{at}: ignoring bad line starting with '{command}'")),
            }
        }
    }
}

/// kmod's `cfg_kernel_matches`: `*`, or an extended regular expression searched in the release.
fn kernel_matches(pattern: &str, release: &str) -> bool {
    pattern == "*" || regex::Regex::new(pattern).is_ok_and(|re| re.is_match(release))
}

/// Lines joined across trailing backslashes (kmod's `freadline_wrapped`), with the number of
/// the first physical line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (number, mut joined) = current.take().unwrap_or((index + 1, String::new()));
        match raw.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                current = Some((number, joined));
            }
            None => {
                joined.push_str(raw);
                lines.push((number, joined));
            }
        }
    }
    if let Some(last) = current {
        lines.push(last);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_search_override_external_exclude() {
        let mut config = Config::default();
        let text = "# comment\nsearch updates built-in \\\n  extra\noverride foo 6\\.12.* weird\n\
                    override bar 5.* old\nexternal * /opt/mods\nexclude skipme\nbogus line\noverride x\n";
        config.parse(text, Path::new("a.conf"), "6.12.1");
        assert_eq!(
            config.search,
            [Search::Path("updates".into()), Search::BuiltIn, Search::Path("extra".into())]
        );
        assert_eq!(config.overrides, ["weird/foo"]);
        assert_eq!(config.externals, ["/opt/mods"]);
        assert_eq!(config.excludes, ["skipme"]);
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    }
}
