//! Deterministic squashfs 4.0 images (zstd), as Linux (`fs/squashfs`) and squashfs-tools read
//! them: the format of Talos system extensions.
//!
//! [`write()`] packs a tree into an image file. The bytes depend only on the tree's names,
//! contents and kinds, the [`Policy`] and the [`Options`]' level and block size — not on the
//! thread count, the order files were created in, the umask or the host's users.
//!
//! What the image holds:
//! - directories, regular files and symlinks, with owner, permission bits and mtime from the
//!   policy (the root directory too) and `mkfs_time` set to the policy's epoch. Sockets, FIFOs
//!   and device nodes are refused ([`Error::Unsupported`]); extended attributes are not stored.
//! - Hard links are not preserved: every path is written as a file of its own (link count 1).
//! - Files are cut into `block_size` blocks compressed one by one (stored as they are where zstd
//!   does not shrink them); all-zero blocks are stored as sparse (size 0) blocks; every file's
//!   tail end (the bytes after its last full block) is packed into a shared fragment block.
//!   Duplicate files are stored twice.
//! - Metadata as mksquashfs lays it out: superblock, the zstd options block (only when the
//!   level is not zstd's squashfs default of 15), data and fragment blocks in tree order, inode
//!   table, directory table (with an index in directories that span metadata blocks), fragment
//!   table, id table; no export or xattr table. The file is padded to a multiple of 4 KiB.
//! - Inodes are numbered children before their directory, so the root has the highest number.
//!
//! Data and fragment blocks are compressed on a pool of `threads` threads with a bounded
//! window of blocks in flight; metadata is compressed as it is written, in order.

mod compress;
mod data;
mod error;
mod format;
mod metadata;
mod table;
mod tree;

use std::fs::Permissions;
use std::io::{BufWriter, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use kiln_reproducible::Policy;

pub use error::Error;

use data::DataWriter;
use format::{DEFAULT_ZSTD_LEVEL, SUPERBLOCK_SIZE, Superblock};
use tree::{Fragments, Reader};

/// Images are padded to a multiple of this, as mksquashfs pads them (for loop devices).
const PADDING: u64 = 4096;

/// How to write an image.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Owner (uid/gid, normally 0:0), permission bits and mtimes of every inode, and the
    /// image's `mkfs_time` (the epoch).
    pub policy: Policy,
    /// zstd level, 1 to 22 (default 18, as Talos passes to mksquashfs).
    pub level: i32,
    /// Data block size: a power of two from 4 KiB to 1 MiB (default 128 KiB).
    pub block_size: u32,
    /// Compression threads; the output does not depend on it.
    pub threads: NonZeroUsize,
}

impl Options {
    /// zstd level 18, 128 KiB blocks, one thread.
    pub fn new(policy: Policy) -> Options {
        Options { policy, level: 18, block_size: 128 * 1024, threads: NonZeroUsize::MIN }
    }

    fn check(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::Options { reason });
        if !(1..=22).contains(&self.level) {
            return invalid(format!("zstd level {} is not between 1 and 22", self.level));
        }
        if !self.block_size.is_power_of_two() || !(4096..=1 << 20).contains(&self.block_size) {
            return invalid(format!(
                "block size {} is not a power of two from 4096 to 1048576",
                self.block_size
            ));
        }
        if u32::try_from(self.policy.epoch.as_secs()).is_err() {
            return invalid(format!(
                "epoch {} is after 2106-02-07, the last time squashfs can store",
                self.policy.epoch.as_secs()
            ));
        }
        Ok(())
    }
}

/// What an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Size of the image file, padding included.
    pub bytes: u64,
    /// Regular files.
    pub files: u64,
    /// Directories, the root included.
    pub directories: u64,
    /// Symbolic links.
    pub symlinks: u64,
}

/// Packs the tree under `root` into a squashfs image at `out`; `root` becomes the image's root
/// directory. The image is written to a temporary file next to `out` and renamed over it.
pub fn write(root: &Path, out: &Path, options: &Options) -> Result<Summary, Error> {
    options.check()?;
    let write_error = |source| Error::Write { path: out.to_owned(), source };
    let dir = out.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|source| Error::Write { path: dir.to_owned(), source })?;
    let mut file = BufWriter::with_capacity(1 << 20, temp);

    let mut head = vec![0u8; SUPERBLOCK_SIZE];
    let compressor_options = options.level != DEFAULT_ZSTD_LEVEL;
    if compressor_options {
        head.extend_from_slice(&format::zstd_options(options.level));
    }
    file.write_all(&head).map_err(write_error)?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.get())
        .thread_name(|i| format!("squashfs-{i}"))
        .build()
        .map_err(|source| Error::Threads { source })?;
    let mut data = DataWriter::new(pool, options.threads, options.level, &mut file, head.len() as u64);
    let mut fragments = Fragments::new(options.block_size);
    let mut reader = Reader {
        policy: &options.policy,
        block_size: options.block_size,
        data: &mut data,
        fragments: &mut fragments,
        out,
    };
    let tree = tree::read(root, &mut reader)?;
    fragments.seal(&mut data).map_err(|e| tree::data_error(e, out))?;
    let (placed, end) = data.finish().map_err(|e| tree::data_error(e, out))?;

    let owner = options.policy.owner;
    let table_data =
        table::Data { placed: &placed, fragments: &fragments.blocks, end, block_size: options.block_size };
    let tables = table::write(&tree, &table_data, options.level, owner.uid, owner.gid)?;
    file.write_all(&tables.bytes).map_err(write_error)?;
    let bytes_used = end + tables.bytes.len() as u64;
    let padded = bytes_used.div_ceil(PADDING) * PADDING;
    file.write_all(&vec![0u8; (padded - bytes_used) as usize]).map_err(write_error)?;

    let superblock = Superblock {
        inodes: tables.inodes,
        mkfs_time: options.policy.epoch.as_secs() as u32,
        block_size: options.block_size,
        fragments: fragments.blocks.len() as u32,
        ids: tables.ids,
        compressor_options,
        root_inode: tables.root_inode,
        bytes_used,
        id_table_start: tables.id_table_start,
        inode_table_start: tables.inode_table_start,
        directory_table_start: tables.directory_table_start,
        fragment_table_start: tables.fragment_table_start,
    };
    let temp = file.into_inner().map_err(|e| write_error(e.into_error()))?;
    temp.as_file().write_all_at(&superblock.encode(), 0).map_err(write_error)?;
    temp.as_file().set_permissions(Permissions::from_mode(0o644)).map_err(write_error)?;
    temp.persist(out).map_err(|e| write_error(e.error))?;
    Ok(Summary { bytes: padded, ..tables.summary })
}
