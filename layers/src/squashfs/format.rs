//! The on-disk structures of squashfs 4.0 (little endian), as Linux `fs/squashfs` and
//! squashfs-tools read them: the superblock, inode headers and bodies, directory headers and
//! entries, and the constants that go with them.

/// `hsqs`.
const MAGIC: u32 = 0x7371_7368;
/// Size of the superblock at offset 0.
pub(super) const SUPERBLOCK_SIZE: usize = 96;
/// Uncompressed size of every metadata block but the last of a table.
pub(super) const METADATA_SIZE: usize = 8192;
/// Compressor id of zstd.
const ZSTD: u16 = 6;
/// The zstd level a reader assumes when no compressor options are stored.
pub(super) const DEFAULT_ZSTD_LEVEL: i32 = 15;

/// Bit of a metadata block's length word: the block is stored uncompressed.
pub(super) const METADATA_UNCOMPRESSED: u16 = 1 << 15;
/// Bit of a data or fragment block's size word: the block is stored uncompressed.
pub(super) const DATA_UNCOMPRESSED: u32 = 1 << 24;
/// Fragment index of a file without a tail end in a fragment block.
pub(super) const NO_FRAGMENT: u32 = u32::MAX;
/// Xattr index of an inode without extended attributes.
const NO_XATTR: u32 = u32::MAX;
/// Start of a table that is not present.
const NO_TABLE: u64 = u64::MAX;

/// Superblock flag: no extended attributes are stored.
const FLAG_NO_XATTRS: u16 = 1 << 9;
/// Superblock flag: tail ends of files larger than a block go into fragments too.
const FLAG_ALWAYS_FRAGMENTS: u16 = 1 << 5;
/// Superblock flag: a compressor options block follows the superblock.
const FLAG_COMPRESSOR_OPTIONS: u16 = 1 << 10;

/// Most entries one directory header may introduce.
pub(super) const DIR_HEADER_ENTRIES: usize = 256;
/// Longest file name squashfs stores.
pub(super) const NAME_MAX: usize = 256;

/// Basic inode type numbers, also used in directory entries for extended inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InodeType {
    /// A directory.
    Directory = 1,
    /// A regular file.
    File = 2,
    /// A symbolic link.
    Symlink = 3,
}

/// Extended directory inode type.
const EXTENDED_DIRECTORY: u16 = 8;
/// Extended regular file inode type.
const EXTENDED_FILE: u16 = 9;

/// The superblock's variable fields.
#[derive(Debug, Clone)]
pub(super) struct Superblock {
    pub(super) inodes: u32,
    pub(super) mkfs_time: u32,
    pub(super) block_size: u32,
    pub(super) fragments: u32,
    pub(super) ids: u16,
    pub(super) compressor_options: bool,
    pub(super) root_inode: u64,
    pub(super) bytes_used: u64,
    pub(super) id_table_start: u64,
    pub(super) inode_table_start: u64,
    pub(super) directory_table_start: u64,
    pub(super) fragment_table_start: u64,
}

impl Superblock {
    /// The 96 bytes at offset 0.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut flags = FLAG_NO_XATTRS | FLAG_ALWAYS_FRAGMENTS;
        if self.compressor_options {
            flags |= FLAG_COMPRESSOR_OPTIONS;
        }
        let mut out = Vec::with_capacity(SUPERBLOCK_SIZE);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&self.inodes.to_le_bytes());
        out.extend_from_slice(&self.mkfs_time.to_le_bytes());
        out.extend_from_slice(&self.block_size.to_le_bytes());
        out.extend_from_slice(&self.fragments.to_le_bytes());
        out.extend_from_slice(&ZSTD.to_le_bytes());
        let block_log = self.block_size.trailing_zeros() as u16;
        out.extend_from_slice(&block_log.to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.ids.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        for value in [
            self.root_inode,
            self.bytes_used,
            self.id_table_start,
            NO_TABLE, // xattr id table
            self.inode_table_start,
            self.directory_table_start,
            self.fragment_table_start,
            NO_TABLE, // export (inode lookup) table
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }
}

/// The zstd compressor options block: an uncompressed metadata block holding the level.
pub(super) fn zstd_options(level: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    out.extend_from_slice(&(4 | METADATA_UNCOMPRESSED).to_le_bytes());
    out.extend_from_slice(&level.to_le_bytes());
    out
}

/// Fields every inode starts with.
#[derive(Debug, Clone, Copy)]
pub(super) struct InodeHeader {
    /// Permission bits (no file type).
    pub(super) mode: u16,
    /// Index of the owner in the id table.
    pub(super) uid: u16,
    /// Index of the group in the id table.
    pub(super) gid: u16,
    pub(super) mtime: u32,
    /// 1-based inode number.
    pub(super) number: u32,
}

impl InodeHeader {
    fn encode(&self, kind: u16, out: &mut Vec<u8>) {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out.extend_from_slice(&self.number.to_le_bytes());
    }
}

/// A regular file's inode body.
#[derive(Debug, Clone)]
pub(super) struct FileInode {
    /// Position of the first data block in the image.
    pub(super) start: u64,
    pub(super) size: u64,
    /// Bytes of the file held by sparse (size 0) blocks.
    pub(super) sparse: u64,
    pub(super) fragment: u32,
    pub(super) fragment_offset: u32,
    /// Size words of the data blocks.
    pub(super) blocks: Vec<u32>,
}

impl FileInode {
    /// Encodes the inode, basic where every field fits and nothing is sparse, else extended.
    pub(super) fn encode(&self, header: &InodeHeader, out: &mut Vec<u8>) {
        let basic = (u32::try_from(self.start), u32::try_from(self.size));
        if let (Ok(start), Ok(size), 0) = (basic.0, basic.1, self.sparse) {
            header.encode(InodeType::File as u16, out);
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&self.fragment.to_le_bytes());
            out.extend_from_slice(&self.fragment_offset.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        } else {
            header.encode(EXTENDED_FILE, out);
            out.extend_from_slice(&self.start.to_le_bytes());
            out.extend_from_slice(&self.size.to_le_bytes());
            out.extend_from_slice(&self.sparse.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes()); // nlink
            out.extend_from_slice(&self.fragment.to_le_bytes());
            out.extend_from_slice(&self.fragment_offset.to_le_bytes());
            out.extend_from_slice(&NO_XATTR.to_le_bytes());
        }
        for block in &self.blocks {
            out.extend_from_slice(&block.to_le_bytes());
        }
    }
}

/// Encodes a basic symlink inode.
pub(super) fn symlink_inode(header: &InodeHeader, target: &[u8], out: &mut Vec<u8>) {
    header.encode(InodeType::Symlink as u16, out);
    out.extend_from_slice(&1u32.to_le_bytes()); // nlink
    out.extend_from_slice(&(target.len() as u32).to_le_bytes());
    out.extend_from_slice(target);
}

/// One entry of an extended directory's index: where a directory header starts.
#[derive(Debug, Clone)]
pub(super) struct DirIndex {
    /// Offset of the header from the start of the directory's listing.
    pub(super) offset: u32,
    /// Directory table metadata block holding the header, relative to the table's start.
    pub(super) block: u32,
    /// Name of the header's first entry.
    pub(super) name: Vec<u8>,
}

/// A directory's inode body.
#[derive(Debug, Clone)]
pub(super) struct DirInode {
    /// Directory table metadata block where the listing starts, relative to the table's start.
    pub(super) block: u32,
    /// Offset of the listing in that block's uncompressed bytes.
    pub(super) offset: u16,
    /// Bytes of the listing plus 3 (for `.` and `..`).
    pub(super) size: u32,
    pub(super) nlink: u32,
    pub(super) parent: u32,
    pub(super) index: Vec<DirIndex>,
}

impl DirInode {
    /// Encodes the inode, extended when it has an index or its listing needs 32-bit sizes.
    pub(super) fn encode(&self, header: &InodeHeader, out: &mut Vec<u8>) {
        match u16::try_from(self.size) {
            Ok(size) if self.index.is_empty() => {
                header.encode(InodeType::Directory as u16, out);
                out.extend_from_slice(&self.block.to_le_bytes());
                out.extend_from_slice(&self.nlink.to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&self.offset.to_le_bytes());
                out.extend_from_slice(&self.parent.to_le_bytes());
            }
            _ => {
                header.encode(EXTENDED_DIRECTORY, out);
                out.extend_from_slice(&self.nlink.to_le_bytes());
                out.extend_from_slice(&self.size.to_le_bytes());
                out.extend_from_slice(&self.block.to_le_bytes());
                out.extend_from_slice(&self.parent.to_le_bytes());
                out.extend_from_slice(&(self.index.len() as u16).to_le_bytes());
                out.extend_from_slice(&self.offset.to_le_bytes());
                out.extend_from_slice(&NO_XATTR.to_le_bytes());
                for entry in &self.index {
                    out.extend_from_slice(&entry.offset.to_le_bytes());
                    out.extend_from_slice(&entry.block.to_le_bytes());
                    out.extend_from_slice(&(entry.name.len() as u32 - 1).to_le_bytes());
                    out.extend_from_slice(&entry.name);
                }
            }
        }
    }
}

/// Encodes a directory header introducing `count` entries whose inodes are in inode table
/// block `block`, numbered relative to `number`.
pub(super) fn dir_header(count: usize, block: u32, number: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&(count as u32 - 1).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&number.to_le_bytes());
}

/// Encodes one directory entry.
pub(super) fn dir_entry(offset: u16, delta: i16, kind: InodeType, name: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&delta.to_le_bytes());
    out.extend_from_slice(&(kind as u16).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16 - 1).to_le_bytes());
    out.extend_from_slice(name);
}

/// Encodes one fragment table entry.
pub(super) fn fragment_entry(start: u64, size: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}
