//! The newc header: thirteen 8-digit hex fields after the magic, then the NUL-terminated name.

/// Magic of the "new ASCII" format without checksums.
pub(super) const MAGIC: &[u8; 6] = b"070701";
/// Magic of the same format with a data checksum in the check field; read, never written.
pub(super) const MAGIC_CRC: &[u8; 6] = b"070702";
/// Bytes in a header before the name.
pub(super) const HEADER_LEN: usize = 110;
/// Name of the entry that ends an archive.
pub(super) const TRAILER: &[u8] = b"TRAILER!!!";

/// Longest entry name, in bytes without the terminating NUL. The kernel skips entries whose
/// name including the NUL is longer than `PATH_MAX` (4096).
pub const MAX_NAME: usize = 4095;

/// File type bits of `st_mode`.
pub(super) const S_IFDIR: u32 = 0o040_000;
pub(super) const S_IFREG: u32 = 0o100_000;
pub(super) const S_IFLNK: u32 = 0o120_000;

/// The fields kiln sets; `dev`, `rdev` and the check field are always 0.
pub(super) struct Header {
    pub(super) ino: u32,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) nlink: u32,
    pub(super) mtime: u32,
    pub(super) filesize: u32,
}

impl Header {
    /// Header, name, NUL and padding to 4 bytes. `name` must be valid (checked by the caller)
    /// so that its length plus the NUL fits the name size field.
    pub(super) fn encode(&self, name: &[u8]) -> Vec<u8> {
        let namesize = name.len() as u32 + 1;
        let fields = [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            0, // devmajor
            0, // devminor
            0, // rdevmajor
            0, // rdevminor
            namesize,
            0, // check
        ];
        let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        out.extend_from_slice(MAGIC);
        for field in fields {
            out.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        out.extend_from_slice(name);
        out.push(0);
        out.resize(out.len() + padding(out.len() as u64), 0);
        out
    }
}

/// Zero bytes that bring `len` to a multiple of 4.
pub(super) fn padding(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}
