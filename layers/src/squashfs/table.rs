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
        if u16::try_from(index.len()).is_err() {
            return Err(Error::TooLarge { what: "directory" });
        }
        Ok((start, size, index))
    }
}

/// A table-relative block position as the 32-bit field that stores it.
fn table_offset(block: u64, what: &'static str) -> Result<u32, Error> {
    u32::try_from(block).map_err(|_| Error::TooLarge { what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squashfs::format::{METADATA_SIZE, METADATA_UNCOMPRESSED};

    /// The uncompressed bytes of a stored table and the stored position of each block.
    fn unpack(stored: &[u8], starts: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for &start in starts {
            let at = start as usize;
            let word = u16::from_le_bytes([stored[at], stored[at + 1]]);
            let body = &stored[at + 2..][..usize::from(word & !METADATA_UNCOMPRESSED)];
            if word & METADATA_UNCOMPRESSED != 0 {
                out.extend_from_slice(body);
            } else {
                out.extend(zstd::bulk::decompress(body, METADATA_SIZE).unwrap());
            }
        }
        out
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
    }

    #[test]
    fn listings_split_headers_and_index_every_block() {
        let data = Data { placed: &[], fragments: &[], end: 0, block_size: 4096 };
        let mut writer = InodeWriter {
            inodes: MetaWriter::new(3).unwrap(),
            directories: MetaWriter::new(3).unwrap(),
            data: &data,
            uid: 0,
            gid: 0,
            summary: Summary::default(),
        };
        // Something before the listing, so it starts inside a block.
        writer.directories.write(&[7; 5000]).unwrap();
        let names: Vec<Vec<u8>> =
            (0..2000).map(|i| format!("name-{i:05}-{}", "z".repeat(i % 30)).into_bytes()).collect();
        let listed: Vec<Listed<'_>> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Listed {
                name,
                // Inode blocks change every 300 entries; entry 1950 jumps 40000 inode numbers.
                inode: MetaRef { block: (i / 300) as u64 * 1000, offset: (i % 300) as u16 * 20 },
                number: 1 + i as u32 + if i >= 1950 { 40_000 } else { 0 },
                kind: if i % 7 == 0 { InodeType::Directory } else { InodeType::File },
            })
            .collect();
        let (start, size, index) = writer.listing(&listed).unwrap();
        assert_eq!(start.offset, 5000);
        let (stored, starts) = writer.directories.finish().unwrap();
        let stream = unpack(&stored, &starts);
        let listing = &stream[5000..];
        assert_eq!(listing.len() + 3, size as usize);

        // Walk the headers: every entry, in order, with the right inode and number.
        let (mut at, mut seen, mut header_starts) = (0, 0, Vec::new());
        while at < listing.len() {
            header_starts.push(at);
            let (count, block, base) =
                (u32_at(listing, at) + 1, u32_at(listing, at + 4), u32_at(listing, at + 8));
            assert!(count as usize <= DIR_HEADER_ENTRIES);
            at += 12;
            for _ in 0..count {
                let entry = &listed[seen];
                assert_eq!(u64::from(block), entry.inode.block);
                assert_eq!(u16_at(listing, at), entry.inode.offset);
                let delta = u16_at(listing, at + 2) as i16;
                assert_eq!(i64::from(base) + i64::from(delta), i64::from(entry.number));
                assert_eq!(u16_at(listing, at + 4), entry.kind as u16);
                let len = usize::from(u16_at(listing, at + 6)) + 1;
                assert_eq!(&listing[at + 8..at + 8 + len], entry.name);
                at += 8 + len;
                seen += 1;
            }
        }
        assert_eq!(seen, listed.len());
        // Six inode blocks of 300 entries split at 256 (12 headers), the last 200 at the jump (2).
        assert_eq!(header_starts.len(), 14);

        // The index: one entry per metadata block a header starts in, each naming its header.
        assert!(!index.is_empty());
        let mut blocks_with_headers: Vec<usize> =
            header_starts.iter().map(|h| (5000 + h) / METADATA_SIZE).collect();
        blocks_with_headers.dedup();
        assert_eq!(index.len(), blocks_with_headers.len() - 1, "the first block is the listing's start");
        for entry in &index {
            let header = entry.offset as usize;
            assert!(header_starts.contains(&header));
            let block = (5000 + header) / METADATA_SIZE;
            assert_eq!(u64::from(entry.block), starts[block]);
            let len = usize::from(u16_at(listing, header + 12 + 6)) + 1;
            assert_eq!(entry.name, &listing[header + 12 + 8..][..len]);
        }
    }
}
