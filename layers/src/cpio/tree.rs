//! [`write_tree`]: a directory tree as a newc archive.

use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use kiln_reproducible::{EntryKind, Policy};

use super::{Error, Writer};
use crate::walk::{self, Kind, Walk};

/// The tree under `root` (entries named relative to it, no "./", parents first, sorted by raw
/// bytes, via [`crate::walk::Walk`]), owners/modes/mtimes from the policy, then the trailer.
/// Returns `out`, flushed. Sockets, FIFOs and device nodes are errors naming their path;
/// a file whose size changes while it is read is [`Error::SizeMismatch`].
pub fn write_tree<W: Write>(root: &Path, out: W, policy: &Policy) -> Result<W, Error> {
    let mut writer = Writer::new(out);
    writer.set_owner(policy.owner);
    for entry in Walk::new(root)? {
        let entry = entry?;
        let meta = &entry.metadata;
        let mtime = policy.mtime(meta.mtime());
        let name = &entry.relative;
        match &entry.kind {
            Kind::Directory => {
                let mode = policy.mode(EntryKind::Directory, meta.mode());
                writer.write_entry(name, super::header::S_IFDIR | mode, mtime, &[])?;
            }
            Kind::Symlink(target) => {
                let mode = policy.mode(EntryKind::Symlink, meta.mode());
                writer.write_entry(name, super::header::S_IFLNK | mode, mtime, target.as_bytes())?;
            }
            Kind::File => {
                let mode = policy.mode(EntryKind::File, meta.mode());
                let mut file = File::options()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&entry.path)
                    .map_err(|e| walk::vanished_or(e, "read", &entry.path))?;
                let read_error = |source| Error::Read { path: entry.path.clone(), source };
                writer.write_file(name, mode, mtime, meta.len(), &mut file, &read_error)?;
            }
        }
    }
    writer.write_trailer()?;
    Ok(writer.into_inner())
}
