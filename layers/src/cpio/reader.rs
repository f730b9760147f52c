//! [`read`]: a bounds-checked parser for concatenated newc archives.

use super::Error;
use super::header::{HEADER_LEN, MAGIC, MAGIC_CRC, TRAILER, padding};

/// One entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as stored, without the terminating NUL.
    pub name: Vec<u8>,
    /// The full `st_mode`, including the file type bits.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Modification time in seconds since 1970.
    pub mtime: u64,
    /// Link count.
    pub nlink: u32,
    /// The entry's data: file contents or a symlink's target.
    pub data: Vec<u8>,
}

/// Every entry of one or more concatenated newc archives (uncompressed), trailers excluded.
///
/// Like the kernel, NUL bytes between archives are skipped, and the next archive must then
/// start at a multiple of 4. Each archive must end with its `TRAILER!!!` entry. Both magics
/// of the format, `070701` and `070702`, are read; the check field is not verified.
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        if bytes[offset..].iter().all(|&b| b == 0) {
            break;
        }
        let start = offset + bytes[offset..].iter().take_while(|&&b| b == 0).count();
        if start % 4 != 0 {
            return Err(Error::malformed(
                start,
                "an archive after NUL padding must start at a multiple of 4",
            ));
        }
        offset = read_archive(bytes, start, &mut entries)?;
    }
    Ok(entries)
}

/// Reads the archive starting at `offset` up to and including its trailer; returns the offset
/// after it.
fn read_archive(bytes: &[u8], mut offset: usize, entries: &mut Vec<Entry>) -> Result<usize, Error> {
    loop {
        let header = bytes.get(offset..offset + HEADER_LEN).ok_or_else(|| {
            Error::malformed(offset, "truncated header (no TRAILER!!! entry before the end)")
        })?;
        let magic = &header[..6];
        if magic != MAGIC && magic != MAGIC_CRC {
            return Err(Error::malformed(
                offset,
                format!("magic {:?} is not newc 070701 or 070702", String::from_utf8_lossy(magic)),
            ));
        }
        let field = |index: usize| hex_field(header, offset, index);
        let mode = field(1)?;
        let uid = field(2)?;
        let gid = field(3)?;
        let nlink = field(4)?;
        let mtime = field(5)?;
        let filesize = field(6)? as usize;
        let namesize = field(11)? as usize;
        if namesize == 0 {
            return Err(Error::malformed(offset, "name size 0"));
        }
        let name_start = offset + HEADER_LEN;
        let name = bytes
            .get(name_start..name_start + namesize)
            .ok_or_else(|| Error::malformed(name_start, format!("truncated name of {namesize} bytes")))?;
        let Some((&0, name)) = name.split_last() else {
            return Err(Error::malformed(name_start, "name is not NUL-terminated"));
        };
        let data_start = name_start + namesize;
        let data_start = data_start + padding(data_start as u64);
        let data = bytes.get(data_start..data_start + filesize).ok_or_else(|| {
            let name = String::from_utf8_lossy(name);
            Error::malformed(data_start, format!("truncated data of entry {name:?} ({filesize} bytes)"))
        })?;
        let end = data_start + filesize;
        let next = end + padding(end as u64);
        if name == TRAILER {
            return Ok(next.min(bytes.len()));
        }
        entries.push(Entry {
            name: name.to_vec(),
            mode,
            uid,
            gid,
            mtime: u64::from(mtime),
            nlink,
            data: data.to_vec(),
        });
        offset = next;
    }
}

/// Field `index` (0 = ino) of the header at `offset`: eight hex digits.
fn hex_field(header: &[u8], offset: usize, index: usize) -> Result<u32, Error> {
    let start = 6 + 8 * index;
    let digits = header.get(start..start + 8).unwrap_or_default();
    let text =
        std::str::from_utf8(digits).ok().filter(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()));
    text.and_then(|t| u32::from_str_radix(t, 16).ok())
        .ok_or_else(|| Error::malformed(offset + start, format!("header field {index} is not 8 hex digits")))
}
