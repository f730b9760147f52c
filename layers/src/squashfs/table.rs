//! The metadata after the data: the inode and directory tables (written together, children
//! before their directory, so every reference is known when it is written), the fragment
//! table and the id table, laid out as mksquashfs lays them out.

use super::data::Placed;
use super::format::{
    self, DIR_HEADER_ENTRIES, DirIndex, DirInode, FileInode, InodeHeader, InodeType, NO_FRAGMENT,
};
use super::metadata::{MetaRef, MetaWriter};
use super::tree::{Attributes, Block, Directory, FileData, NodeKind, Root};
use super::{Error, Summary};

/// The metadata part of an image and the superblock fields that point into it.
pub(super) struct Tables {
    /// Bytes from the inode table's start to the end of the id table's index.
    pub(super) bytes: Vec<u8>,
    pub(super) inodes: u32,
    pub(super) ids: u16,
    pub(super) root_inode: u64,
    pub(super) inode_table_start: u64,
    pub(super) directory_table_start: u64,
    pub(super) fragment_table_start: u64,
    pub(super) id_table_start: u64,
    pub(super) summary: Summary,
}

/// Everything about the data that the inodes refer to.
pub(super) struct Data<'d> {
    /// Where each submitted block was written.
    pub(super) placed: &'d [Placed],
    /// Data block number of each fragment block.
    pub(super) fragments: &'d [u64],
    /// Position after the last data block: where the inode table starts.
    pub(super) end: u64,
    pub(super) block_size: u32,
}

/// Writes the tables for `root`, whose data is described by `data`.
pub(super) fn write(root: &Root, data: &Data<'_>, level: i32, uid: u32, gid: u32) -> Result<Tables, Error> {
    let (ids, uid_index, gid_index) = if uid == gid { (vec![uid], 0, 0) } else { (vec![uid, gid], 0, 1) };
    let mut writer = InodeWriter {
        inodes: MetaWriter::new(level).map_err(compress)?,
        directories: MetaWriter::new(level).map_err(compress)?,
        data,
        uid: uid_index,
        gid: gid_index,
        summary: Summary::default(),
    };
    let total = root.directory.inodes;
    let root_ref = writer.directory(root.attributes, &root.directory, total, total + 1)?;
    writer.summary.directories += 1;

    let (inode_bytes, _) = writer.inodes.finish().map_err(compress)?;
    let (directory_bytes, _) = writer.directories.finish().map_err(compress)?;
    let mut bytes = inode_bytes;
    let inode_table_start = data.end;
    let directory_table_start = inode_table_start + bytes.len() as u64;
    bytes.extend_from_slice(&directory_bytes);

    let mut fragment_entries = Vec::with_capacity(data.fragments.len() * 16);
    for &block in data.fragments {
        let placed = placed(data, block)?;
        format::fragment_entry(placed.start, placed.size, &mut fragment_entries);
    }
    let fragment_table_start = append_table(&mut bytes, data.end, &fragment_entries, level)?;

    let id_entries: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
    let id_table_start = append_table(&mut bytes, data.end, &id_entries, level)?;

    Ok(Tables {
        bytes,
        inodes: total,
        ids: ids.len() as u16,
        root_inode: root_ref.inode_reference(),
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        id_table_start,
        summary: writer.summary,
    })
}

fn compress(source: std::io::Error) -> Error {
    Error::Compress { source }
}

fn placed(data: &Data<'_>, block: u64) -> Result<Placed, Error> {
    usize::try_from(block)
        .ok()
        .and_then(|i| data.placed.get(i))
        .copied()
        .ok_or(Error::TooLarge { what: "data block list" })
}

/// Appends a lookup table (its entries in metadata blocks, then the index of those blocks'
/// positions) to `bytes`, which starts at image position `base`; returns the index's position.
fn append_table(bytes: &mut Vec<u8>, base: u64, entries: &[u8], level: i32) -> Result<u64, Error> {
    let start = base + bytes.len() as u64;
    let mut table = MetaWriter::new(level).map_err(compress)?;
    table.write(entries).map_err(compress)?;
    let (stored, block_starts) = table.finish().map_err(compress)?;
    bytes.extend_from_slice(&stored);
    let index = base + bytes.len() as u64;
    for relative in block_starts {
        bytes.extend_from_slice(&(start + relative).to_le_bytes());
    }
    Ok(index)
}

/// A directory entry waiting for its directory's listing.
struct Listed<'n> {
    name: &'n [u8],
    inode: MetaRef,
    number: u32,
    kind: InodeType,
}

struct InodeWriter<'d> {
    inodes: MetaWriter,
    directories: MetaWriter,
    data: &'d Data<'d>,
    uid: u16,
    gid: u16,
    summary: Summary,
}

impl InodeWriter<'_> {
    fn header(&self, attributes: Attributes, number: u32) -> InodeHeader {
        InodeHeader { mode: attributes.mode, uid: self.uid, gid: self.gid, mtime: attributes.mtime, number }
    }

    /// Writes the subtree of `dir` (numbered up to `number`, its own) and then its inode.
    fn directory(
        &mut self,
        attributes: Attributes,
        dir: &Directory,
        number: u32,
        parent: u32,
    ) -> Result<MetaRef, Error> {
        let mut listed = Vec::with_capacity(dir.children.len());
        let mut next = number + 1 - dir.inodes;
        let mut subdirectories = 0u32;
        for child in &dir.children {
            let (inode, child_number, kind) = match &child.kind {
                NodeKind::Directory(sub) => {
                    let child_number = next + sub.inodes - 1;
                    let inode = self.directory(child.attributes, sub, child_number, number)?;
                    next += sub.inodes;
                    subdirectories += 1;
                    self.summary.directories += 1;
                    (inode, child_number, InodeType::Directory)
                }
                NodeKind::File(file) => {
                    let inode = self.file(child.attributes, file, next)?;
                    next += 1;
                    self.summary.files += 1;
                    (inode, next - 1, InodeType::File)
                }
                NodeKind::Symlink(target) => {
                    let inode = self.inodes.position();
                    let mut bytes = Vec::new();
                    format::symlink_inode(&self.header(child.attributes, next), target, &mut bytes);
                    self.inodes.write(&bytes).map_err(compress)?;
                    next += 1;
                    self.summary.symlinks += 1;
                    (inode, next - 1, InodeType::Symlink)
                }
            };
            listed.push(Listed { name: &child.name, inode, number: child_number, kind });
        }
        let (start, size, index) = self.listing(&listed)?;
        let inode = DirInode {
            block: table_offset(start.block, "directory table")?,
            offset: start.offset,
            size,
            nlink: 2 + subdirectories,
            parent,
            index,
        };
        let reference = self.inodes.position();
        let mut bytes = Vec::new();
        inode.encode(&self.header(attributes, number), &mut bytes);
        self.inodes.write(&bytes).map_err(compress)?;
        Ok(reference)
    }

    fn file(&mut self, attributes: Attributes, file: &FileData, number: u32) -> Result<MetaRef, Error> {
        let start = match usize::try_from(file.start).ok().and_then(|i| self.data.placed.get(i)) {
            Some(placed) => placed.start,
            None => self.data.end,
        };
        let mut blocks = Vec::with_capacity(file.blocks.len());
        let mut sparse = 0u64;
        for block in &file.blocks {
            blocks.push(match block {
                Block::Data(number) => placed(self.data, *number)?.size,
                Block::Sparse => {
                    sparse += u64::from(self.data.block_size);
                    0
                }
            });
        }
        let (fragment, fragment_offset) = file.fragment.unwrap_or((NO_FRAGMENT, 0));
        let inode = FileInode { start, size: file.size, sparse, fragment, fragment_offset, blocks };
        let reference = self.inodes.position();
        let mut bytes = Vec::new();
        inode.encode(&self.header(attributes, number), &mut bytes);
        self.inodes.write(&bytes).map_err(compress)?;
        Ok(reference)
    }

    /// Writes a directory's listing: headers of up to 256 entries whose inodes share an inode
    /// table block and whose numbers are within ±32767 of the header's. A header starting in a
    /// later metadata block than the last indexed one gets an index entry. Returns where the
    /// listing starts, its size plus 3, and its index.
    fn listing(&mut self, listed: &[Listed<'_>]) -> Result<(MetaRef, u32, Vec<DirIndex>), Error> {
        let start = self.directories.position();
        let mut indexed_block = start.block;
        let mut index = Vec::new();
        let mut length = 0usize;
        let mut rest = listed;
        while let Some(first) = rest.first() {
            let count = rest
                .iter()
                .take(DIR_HEADER_ENTRIES)
                .take_while(|entry| {
                    entry.inode.block == first.inode.block
                        && i16::try_from(i64::from(entry.number) - i64::from(first.number)).is_ok()
                })
                .count();
            let here = self.directories.position();
            if here.block != indexed_block {
                index.push(DirIndex {
                    offset: u32::try_from(length).map_err(|_| Error::TooLarge { what: "directory" })?,
                    block: table_offset(here.block, "directory table")?,
                    name: first.name.to_vec(),
                });
                indexed_block = here.block;
            }
            let mut bytes = Vec::new();
            format::dir_header(
                count,
                table_offset(first.inode.block, "inode table")?,
                first.number,
                &mut bytes,
            );
            for entry in &rest[..count] {
                let delta = (i64::from(entry.number) - i64::from(first.number)) as i16;
                format::dir_entry(entry.inode.offset, delta, entry.kind, entry.name, &mut bytes);
            }
            self.directories.write(&bytes).map_err(compress)?;
            length += bytes.len();
            rest = &rest[count..];
        }
        let size = u32::try_from(length + 3).map_err(|_| Error::TooLarge { what: "directory" })?;
        Ok((start, size, index))
    }
}

/// A table-relative block position as the 32-bit field that stores it.
fn table_offset(block: u64, what: &'static str) -> Result<u32, Error> {
    u32::try_from(block).map_err(|_| Error::TooLarge { what })
}
