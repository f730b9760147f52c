//! zstd compression of one data, fragment or metadata block, kept only where it is smaller.

use std::cell::RefCell;
use std::io;

use zstd::bulk::Compressor;

/// A block as it is stored: compressed, or as it was when compression did not shrink it.
#[derive(Debug)]
pub(super) struct Packed {
    /// The stored bytes.
    pub(super) bytes: Vec<u8>,
    /// Whether `bytes` are zstd compressed.
    pub(super) compressed: bool,
}

/// A zstd context at a fixed level, reused across blocks.
pub(super) struct BlockCompressor {
    level: i32,
    context: Compressor<'static>,
}

impl BlockCompressor {
    /// A context for `level`.
    pub(super) fn new(level: i32) -> io::Result<Self> {
        Ok(BlockCompressor { level, context: Compressor::new(level)? })
    }

    /// Compresses `block` as one zstd frame; keeps `block` itself unless that is smaller.
    ///
    /// The frame records its content size, so zstd sizes its window to the block, which is
    /// what the kernel's decompressor (window up to the block size) requires.
    pub(super) fn pack(&mut self, block: Vec<u8>) -> io::Result<Packed> {
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(block.len()));
        self.context.compress_to_buffer(&block[..], &mut out)?;
        Ok(if out.len() < block.len() {
            Packed { bytes: out, compressed: true }
        } else {
            Packed { bytes: block, compressed: false }
        })
    }
}

thread_local! {
    static WORKER: RefCell<Option<BlockCompressor>> = const { RefCell::new(None) };
}

/// [`BlockCompressor::pack`] with a context kept per thread (for pool workers).
pub(super) fn pack_on_this_thread(level: i32, block: Vec<u8>) -> io::Result<Packed> {
    WORKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.take() {
            Some(compressor) if compressor.level == level => compressor,
            _ => BlockCompressor::new(level)?,
        };
        let compressor = slot.insert(compressor);
        compressor.pack(block)
    })
}
