//! A bounds-checked reader for the parts of ELF relocatable objects that module tools use.
//!
//! It follows libkmod's `libkmod-elf.c` (kmod 30) decision for decision, so that what counts
//! as a section, an export or a needed symbol is what depmod and modinfo see: sections whose
//! data extends past the end of the file are skipped, a `.symtab` whose size is not a multiple
//! of the entry size is ignored, and so on. Every read is checked; malformed input yields
//! `Err(reason)` or a skipped item, never a panic.

/// `SHN_UNDEF`: the symbol is not defined in this object.
pub(crate) const SHN_UNDEF: u16 = 0;
/// `SHN_ABS`: the symbol's value is absolute.
pub(crate) const SHN_ABS: u16 = 0xfff1;
const STB_WEAK: u8 = 2;
const EM_SPARC: u16 = 2;
const EM_SPARCV9: u16 = 43;
const STT_REGISTER: u8 = 13;

/// A parsed ELF header and section table over borrowed bytes.
#[derive(Debug)]
pub(crate) struct Elf<'a> {
    data: &'a [u8],
    is_64: bool,
    big_endian: bool,
    machine: u16,
    section_offset: u64,
    section_count: u16,
    /// The section-name string table (`e_shstrndx`).
    names: &'a [u8],
}

/// One entry of `.symtab`, with its name resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Symbol<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: u64,
    pub(crate) shndx: u16,
    pub(crate) bind: u8,
    pub(crate) kind: u8,
}

/// The C string at the start of `bytes` (up to the first NUL or the end).
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

impl<'a> Elf<'a> {
    /// Parses the ELF header and checks the section table and section-name table.
    pub(crate) fn parse(data: &'a [u8]) -> Result<Self, String> {
        if data.len() <= 16 || &data[..4] != b"\x7fELF" {
            return Err("not an ELF file (bad magic)".into());
        }
        let is_64 = match data[4] {
            1 => false,
            2 => true,
            class => return Err(format!("unknown ELF class {class}")),
        };
        let header_size = if is_64 { 64 } else { 52 };
        if data.len() <= header_size {
            return Err("file is shorter than an ELF header".into());
        }
        let big_endian = match data[5] {
            1 => false,
            2 => true,
            encoding => return Err(format!("unknown ELF data encoding {encoding}")),
        };
        let mut elf =
            Elf { data, is_64, big_endian, machine: 0, section_offset: 0, section_count: 0, names: &[] };
        let (shoff, shentsize, shnum, shstrndx) = if is_64 {
            (elf.uint(0x28, 8), elf.uint(0x3a, 2), elf.uint(0x3c, 2), elf.uint(0x3e, 2))
        } else {
            (elf.uint(0x20, 4), elf.uint(0x2e, 2), elf.uint(0x30, 2), elf.uint(0x32, 2))
        };
        elf.machine = elf.uint(0x12, 2).unwrap_or(0) as u16;
        let (Some(shoff), Some(shentsize), Some(shnum), Some(shstrndx)) = (shoff, shentsize, shnum, shstrndx)
        else {
            return Err("file is shorter than an ELF header".into());
        };
        let expected_entry = if is_64 { 64 } else { 40 };
        if shentsize != expected_entry {
            return Err(format!("unexpected section header size {shentsize}, expected {expected_entry}"));
        }
        elf.section_offset = shoff;
        elf.section_count = shnum as u16;
        let table_end = (expected_entry * shnum).checked_add(shoff);
        if table_end.is_none_or(|end| end > data.len() as u64) {
            return Err("section headers extend past the end of the file".into());
        }
        let Some((offset, size, _)) = elf.section_info(shstrndx as u16) else {
            return Err("no valid section-name string table".into());
        };
        let names = &data[offset as usize..(offset + size) as usize];
        if names.last() != Some(&0) {
            return Err("section-name string table does not end with NUL".into());
        }
        elf.names = names;
        Ok(elf)
    }

    /// Whether the object is 64-bit.
    pub(crate) fn is_64(&self) -> bool {
        self.is_64
    }

    /// An unsigned integer of `size` bytes at `offset`, in the file's byte order.
    fn uint(&self, offset: u64, size: u64) -> Option<u64> {
        let end = offset.checked_add(size)?;
        if end > self.data.len() as u64 {
            return None;
        }
        Some(self.read_uint(&self.data[offset as usize..end as usize]))
    }

    /// (offset, size, name offset) of section `index`, if its header and data lie in the file.
    fn section_info(&self, index: u16) -> Option<(u64, u64, u32)> {
        if index == SHN_UNDEF || index >= self.section_count {
            return None;
        }
        let header = self.section_offset + u64::from(index) * if self.is_64 { 64 } else { 40 };
        let (name, offset, size) = if self.is_64 {
            (self.uint(header, 4)?, self.uint(header + 0x18, 8)?, self.uint(header + 0x20, 8)?)
        } else {
            (self.uint(header, 4)?, self.uint(header + 0x10, 4)?, self.uint(header + 0x14, 4)?)
        };
        let end = offset.checked_add(size)?;
        if end > self.data.len() as u64 {
            return None;
        }
        Some((offset, size, name as u32))
    }

    /// Size of section `index`, with its offset.
    pub(crate) fn section_span(&self, index: u16) -> Option<(u64, u64)> {
        self.section_info(index).map(|(offset, size, _)| (offset, size))
    }

    /// The data of the first valid section called `name`.
    pub(crate) fn section(&self, name: &str) -> Option<&'a [u8]> {
        (1..self.section_count).find_map(|index| {
            let (offset, size, name_offset) = self.section_info(index)?;
            let found = self.names.get(name_offset as usize..).map(c_str)?;
            (found == name.as_bytes()).then(|| &self.data[offset as usize..(offset + size) as usize])
        })
    }

    /// A 32-bit value at an absolute file offset (for CRCs stored in sections).
    pub(crate) fn u32_at(&self, offset: u64) -> Option<u64> {
        self.uint(offset, 4)
    }

    /// Reads an unsigned integer from a slice of the file in its byte order.
    pub(crate) fn read_uint(&self, bytes: &[u8]) -> u64 {
        let mut value = 0u64;
        if self.big_endian {
            for &b in bytes {
                value = (value << 8) | u64::from(b);
            }
        } else {
            for &b in bytes.iter().rev() {
                value = (value << 8) | u64::from(b);
            }
        }
        value
    }

    /// `.symtab` entries (without the null entry 0) with names from `.strtab`. `None` when
    /// either section is missing or `.symtab` is not a whole number of entries; an entry whose
    /// name offset lies outside `.strtab` is `Err(index)`.
    pub(crate) fn symbols(&self) -> Option<impl Iterator<Item = Result<Symbol<'a>, usize>> + '_> {
        let strtab = self.section(".strtab")?;
        let symtab = self.section(".symtab")?;
        let entry = if self.is_64 { 24 } else { 16 };
        if symtab.len() % entry != 0 {
            return None;
        }
        Some(symtab.chunks_exact(entry).enumerate().skip(1).map(move |(index, raw)| {
            let (name, value, info, shndx) = if self.is_64 {
                (self.read_uint(&raw[0..4]), self.read_uint(&raw[8..16]), raw[4], self.read_uint(&raw[6..8]))
            } else {
                (
                    self.read_uint(&raw[0..4]),
                    self.read_uint(&raw[4..8]),
                    raw[12],
                    self.read_uint(&raw[14..16]),
                )
            };
            if name >= strtab.len() as u64 {
                return Err(index);
            }
            let name = &strtab[name as usize..];
            Ok(Symbol { name: c_str(name), value, shndx: shndx as u16, bind: info >> 4, kind: info & 0xf })
        }))
    }

    /// Whether undefined symbols of type STT_REGISTER are not really undefined (SPARC).
    pub(crate) fn skips_register_symbols(&self) -> bool {
        self.machine == EM_SPARC || self.machine == EM_SPARCV9
    }
}

impl Symbol<'_> {
    /// Whether the binding is STB_WEAK.
    pub(crate) fn is_weak(&self) -> bool {
        self.bind == STB_WEAK
    }

    /// Whether the symbol is an SPARC STT_REGISTER symbol.
    pub(crate) fn is_register(&self) -> bool {
        self.kind == STT_REGISTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_foreign_input() {
        assert!(Elf::parse(b"").is_err());
        assert!(Elf::parse(b"\x7fELF").is_err());
        assert!(Elf::parse(b"MZ\x90\x00 this is not elf at all, not at all").is_err());
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2;
        header[5] = 1;
        assert!(Elf::parse(&header).is_err(), "64 bytes is not more than a header");
        header.push(0);
        assert!(Elf::parse(&header).is_err(), "section header size 0 is refused");
    }

    #[test]
    fn c_strings_stop_at_nul_or_end() {
        assert_eq!(c_str(b"abc\0def"), b"abc");
        assert_eq!(c_str(b"abc"), b"abc");
        assert_eq!(c_str(b""), b"");
    }
}
