//! The tree being packed, read once in [`crate::walk`] order: entries with their policy modes
//! and times, and each regular file's data submitted as blocks and its tail end packed into a
//! fragment block as it is read.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use kiln_reproducible::{EntryKind, Policy};

use super::Error;
use super::data::{DataError, DataWriter};
use super::format::NAME_MAX;
use crate::walk::{self, Kind, Walk};

/// The attributes squashfs stores for every inode, as the policy chose them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attributes {
    /// Permission bits.
    pub(super) mode: u16,
    /// Modification time.
    pub(super) mtime: u32,
}

/// A file system object in its directory.
#[derive(Debug)]
pub(super) struct Node {
    /// Name in its directory.
    pub(super) name: Vec<u8>,
    pub(super) attributes: Attributes,
    pub(super) kind: NodeKind,
}

/// The root directory.
#[derive(Debug)]
pub(super) struct Root {
    pub(super) attributes: Attributes,
    pub(super) directory: Directory,
}

/// What a [`Node`] is.
#[derive(Debug)]
pub(super) enum NodeKind {
    Directory(Directory),
    File(FileData),
    Symlink(Vec<u8>),
}

/// A directory's children, sorted by name, and the size of its subtree.
#[derive(Debug, Default)]
pub(super) struct Directory {
    pub(super) children: Vec<Node>,
    /// Inodes in the subtree, the directory's own included.
    pub(super) inodes: u32,
}

/// One block of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Block {
    /// Submitted to the data writer under this number.
    Data(u64),
    /// All zeros; stored as a size-0 block.
    Sparse,
}

/// Where a regular file's bytes went.
#[derive(Debug)]
pub(super) struct FileData {
    pub(super) size: u64,
    /// Number of the first block submitted at or after the file's start: its data begins where
    /// that block is written.
    pub(super) start: u64,
    /// Its full blocks.
    pub(super) blocks: Vec<Block>,
    /// Its tail end (bytes after the last full block): fragment number and offset in it.
    pub(super) fragment: Option<(u32, u32)>,
}

/// Tail ends collected into fragment blocks.
pub(super) struct Fragments {
    block_size: usize,
    current: Vec<u8>,
    /// Data block number of each sealed fragment block, by fragment number.
    pub(super) blocks: Vec<u64>,
}

impl Fragments {
    pub(super) fn new(block_size: u32) -> Self {
        Fragments { block_size: block_size as usize, current: Vec::new(), blocks: Vec::new() }
    }

    /// Adds a tail end; returns its fragment number and offset.
    fn add<W: Write>(&mut self, tail: &[u8], data: &mut DataWriter<'_, W>) -> Result<(u32, u32), DataError> {
        if self.current.len() + tail.len() > self.block_size {
            self.seal(data)?;
        }
        let offset = self.current.len() as u32;
        self.current.extend_from_slice(tail);
        Ok((self.blocks.len() as u32, offset))
    }

    /// Submits the fragment block being filled, if it holds anything.
    pub(super) fn seal<W: Write>(&mut self, data: &mut DataWriter<'_, W>) -> Result<(), DataError> {
        if !self.current.is_empty() {
            let block = std::mem::replace(&mut self.current, Vec::with_capacity(self.block_size));
            self.blocks.push(data.submit(block)?);
        }
        Ok(())
    }
}

/// Everything [`read`] needs besides the tree.
pub(super) struct Reader<'r, 'a, W: Write> {
    pub(super) policy: &'r Policy,
    pub(super) block_size: u32,
    pub(super) data: &'r mut DataWriter<'a, W>,
    pub(super) fragments: &'r mut Fragments,
    /// The image's path, for write errors.
    pub(super) out: &'r Path,
}

struct Open {
    relative: Vec<u8>,
    name: Vec<u8>,
    attributes: Attributes,
    directory: Directory,
}

/// Walks `root`, submitting file data as it goes.
pub(super) fn read<W: Write>(root: &Path, reader: &mut Reader<'_, '_, W>) -> Result<Root, Error> {
    let walk = Walk::new(root)?;
    let metadata = std::fs::symlink_metadata(root).map_err(|e| Error::read("read", root, e))?;
    let attributes = Attributes {
        mode: reader.policy.mode(EntryKind::Directory, metadata.mode()) as u16,
        mtime: mtime(reader.policy, metadata.mtime()),
    };
    let mut open =
        vec![Open { relative: Vec::new(), name: Vec::new(), attributes, directory: Directory::default() }];
    for entry in walk {
        let entry = entry?;
        let (parent, name) = match entry.relative.iter().rposition(|&b| b == b'/') {
            Some(slash) => (&entry.relative[..slash], &entry.relative[slash + 1..]),
            None => (&[][..], &entry.relative[..]),
        };
        if name.len() > NAME_MAX {
            return Err(Error::NameTooLong { path: entry.path });
        }
        while open.len() > 1 && open.last().is_some_and(|dir| dir.relative != parent) {
            close(&mut open);
        }
        let entry_kind = match entry.kind {
            Kind::Directory => EntryKind::Directory,
            Kind::File => EntryKind::File,
            Kind::Symlink(_) => EntryKind::Symlink,
        };
        let attributes = Attributes {
            mode: reader.policy.mode(entry_kind, entry.metadata.mode()) as u16,
            mtime: mtime(reader.policy, entry.metadata.mtime()),
        };
        let kind = match entry.kind {
            Kind::Directory => {
                let (relative, name) = (entry.relative.clone(), name.to_vec());
                open.push(Open { relative, name, attributes, directory: Directory::default() });
                continue;
            }
            Kind::File => NodeKind::File(read_file(&entry.path, entry.metadata.len(), reader)?),
            Kind::Symlink(target) => NodeKind::Symlink(target.as_bytes().to_vec()),
        };
        push_child(&mut open, Node { name: name.to_vec(), attributes, kind });
    }
    while open.len() > 1 {
        close(&mut open);
    }
    let Some(Open { attributes, mut directory, .. }) = open.pop() else {
        return Err(Error::NotADirectory { path: root.to_owned() });
    };
    directory.inodes += 1;
    Ok(Root { attributes, directory })
}

/// The policy's mtime; [`super::write`] has checked that the epoch, its upper bound, fits.
fn mtime(policy: &Policy, host: i64) -> u32 {
    u32::try_from(policy.mtime(host)).unwrap_or(u32::MAX)
}

fn push_child(open: &mut [Open], node: Node) {
    if let Some(parent) = open.last_mut() {
        parent.directory.inodes += match &node.kind {
            NodeKind::Directory(sub) => sub.inodes,
            _ => 1,
        };
        parent.directory.children.push(node);
    }
}

/// Finishes the innermost open directory (not the root) and adds it to its parent.
fn close(open: &mut Vec<Open>) {
    if open.len() > 1
        && let Some(Open { name, attributes, mut directory, .. }) = open.pop()
    {
        directory.inodes += 1;
        push_child(open, Node { name, attributes, kind: NodeKind::Directory(directory) });
    }
}

/// Reads a regular file of `size` bytes (as listed): full blocks are submitted, all-zero ones
/// recorded as sparse, the tail end goes into a fragment.
fn read_file<W: Write>(path: &Path, size: u64, reader: &mut Reader<'_, '_, W>) -> Result<FileData, Error> {
    let block_size = reader.block_size as usize;
    let mut data = FileData { size, start: reader.data.next_block(), blocks: Vec::new(), fragment: None };
    if size == 0 {
        check_end(&mut open_file(path)?, path, size)?;
        return Ok(data);
    }
    let mut file = open_file(path)?;
    let mut remaining = size;
    while remaining > 0 {
        let want = remaining.min(block_size as u64) as usize;
        let mut block = vec![0u8; want];
        read_exact(&mut file, &mut block, path, size)?;
        remaining -= want as u64;
        let data_error = |e| data_error(e, reader.out);
        if want < block_size {
            data.fragment = Some(reader.fragments.add(&block, reader.data).map_err(data_error)?);
        } else if block.iter().all(|&b| b == 0) {
            data.blocks.push(Block::Sparse);
        } else {
            data.blocks.push(Block::Data(reader.data.submit(block).map_err(data_error)?));
        }
    }
    check_end(&mut file, path, size)?;
    Ok(data)
}

fn open_file(path: &Path) -> Result<File, Error> {
    File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| walk::vanished_or(e, "read", path).into())
}

fn read_exact(file: &mut File, buffer: &mut [u8], path: &Path, size: u64) -> Result<(), Error> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => return Err(Error::Changed { path: path.to_owned(), expected: size }),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::read("read", path, e)),
        }
    }
    Ok(())
}

/// A file that still has bytes after its listed size has grown.
fn check_end(file: &mut File, path: &Path, size: u64) -> Result<(), Error> {
    match file.read(&mut [0u8; 1]) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::Changed { path: path.to_owned(), expected: size }),
        Err(e) => Err(Error::read("read", path, e)),
    }
}

pub(super) fn data_error(error: DataError, out: &Path) -> Error {
    match error {
        DataError::Compress(source) => Error::Compress { source },
        DataError::Write(source) => Error::Write { path: out.to_owned(), source },
    }
}
