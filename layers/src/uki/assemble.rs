//! [`assemble`]: stub + sections → PE image bytes.

use super::pe::{self, DOS_HEADER_LEN, E_LFANEW, FILE_HEADER_LEN, Headers, SECTION_HEADER_LEN, le16, le32};
use super::{Error, Section};

/// Where the PE signature goes in the output.
const PE_OFFSET: usize = 0x80;
const MACHINE_AMD64: u16 = 0x8664;
const PE32_PLUS: u16 = 0x20b;
const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
const SCN_CNT_CODE: u32 = 0x20;
const SCN_CNT_INITIALIZED_DATA: u32 = 0x40;
const SCN_MEM_READ: u32 = 0x4000_0000;

/// Offsets in the PE32+ optional header.
mod optional {
    pub(super) const MAJOR_LINKER: usize = 2;
    pub(super) const MINOR_LINKER: usize = 3;
    pub(super) const SIZE_OF_CODE: usize = 4;
    pub(super) const SIZE_OF_INITIALIZED_DATA: usize = 8;
    pub(super) const SECTION_ALIGNMENT: usize = 32;
    pub(super) const FILE_ALIGNMENT: usize = 36;
    pub(super) const SIZE_OF_IMAGE: usize = 56;
    pub(super) const SIZE_OF_HEADERS: usize = 60;
    pub(super) const CHECKSUM: usize = 64;
    pub(super) const SUBSYSTEM: usize = 68;
    pub(super) const NUMBER_OF_RVA_AND_SIZES: usize = 108;
    pub(super) const DATA_DIRECTORIES: usize = 112;
    pub(super) const CERTIFICATE_TABLE: usize = 4;
    pub(super) const DEBUG: usize = 6;
}

/// Offsets in a section header.
mod section {
    pub(super) const VIRTUAL_SIZE: usize = 8;
    pub(super) const VIRTUAL_ADDRESS: usize = 12;
    pub(super) const SIZE_OF_RAW_DATA: usize = 16;
    pub(super) const POINTER_TO_RAW_DATA: usize = 20;
    pub(super) const POINTER_TO_RELOCATIONS: usize = 24;
    pub(super) const POINTER_TO_LINENUMBERS: usize = 28;
    pub(super) const CHARACTERISTICS: usize = 36;
}

/// systemd-stub + sections → PE image bytes, laid out as described in [`crate::uki`].
pub fn assemble(stub: &[u8], sections: &[Section<'_>], timestamp: u32) -> Result<Vec<u8>, Error> {
    let headers = pe::parse(stub)?;
    let (section_alignment, file_alignment) = check_stub(&headers)?;
    for new in sections {
        check_name(new.name)?;
    }

    let count = headers.sections.len() + sections.len();
    let count_u16 = u16::try_from(count).map_err(|_| Error::UnsupportedStub {
        reason: format!("{count} sections exceed the format's 65535"),
    })?;
    let optional_len = headers.optional.len();
    let headers_end = PE_OFFSET + 4 + FILE_HEADER_LEN + optional_len + SECTION_HEADER_LEN * count;
    let size_of_headers = align(headers_end as u64, file_alignment);
    let first_va =
        headers.sections.iter().map(|h| le32(h, section::VIRTUAL_ADDRESS)).min().unwrap_or(u32::MAX);
    if size_of_headers > u64::from(first_va) {
        return Err(Error::UnsupportedStub {
            reason: format!(
                "headers of {size_of_headers:#x} bytes for {count} sections overlap the first section at {first_va:#x}"
            ),
        });
    }

    // Section table and raw data, in file order.
    let mut table: Vec<[u8; SECTION_HEADER_LEN]> = Vec::with_capacity(count);
    let mut data: Vec<&[u8]> = Vec::with_capacity(count);
    let mut file_offset = size_of_headers;
    let mut stub_end = 0u64;
    for header in &headers.sections {
        let mut entry = [0u8; SECTION_HEADER_LEN];
        entry.copy_from_slice(header);
        let name = pe::section_name(header);
        if le32(header, section::POINTER_TO_RELOCATIONS) != 0
            || le32(header, section::POINTER_TO_LINENUMBERS) != 0
        {
            return Err(Error::UnsupportedStub {
                reason: format!("section {name} has COFF relocations or line numbers"),
            });
        }
        let raw_size = le32(header, section::SIZE_OF_RAW_DATA);
        let raw = pe::slice(
            stub,
            le32(header, section::POINTER_TO_RAW_DATA) as usize,
            raw_size as usize,
            &format!("section {name}"),
        )?;
        let pointer = if raw_size == 0 { 0 } else { file_offset };
        put32(&mut entry, section::POINTER_TO_RAW_DATA, to_u32(pointer, "a section's file offset")?);
        file_offset += align(u64::from(raw_size), file_alignment);
        let end = u64::from(le32(header, section::VIRTUAL_ADDRESS))
            + u64::from(le32(header, section::VIRTUAL_SIZE));
        stub_end = stub_end.max(end);
        table.push(entry);
        data.push(raw);
    }
    let mut virtual_address = align(stub_end, section_alignment);
    for new in sections {
        let mut entry = [0u8; SECTION_HEADER_LEN];
        entry[..new.name.len()].copy_from_slice(new.name.as_bytes());
        let len = new.data.len() as u64;
        let raw_size = align(len, file_alignment);
        put32(&mut entry, section::VIRTUAL_SIZE, to_u32(len, "a section's size")?);
        put32(&mut entry, section::VIRTUAL_ADDRESS, to_u32(virtual_address, "a section's address")?);
        put32(&mut entry, section::SIZE_OF_RAW_DATA, to_u32(raw_size, "a section's file size")?);
        let pointer = if raw_size == 0 { 0 } else { file_offset };
        put32(&mut entry, section::POINTER_TO_RAW_DATA, to_u32(pointer, "a section's file offset")?);
        put32(&mut entry, section::CHARACTERISTICS, SCN_CNT_INITIALIZED_DATA | SCN_MEM_READ);
        file_offset += raw_size;
        // An empty section still gets an address of its own.
        virtual_address += align(len.max(1), section_alignment);
        table.push(entry);
        data.push(new.data);
    }
    let size_of_image = to_u32(virtual_address, "the image size")?;
    to_u32(file_offset, "the file size")?;

    let sum_of = |flag: u32| -> Result<u32, Error> {
        let sum: u64 = table
            .iter()
            .filter(|e| le32(e.as_slice(), section::CHARACTERISTICS) & flag != 0)
            .map(|e| u64::from(le32(e.as_slice(), section::VIRTUAL_SIZE)))
            .sum();
        to_u32(sum, "the sum of section sizes")
    };
    let mut optional_header = headers.optional.to_vec();
    optional_header[optional::MAJOR_LINKER] = 0;
    optional_header[optional::MINOR_LINKER] = 0;
    put32(&mut optional_header, optional::SIZE_OF_CODE, sum_of(SCN_CNT_CODE)?);
    put32(&mut optional_header, optional::SIZE_OF_INITIALIZED_DATA, sum_of(SCN_CNT_INITIALIZED_DATA)?);
    put32(&mut optional_header, optional::SIZE_OF_IMAGE, size_of_image);
    put32(&mut optional_header, optional::SIZE_OF_HEADERS, size_of_headers as u32);
    put32(&mut optional_header, optional::CHECKSUM, 0);

    let mut file_header = headers.file_header.to_vec();
    file_header[2..4].copy_from_slice(&count_u16.to_le_bytes());
    put32(&mut file_header, 4, timestamp);

    let mut out = Vec::with_capacity(file_offset as usize);
    out.extend_from_slice(&stub[..DOS_HEADER_LEN]);
    put32(&mut out, E_LFANEW, PE_OFFSET as u32);
    out.resize(PE_OFFSET, 0);
    out.extend_from_slice(b"PE\0\0");
    out.extend_from_slice(&file_header);
    out.extend_from_slice(&optional_header);
    for entry in &table {
        out.extend_from_slice(entry);
    }
    out.resize(size_of_headers as usize, 0);
    for (entry, bytes) in table.iter().zip(data) {
        out.extend_from_slice(bytes);
        let raw_size = u64::from(le32(entry.as_slice(), section::SIZE_OF_RAW_DATA));
        out.resize(out.len() + (align(raw_size, file_alignment) - bytes.len() as u64) as usize, 0);
    }
    Ok(out)
}

/// Checks that the stub can be extended; returns its section and file alignments.
fn check_stub(headers: &Headers<'_>) -> Result<(u64, u64), Error> {
    let unsupported = |reason: String| Err(Error::UnsupportedStub { reason });
    if headers.machine() != MACHINE_AMD64 {
        return unsupported(format!("machine {:#x} is not x86-64", headers.machine()));
    }
    let optional = headers.optional;
    if optional.len() < optional::DATA_DIRECTORIES {
        return unsupported(format!("optional header of {} bytes is too short for PE32+", optional.len()));
    }
    if le16(optional, 0) != PE32_PLUS {
        return unsupported(format!("optional header magic {:#x} is not PE32+", le16(optional, 0)));
    }
    if le16(optional, optional::SUBSYSTEM) != SUBSYSTEM_EFI_APPLICATION {
        return unsupported(format!(
            "subsystem {} is not an EFI application",
            le16(optional, optional::SUBSYSTEM)
        ));
    }
    if headers.symbol_table() != (0, 0) {
        return unsupported("it has a COFF symbol table".into());
    }
    let directories = le32(optional, optional::NUMBER_OF_RVA_AND_SIZES) as usize;
    if optional::DATA_DIRECTORIES + 8 * directories.min(16) > optional.len() {
        return unsupported(format!("{directories} data directories do not fit the optional header"));
    }
    let directory_size = |index: usize| {
        if index < directories { le32(optional, optional::DATA_DIRECTORIES + 8 * index + 4) } else { 0 }
    };
    if directory_size(optional::CERTIFICATE_TABLE) != 0 {
        return unsupported(
            "it is signed (has a certificate table); a signed stub cannot be extended".into(),
        );
    }
    if directory_size(optional::DEBUG) != 0 {
        return unsupported("it has a debug directory, whose entries point into the file by offset".into());
    }
    let section_alignment = le32(optional, optional::SECTION_ALIGNMENT);
    let file_alignment = le32(optional, optional::FILE_ALIGNMENT);
    if !section_alignment.is_power_of_two()
        || !file_alignment.is_power_of_two()
        || file_alignment > section_alignment
    {
        return unsupported(format!(
            "section alignment {section_alignment:#x} and file alignment {file_alignment:#x} are not powers of two with file ≤ section"
        ));
    }
    Ok((u64::from(section_alignment), u64::from(file_alignment)))
}

fn check_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| Err(Error::InvalidSectionName { name: name.to_owned(), reason });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 8 {
        return invalid("it is longer than 8 bytes, and systemd-stub does not read the COFF string table");
    }
    if name.contains('\0') {
        return invalid("it contains a NUL byte");
    }
    Ok(())
}

/// `value` rounded up to a multiple of `alignment` (a power of two).
fn align(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

fn to_u32(value: u64, what: &'static str) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| Error::TooLarge { what })
}

/// Writes `value` little-endian at `at`; `bytes` is a header of known size.
fn put32(bytes: &mut [u8], at: usize, value: u32) {
    if let Some(field) = bytes.get_mut(at..at + 4) {
        field.copy_from_slice(&value.to_le_bytes());
    }
}
