//! [`Writer`]: newc entries appended to any [`Write`].

use std::io::{self, Read, Write};

use kiln_reproducible::Owner;

use super::header::{Header, MAX_NAME, S_IFDIR, S_IFLNK, S_IFREG, TRAILER, padding};
use super::{Error, lossy};

const COPY_BUFFER: usize = 64 * 1024;

/// Writes a newc archive entry by entry. Entries are written in the order the methods are
/// called and numbered 1, 2, … in that order; parents must be written before their children
/// for the kernel to unpack them.
pub struct Writer<W: Write> {
    inner: W,
    next_ino: u32,
    owner: Owner,
    buffer: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// A writer whose entries belong to 0:0 until [`Writer::set_owner`] says otherwise.
    pub fn new(inner: W) -> Self {
        Writer { inner, next_ino: 1, owner: Owner::default(), buffer: Vec::new() }
    }

    /// The numeric owner of the entries written from now on.
    pub fn set_owner(&mut self, owner: Owner) {
        self.owner = owner;
    }

    /// Appends a directory. `mode` = permission bits only; the type bits are added by the
    /// method.
    pub fn directory(&mut self, name: &[u8], mode: u32, mtime: u64) -> io::Result<()> {
        Ok(self.write_entry(name, S_IFDIR | checked_mode(name, mode)?, mtime, &[])?)
    }

    /// Appends a regular file of `size` bytes read from `data`, which must give exactly that
    /// many bytes.
    pub fn file(
        &mut self,
        name: &[u8],
        mode: u32,
        mtime: u64,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let mode = checked_mode(name, mode)?;
        let read_error = |source| Error::Data { name: lossy(name), source };
        Ok(self.write_file(name, mode, mtime, size, data, &read_error)?)
    }

    /// Appends a symbolic link to `target`, with permission bits 0777.
    pub fn symlink(&mut self, name: &[u8], target: &[u8], mtime: u64) -> io::Result<()> {
        Ok(self.write_entry(name, S_IFLNK | 0o777, mtime, target)?)
    }

    /// Writes the `TRAILER!!!` entry and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_trailer()?;
        Ok(self.inner)
    }

    /// An entry whose data is in memory (a directory's none, a symlink's target).
    pub(super) fn write_entry(
        &mut self,
        name: &[u8],
        mode: u32,
        mtime: u64,
        data: &[u8],
    ) -> Result<(), Error> {
        let header = self.header(name, mode, mtime, data.len() as u64)?;
        let write = |e| Error::Write { name: lossy(name), source: e };
        self.inner.write_all(&header.encode(name)).map_err(write)?;
        self.inner.write_all(data).map_err(write)?;
        self.inner.write_all(&[0; 3][..padding(data.len() as u64)]).map_err(write)
    }

    /// A regular file with permission bits `mode`, streamed from `data`; errors reading it
    /// are reported by `read_error`.
    pub(super) fn write_file(
        &mut self,
        name: &[u8],
        mode: u32,
        mtime: u64,
        size: u64,
        data: &mut dyn Read,
        read_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<(), Error> {
        let header = self.header(name, S_IFREG | mode, mtime, size)?;
        let write = |e| Error::Write { name: lossy(name), source: e };
        self.inner.write_all(&header.encode(name)).map_err(write)?;
        if self.buffer.is_empty() {
            self.buffer = vec![0; COPY_BUFFER];
        }
        let mismatch = |found| Error::SizeMismatch { name: lossy(name), expected: size, found };
        let mut copied = 0u64;
        while copied < size {
            let want = (size - copied).min(self.buffer.len() as u64) as usize;
            let n = read_some(data, &mut self.buffer[..want]).map_err(read_error)?;
            if n == 0 {
                return Err(mismatch(copied));
            }
            self.inner.write_all(&self.buffer[..n]).map_err(write)?;
            copied += n as u64;
        }
        if read_some(data, &mut self.buffer[..1]).map_err(read_error)? != 0 {
            return Err(mismatch(size + 1));
        }
        self.inner.write_all(&[0; 3][..padding(size)]).map_err(write)
    }

    pub(super) fn write_trailer(&mut self) -> Result<(), Error> {
        let header = Header { ino: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, filesize: 0 };
        let write = |e| Error::Write { name: lossy(TRAILER), source: e };
        self.inner.write_all(&header.encode(TRAILER)).map_err(write)?;
        self.inner.flush().map_err(write)
    }

    pub(super) fn into_inner(self) -> W {
        self.inner
    }

    /// Checks the entry and takes the next inode number.
    fn header(&mut self, name: &[u8], mode: u32, mtime: u64, size: u64) -> Result<Header, Error> {
        check_name(name)?;
        let out_of_range = |field, value| Error::OutOfRange { name: lossy(name), field, value };
        let filesize = u32::try_from(size).map_err(|_| out_of_range("size", size))?;
        let mtime = u32::try_from(mtime).map_err(|_| out_of_range("mtime", mtime))?;
        let ino = self.next_ino;
        self.next_ino = ino.checked_add(1).ok_or(out_of_range("inode number", u64::from(ino) + 1))?;
        let nlink = if mode & 0o170_000 == S_IFDIR { 2 } else { 1 };
        Ok(Header { ino, mode, uid: self.owner.uid, gid: self.owner.gid, nlink, mtime, filesize })
    }
}

/// A read that retries on `Interrupted`.
fn read_some(data: &mut dyn Read, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match data.read(buffer) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

fn checked_mode(name: &[u8], mode: u32) -> Result<u32, Error> {
    if mode & !0o7777 != 0 {
        return Err(Error::InvalidMode { name: lossy(name), mode });
    }
    Ok(mode)
}

fn check_name(name: &[u8]) -> Result<(), Error> {
    let invalid = |reason| Err(Error::InvalidName { name: lossy(name), reason });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.contains(&0) {
        return invalid("it contains a NUL byte");
    }
    if name.len() > MAX_NAME {
        return invalid("it is longer than 4095 bytes, which the kernel skips");
    }
    if name == TRAILER {
        return invalid("it is the end-of-archive marker");
    }
    Ok(())
}

impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Write { source, .. } | Error::Read { source, .. } | Error::Data { source, .. } => {
                source.kind()
            }
            Error::Malformed { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, error)
    }
}
