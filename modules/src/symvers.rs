//! `Module.symvers`: `0x<crc>\t<symbol>\t<module path>\t<EXPORT_SYMBOL[_GPL]>\t<namespace>` per
//! line (`scripts/mod/modpost.c`); `vmlinux` is the kernel itself.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, Result};

/// One exported symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The symbol.
    pub name: String,
    /// Its CRC.
    pub crc: u64,
    /// The exporting object: `vmlinux` or a module path without extension.
    pub module: String,
    /// `EXPORT_SYMBOL`, `EXPORT_SYMBOL_GPL`.
    pub export: String,
    /// The symbol namespace, empty if none.
    pub namespace: String,
}

/// A parsed `Module.symvers`.
#[derive(Debug, Clone, Default)]
pub struct Symvers {
    /// Every symbol, in file order.
    pub symbols: Vec<Symbol>,
}

impl Symvers {
    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Symvers> {
        let text = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        Symvers::parse(&String::from_utf8_lossy(&text), path)
    }

    /// Parses the text of a file; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Symvers> {
        let mut symbols = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let syntax = |message: String| Error::Syntax { path: path.to_owned(), line: index + 1, message };
            let mut fields = line.split(['\t', ' ']).filter(|f| !f.is_empty());
            let (Some(crc), Some(name), Some(module)) = (fields.next(), fields.next(), fields.next()) else {
                return Err(syntax("expected CRC, symbol and module".into()));
            };
            let digits = crc.strip_prefix("0x").or_else(|| crc.strip_prefix("0X")).unwrap_or(crc);
            let crc = u64::from_str_radix(digits, 16).map_err(|_| syntax(format!("bad CRC {crc:?}")))?;
            symbols.push(Symbol {
                name: name.to_owned(),
                crc,
                module: module.to_owned(),
                export: fields.next().unwrap_or_default().to_owned(),
                namespace: fields.next().unwrap_or_default().to_owned(),
            });
        }
        Ok(Symvers { symbols })
    }

    /// The kernel's (`vmlinux`) exports by name.
    pub fn kernel(&self) -> HashMap<&str, &Symbol> {
        self.symbols.iter().filter(|s| s.module == "vmlinux").map(|s| (s.name.as_str(), s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_reports_bad_ones() {
        let text = "0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n0x00000001\tfoo\tdrivers/x/foo\tEXPORT_SYMBOL_GPL\tNS\n";
        let symvers = Symvers::parse(text, Path::new("Module.symvers")).unwrap();
        assert_eq!(symvers.symbols.len(), 2);
        assert_eq!(symvers.symbols[0].crc, 0x1234_5678);
        assert_eq!(symvers.symbols[1].namespace, "NS");
        assert_eq!(symvers.kernel().len(), 1);
        let error = Symvers::parse("zz printk vmlinux\n", Path::new("M")).unwrap_err();
        assert_eq!(error.to_string(), "M:1: bad CRC \"zz\"");
    }
}
