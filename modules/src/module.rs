//! One module file: decompression, `.modinfo`, `__versions`, exported and needed symbols.
//!
//! What is read, and how malformed parts are treated, follows libkmod (kmod 30) so that the
//! result agrees with `modinfo` and `depmod`: `.modinfo` is split on runs of NULs, an export is
//! a `__crc_<sym>` symbol (or, without any, a string of `__ksymtab_strings`), a needed symbol is
//! an undefined `.symtab` entry, matched by name with its `__versions` CRC, followed by the
//! `__versions` entries no symbol matched (`module_layout`).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{self, Elf, SHN_ABS, SHN_UNDEF};
use crate::error::{Error, Result};
use crate::vermagic::Vermagic;

/// How a module file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `.ko.xz`.
    Xz,
    /// `.ko.zst`.
    Zstd,
    /// `.ko.gz`.
    Gzip,
}

impl Compression {
    /// Recognises compressed data by its magic number, as libkmod does.
    pub fn detect(bytes: &[u8]) -> Option<Compression> {
        if bytes.starts_with(b"\xfd7zXZ\0") {
            Some(Compression::Xz)
        } else if bytes.starts_with(b"\x28\xb5\x2f\xfd") {
            Some(Compression::Zstd)
        } else if bytes.starts_with(b"\x1f\x8b") {
            Some(Compression::Gzip)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

/// The file-name endings of module files.
pub const EXTENSIONS: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// Whether a file name ends in a module extension (and is longer than it).
pub fn has_module_extension(name: &str) -> bool {
    EXTENSIONS.iter().any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// The module name of a path: its file name up to the first `.`, with `-` replaced by `_`.
pub fn module_name(path: &Path) -> String {
    let base = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    normalize_name(&base)
}

/// kmod's `modname_normalize`: up to the first `.`, `-` → `_`.
pub fn normalize_name(name: &str) -> String {
    name.split('.').next().unwrap_or_default().replace('-', "_")
}

/// One `.modinfo` entry, `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    /// The key, before the first `=`.
    pub key: String,
    /// The value (empty for an entry without `=`).
    pub value: String,
}

/// A `__versions` record: a symbol the module needs and the CRC it was built against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// The symbol (a leading `.` removed, as kmod does).
    pub symbol: String,
    /// The CRC.
    pub crc: u64,
}

/// A symbol the module exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    /// The symbol.
    pub symbol: String,
    /// Its CRC, when the module was built with MODVERSIONS (`__crc_<sym>`).
    pub crc: Option<u64>,
}

/// A symbol the module needs (undefined in its `.symtab`, or only in `__versions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Needed {
    /// The symbol.
    pub symbol: String,
    /// The CRC recorded for it in `__versions`, if any.
    pub crc: Option<u64>,
    /// A weak reference: the module loads without it.
    pub weak: bool,
}

/// The appended signature: where it sits, and what `modinfo` shows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppendedSignature {
    /// Bytes of the (decompressed) file before the signature: the module proper.
    pub module_len: usize,
    /// Length of the signature blob (`sig_len`).
    pub signature_len: usize,
    /// `sig_id`, `signer`, `sig_key`, `sig_hashalgo` and `signature` as `modinfo` prints them;
    /// empty when the PKCS#7 blob does not parse.
    pub fields: Vec<Field>,
}

/// What one module file holds.
#[derive(Debug, Clone, Serialize)]
pub struct Module {
    /// The file read.
    pub path: PathBuf,
    /// The module name, from the file name.
    pub name: String,
    /// The file's compression.
    pub compression: Option<Compression>,
    /// Every `.modinfo` entry, in file order, repeated keys kept.
    pub modinfo: Vec<Field>,
    /// `__versions` records in file order.
    pub versions: Vec<Version>,
    /// Exported symbols in `.symtab` order (or `__ksymtab_strings` order).
    pub exports: Vec<Export>,
    /// Needed symbols in depmod's order.
    pub needed: Vec<Needed>,
    /// The appended signature, if the file has one.
    pub signature: Option<AppendedSignature>,
}

/// Reads a whole file, decompressing it when it is xz, zstd or gzip data.
pub fn read_decompressed(path: &Path) -> Result<(Vec<u8>, Option<Compression>)> {
    let raw = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    let Some(compression) = Compression::detect(&raw) else {
        return Ok((raw, None));
    };
    if compression == Compression::Xz
        && let Some(out) = crate::xz::decompress(&raw)
    {
        return Ok((out, Some(compression)));
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    let result = match compression {
        Compression::Xz => lzma_rust2::XzReader::new(&raw[..], true).read_to_end(&mut out),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(&raw[..]).and_then(|mut d| d.read_to_end(&mut out))
        }
        Compression::Gzip => flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out),
    };
    result.map_err(|source| Error::Decompress {
        path: path.to_owned(),
        format: compression.name(),
        source,
    })?;
    Ok((out, Some(compression)))
}

impl Module {
    /// Reads and parses a module file (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`).
    pub fn read(path: &Path) -> Result<Module> {
        let (bytes, compression) = read_decompressed(path)?;
        let mut module = Module::parse(&bytes, path)?;
        module.compression = compression;
        Ok(module)
    }

    /// Parses the (decompressed) bytes of a module; `path` names it in errors and gives its name.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Module> {
        let elf = Elf::parse(bytes).map_err(|reason| Error::Malformed { path: path.to_owned(), reason })?;
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let modinfo = elf
            .section(".modinfo")
            .map(split_strings)
            .unwrap_or_default()
            .into_iter()
            .map(|entry| match entry.iter().position(|&b| b == b'=') {
                Some(eq) => Field { key: lossy(&entry[..eq]), value: lossy(&entry[eq + 1..]) },
                None => Field { key: lossy(entry), value: String::new() },
            })
            .collect();
        let versions = versions(&elf)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, crc)| {
                let name = name.strip_prefix(b".").unwrap_or(name);
                Version { symbol: lossy(name), crc }
            })
            .collect();
        Ok(Module {
            path: path.to_owned(),
            name: module_name(path),
            compression: None,
            modinfo,
            versions,
            exports: exports(&elf),
            needed: needed(&elf).unwrap_or_default(),
            signature: appended_signature(bytes),
        })
    }

    /// Values of every `.modinfo` entry with this key, in file order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.modinfo.iter().filter(move |f| f.key == key).map(|f| f.value.as_str())
    }

    /// The first value of a key.
    pub fn value<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.values(key).next()
    }

    /// The parsed `vermagic=` entry.
    pub fn vermagic(&self) -> Option<Vermagic> {
        self.value("vermagic").map(Vermagic::parse)
    }
}

/// kmod's `kmod_elf_get_strings`: leading NULs skipped, split on runs of NULs, a last
/// unterminated string kept.
fn split_strings(section: &[u8]) -> Vec<&[u8]> {
    section.split(|&b| b == 0).filter(|s| !s.is_empty()).collect()
}

/// `__versions` as (name, crc) pairs; `None` when absent or not a whole number of records.
fn versions<'a>(elf: &Elf<'a>) -> Option<Vec<(&'a [u8], u64)>> {
    let section = elf.section("__versions")?;
    if section.is_empty() || section.len() % 64 != 0 {
        return None;
    }
    let crc_len = if elf.is_64() { 8 } else { 4 };
    Some(
        section
            .chunks_exact(64)
            .map(|record| (elf::c_str(&record[crc_len..]), elf.read_uint(&record[..crc_len])))
            .collect(),
    )
}

/// kmod's `kmod_elf_get_symbols`: `__crc_` symbols, or `__ksymtab_strings` without any.
fn exports(elf: &Elf<'_>) -> Vec<Export> {
    let from_crcs = || -> Option<Vec<Export>> {
        let symbols: Vec<_> = elf.symbols()?.collect::<Result<_, _>>().ok()?;
        let exports: Vec<Export> = symbols
            .iter()
            .filter_map(|symbol| {
                let name = symbol.name.strip_prefix(b"__crc_")?;
                let crc = match symbol.shndx {
                    SHN_ABS | SHN_UNDEF => symbol.value,
                    index => match elf.section_span(index) {
                        Some((offset, size)) if symbol.value <= size.wrapping_sub(4) => {
                            offset.checked_add(symbol.value).and_then(|at| elf.u32_at(at)).unwrap_or(u64::MAX)
                        }
                        _ => u64::MAX,
                    },
                };
                Some(Export { symbol: String::from_utf8_lossy(name).into_owned(), crc: Some(crc) })
            })
            .collect();
        (!exports.is_empty()).then_some(exports)
    };
    from_crcs().unwrap_or_else(|| {
        elf.section("__ksymtab_strings")
            .map(split_strings)
            .unwrap_or_default()
            .into_iter()
            .map(|name| Export { symbol: String::from_utf8_lossy(name).into_owned(), crc: None })
            .collect()
    })
}

/// kmod's `kmod_elf_get_dependency_symbols`.
fn needed(elf: &Elf<'_>) -> Option<Vec<Needed>> {
    let versions = versions(elf).unwrap_or_default();
    let mut visited = vec![false; versions.len()];
    let skip_register = elf.skips_register_symbols();
    let mut needed = Vec::new();
    for symbol in elf.symbols()? {
        let Ok(symbol) = symbol else {
            // A name outside .strtab: kmod gives up on the whole list.
            return None;
        };
        if symbol.shndx != SHN_UNDEF || (skip_register && symbol.is_register()) || symbol.name.is_empty() {
            continue;
        }
        let crc = versions.iter().position(|(name, _)| *name == symbol.name).map(|index| {
            visited[index] = true;
            versions[index].1
        });
        needed.push(Needed {
            symbol: String::from_utf8_lossy(symbol.name).into_owned(),
            crc,
            weak: symbol.is_weak(),
        });
    }
    for ((name, crc), _) in versions.iter().zip(&visited).filter(|(_, seen)| !**seen) {
        needed.push(Needed {
            symbol: String::from_utf8_lossy(name).into_owned(),
            crc: Some(*crc),
            weak: false,
        });
    }
    Some(needed)
}

/// The appended signature, when the file ends with the magic and its header is one the kernel
/// accepts (read by [`signing::appended`](crate::signing::appended)).
pub fn appended_signature(bytes: &[u8]) -> Option<AppendedSignature> {
    let appended = crate::signing::appended::split(bytes).ok()??;
    let fields = crate::signing::read_signature(bytes)
        .ok()
        .flatten()
        .map(|info| {
            info.modinfo_fields()
                .into_iter()
                .map(|(key, value)| Field { key: key.to_owned(), value })
                .collect()
        })
        .unwrap_or_default();
    Some(AppendedSignature {
        module_len: appended.unsigned.len(),
        signature_len: appended.pkcs7.len(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kmod() {
        assert_eq!(module_name(Path::new("/x/snd-hda-intel.ko.xz")), "snd_hda_intel");
        assert_eq!(module_name(Path::new("kernel/a.b.ko")), "a");
        assert!(has_module_extension("a.ko.zst"));
        assert!(!has_module_extension(".ko"));
        assert!(!has_module_extension("a.ko.bz2"));
    }

    #[test]
    fn strings_split_on_nul_runs() {
        assert_eq!(split_strings(b"\0\0a=1\0\0\0b=2\0c"), [&b"a=1"[..], b"b=2", b"c"]);
        assert!(split_strings(b"\0\0").is_empty());
    }

    #[test]
    fn signature_trailer_needs_consistent_lengths() {
        let mut file = b"ELFDATA".to_vec();
        file.extend_from_slice(b"SIG");
        file.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
        file.extend_from_slice(crate::signing::appended::MARKER);
        let found = appended_signature(&file).unwrap();
        assert_eq!((found.module_len, found.signature_len), (7, 3));
        // Not PKCS#7 inside: where it is, but no details.
        assert!(found.fields.is_empty());
        assert_eq!(appended_signature(crate::signing::appended::MARKER), None);
        assert_eq!(appended_signature(b"plain"), None);
    }
}
