//! Bounds-checked reading of PE headers and the section table.

use super::Error;

/// Size of the COFF file header after the `PE\0\0` signature.
pub(super) const FILE_HEADER_LEN: usize = 20;
/// Size of one section header.
pub(super) const SECTION_HEADER_LEN: usize = 40;
/// Offset of `e_lfanew` in the DOS header.
pub(super) const E_LFANEW: usize = 0x3c;
/// Size of the DOS header copied from the stub.
pub(super) const DOS_HEADER_LEN: usize = 0x40;

/// One entry of the section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    /// The name, trailing NULs removed, lossily decoded.
    pub name: String,
    /// Its address relative to the image base once loaded.
    pub virtual_address: u32,
    /// Its size once loaded.
    pub virtual_size: u32,
    /// Where its data is in the file.
    pub raw_offset: u32,
    /// How many bytes of data the file holds for it.
    pub raw_size: u32,
}

/// The headers of a PE image, as slices of it.
pub(super) struct Headers<'a> {
    /// The COFF file header (20 bytes).
    pub(super) file_header: &'a [u8],
    /// The optional header (`SizeOfOptionalHeader` bytes).
    pub(super) optional: &'a [u8],
    /// The section headers, 40 bytes each.
    pub(super) sections: Vec<&'a [u8]>,
}

impl Headers<'_> {
    pub(super) fn machine(&self) -> u16 {
        le16(self.file_header, 0)
    }
    pub(super) fn symbol_table(&self) -> (u32, u32) {
        (le32(self.file_header, 8), le32(self.file_header, 12))
    }
}

/// The bytes `offset..offset + len` of `image`, or a truncation error naming `what`.
pub(super) fn slice<'a>(image: &'a [u8], offset: usize, len: usize, what: &str) -> Result<&'a [u8], Error> {
    offset.checked_add(len).and_then(|end| image.get(offset..end)).ok_or_else(|| Error::Truncated {
        what: what.to_owned(),
        offset: offset as u64,
        len: len as u64,
    })
}

/// Little-endian u16 at `at`; `bytes` must be long enough (checked by the caller's slicing).
pub(super) fn le16(bytes: &[u8], at: usize) -> u16 {
    let mut value = [0; 2];
    if let Some(field) = bytes.get(at..at + 2) {
        value.copy_from_slice(field);
    }
    u16::from_le_bytes(value)
}

/// Little-endian u32 at `at`; 0 when out of range, which callers exclude by slicing first.
pub(super) fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut value = [0; 4];
    if let Some(field) = bytes.get(at..at + 4) {
        value.copy_from_slice(field);
    }
    u32::from_le_bytes(value)
}

/// Parses the DOS header, signature, file header, optional header and section table.
pub(super) fn parse(image: &[u8]) -> Result<Headers<'_>, Error> {
    let dos = slice(image, 0, DOS_HEADER_LEN, "DOS header")?;
    if &dos[..2] != b"MZ" {
        return Err(Error::NotPe { reason: "no MZ signature at offset 0".into() });
    }
    let pe = le32(dos, E_LFANEW) as usize;
    if slice(image, pe, 4, "PE signature")? != b"PE\0\0" {
        return Err(Error::NotPe { reason: format!("no PE\\0\\0 signature at e_lfanew {pe:#x}") });
    }
    let file_header = slice(image, pe + 4, FILE_HEADER_LEN, "COFF file header")?;
    let count = usize::from(le16(file_header, 2));
    let optional_len = usize::from(le16(file_header, 16));
    let optional_at = pe + 4 + FILE_HEADER_LEN;
    let optional = slice(image, optional_at, optional_len, "optional header")?;
    let table_at = optional_at + optional_len;
    let table = slice(image, table_at, count * SECTION_HEADER_LEN, "section table")?;
    let sections = table.chunks_exact(SECTION_HEADER_LEN).collect();
    Ok(Headers { file_header, optional, sections })
}

/// A section header's name, trailing NULs removed, lossily decoded.
pub(super) fn section_name(header: &[u8]) -> String {
    let name = header.get(..8).unwrap_or_default();
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(name).into_owned()
}

fn info(header: &[u8]) -> SectionInfo {
    SectionInfo {
        name: section_name(header),
        virtual_size: le32(header, 8),
        virtual_address: le32(header, 12),
        raw_size: le32(header, 16),
        raw_offset: le32(header, 20),
    }
}

/// The section table of a PE image.
pub fn sections(image: &[u8]) -> Result<Vec<SectionInfo>, Error> {
    Ok(parse(image)?.sections.into_iter().map(info).collect())
}

/// The first section of that name, limited to its `VirtualSize` (and to the data the file
/// holds for it); `None` when there is no such section.
pub fn section<'a>(image: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, Error> {
    let Some(found) = sections(image)?.into_iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    let len = found.virtual_size.min(found.raw_size) as usize;
    slice(image, found.raw_offset as usize, len, &format!("section {name}")).map(Some)
}
