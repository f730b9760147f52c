//! Metadata streams: a table's bytes cut into 8 KiB blocks, each stored compressed (or not,
//! when that is no smaller) behind a 16-bit length word.
//!
//! Blocks are compressed as soon as they are full, so the position of the block being filled
//! is always known: that is what references into the inode and directory tables are made of.

use std::io;

use super::compress::BlockCompressor;
use super::format::{METADATA_SIZE, METADATA_UNCOMPRESSED};

/// Where a byte of a metadata stream is: its block's position in the stored table (relative to
/// the table's start) and the offset in the block's uncompressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MetaRef {
    /// Position of the stored block, relative to the table's start.
    pub(super) block: u64,
    /// Offset in the block's uncompressed bytes, below 8192.
    pub(super) offset: u16,
}

impl MetaRef {
    /// The 64-bit inode reference of squashfs: block position << 16 | offset.
    pub(super) fn inode_reference(self) -> u64 {
        self.block << 16 | u64::from(self.offset)
    }
}

/// One metadata table being written.
pub(super) struct MetaWriter {
    compressor: BlockCompressor,
    pending: Vec<u8>,
    stored: Vec<u8>,
    block_starts: Vec<u64>,
}

impl MetaWriter {
    /// An empty table compressed at `level`.
    pub(super) fn new(level: i32) -> io::Result<Self> {
        Ok(MetaWriter {
            compressor: BlockCompressor::new(level)?,
            pending: Vec::with_capacity(METADATA_SIZE),
            stored: Vec::new(),
            block_starts: Vec::new(),
        })
    }

    /// Where the next byte written will be.
    pub(super) fn position(&self) -> MetaRef {
        MetaRef { block: self.stored.len() as u64, offset: self.pending.len() as u16 }
    }

    /// Appends `bytes` to the stream.
    pub(super) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let take = bytes.len().min(METADATA_SIZE - self.pending.len());
            self.pending.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.pending.len() == METADATA_SIZE {
                self.store_block()?;
            }
        }
        Ok(())
    }

    fn store_block(&mut self) -> io::Result<()> {
        let block = std::mem::replace(&mut self.pending, Vec::with_capacity(METADATA_SIZE));
        let packed = self.compressor.pack(block)?;
        let mut word = packed.bytes.len() as u16;
        if !packed.compressed {
            word |= METADATA_UNCOMPRESSED;
        }
        self.block_starts.push(self.stored.len() as u64);
        self.stored.extend_from_slice(&word.to_le_bytes());
        self.stored.extend_from_slice(&packed.bytes);
        Ok(())
    }

    /// Stores the last, partial block: the table's bytes and the relative start of each block.
    pub(super) fn finish(mut self) -> io::Result<(Vec<u8>, Vec<u64>)> {
        if !self.pending.is_empty() {
            self.store_block()?;
        }
        Ok((self.stored, self.block_starts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(stored: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = stored;
        while !rest.is_empty() {
            let word = u16::from_le_bytes([rest[0], rest[1]]);
            let len = usize::from(word & !METADATA_UNCOMPRESSED);
            let body = &rest[2..2 + len];
            out.push(if word & METADATA_UNCOMPRESSED != 0 {
                body.to_vec()
            } else {
                zstd::bulk::decompress(body, METADATA_SIZE).unwrap()
            });
            rest = &rest[2 + len..];
        }
        out
    }

    #[test]
    fn blocks_are_8k_and_positions_follow_stored_sizes() {
        let mut writer = MetaWriter::new(3).unwrap();
        let text: Vec<u8> = (0..20_000u32).map(|i| b"squashfs"[i as usize % 8]).collect();
        writer.write(&text[..100]).unwrap();
        assert_eq!(writer.position(), MetaRef { block: 0, offset: 100 });
        writer.write(&text[100..]).unwrap();
        let second = writer.position();
        assert_eq!(second.offset as usize, 20_000 - 2 * METADATA_SIZE);
        let (stored, starts) = writer.finish().unwrap();
        assert_eq!(starts.len(), 3);
        assert_eq!(starts[2], second.block);
        let blocks = blocks(&stored);
        assert_eq!(blocks.iter().map(Vec::len).collect::<Vec<_>>(), [8192, 8192, 20_000 - 16384]);
        assert_eq!(blocks.concat(), text);
    }

    #[test]
    fn incompressible_blocks_are_stored_as_they_are() {
        let mut writer = MetaWriter::new(3).unwrap();
        let mut state = 1u32;
        let noise: Vec<u8> = (0..METADATA_SIZE)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect();
        writer.write(&noise).unwrap();
        let (stored, _) = writer.finish().unwrap();
        assert_eq!(stored.len(), 2 + METADATA_SIZE);
        assert_eq!(u16::from_le_bytes([stored[0], stored[1]]), 8192 | METADATA_UNCOMPRESSED);
        assert_eq!(&stored[2..], &noise[..]);
    }
}
