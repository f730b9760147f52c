//! Data and fragment blocks: compressed on a pool of worker threads, written in submission
//! order.
//!
//! Blocks are numbered as they are submitted. At most a fixed window of blocks is between
//! submission and writing, so memory stays bounded whatever the tree's size; the bytes written
//! depend only on the blocks and the level, never on the number of threads or their timing.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::mpsc;

use super::compress::{Packed, pack_on_this_thread};
use super::format::DATA_UNCOMPRESSED;

/// Where a written block is and how it is stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    /// Position in the image.
    pub(super) start: u64,
    /// Size word: stored length, with [`DATA_UNCOMPRESSED`] when stored as it was.
    pub(super) size: u32,
}

/// Why writing blocks failed.
#[derive(Debug)]
pub(super) enum DataError {
    /// zstd failed on a block.
    Compress(io::Error),
    /// Writing to the image failed.
    Write(io::Error),
}

type Done = (u64, io::Result<Packed>);

/// Blocks being compressed and written to `out`, which is at position `position`.
pub(super) struct DataWriter<'a, W: Write> {
    pool: rayon::ThreadPool,
    level: i32,
    window: u64,
    submitted: u64,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    finished: BTreeMap<u64, Packed>,
    out: &'a mut W,
    position: u64,
    placed: Vec<Placed>,
}

impl<'a, W: Write> DataWriter<'a, W> {
    /// A writer compressing at `level` on `pool` into `out`, whose next byte is at `position`.
    pub(super) fn new(
        pool: rayon::ThreadPool,
        threads: NonZeroUsize,
        level: i32,
        out: &'a mut W,
        position: u64,
    ) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        DataWriter {
            pool,
            level,
            window: 4 * threads.get() as u64 + 4,
            submitted: 0,
            done_tx,
            done_rx,
            finished: BTreeMap::new(),
            out,
            position,
            placed: Vec::new(),
        }
    }

    /// The number the next submitted block gets.
    pub(super) fn next_block(&self) -> u64 {
        self.submitted
    }

    /// Queues `block` for compression; returns its number. Waits while the window is full.
    pub(super) fn submit(&mut self, block: Vec<u8>) -> Result<u64, DataError> {
        while self.submitted - self.placed.len() as u64 >= self.window {
            self.receive_one()?;
        }
        let number = self.submitted;
        self.submitted += 1;
        let level = self.level;
        let done = self.done_tx.clone();
        self.pool.spawn(move || {
            // The receiver only goes away when writing has failed; the result is not needed.
            let _ = done.send((number, pack_on_this_thread(level, block)));
        });
        Ok(number)
    }

    /// Waits for one compressed block and writes every block that is now next in order.
    fn receive_one(&mut self) -> Result<(), DataError> {
        // The writer holds a sender itself, so the channel never disconnects while it waits.
        let Ok((number, packed)) = self.done_rx.recv() else {
            return Err(DataError::Compress(io::Error::other("compression workers stopped")));
        };
        self.finished.insert(number, packed.map_err(DataError::Compress)?);
        while let Some(packed) = self.finished.remove(&(self.placed.len() as u64)) {
            self.out.write_all(&packed.bytes).map_err(DataError::Write)?;
            let mut size = packed.bytes.len() as u32;
            if !packed.compressed {
                size |= DATA_UNCOMPRESSED;
            }
            self.placed.push(Placed { start: self.position, size });
            self.position += packed.bytes.len() as u64;
        }
        Ok(())
    }

    /// Waits for every block: where each was written, and the position after the last.
    pub(super) fn finish(mut self) -> Result<(Vec<Placed>, u64), DataError> {
        while (self.placed.len() as u64) < self.submitted {
            self.receive_one()?;
        }
        Ok((self.placed, self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(threads: usize, blocks: &[Vec<u8>]) -> (Vec<u8>, Vec<(u64, u32)>) {
        let threads = NonZeroUsize::new(threads).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.get()).build().unwrap();
        let mut out = Vec::new();
        let mut writer = DataWriter::new(pool, threads, 5, &mut out, 100);
        for (i, block) in blocks.iter().enumerate() {
            assert_eq!(writer.submit(block.clone()).unwrap(), i as u64);
        }
        let (placed, end) = writer.finish().unwrap();
        assert_eq!(end, 100 + out.len() as u64);
        (out, placed.iter().map(|p| (p.start, p.size)).collect())
    }

    #[test]
    fn order_and_bytes_do_not_depend_on_threads() {
        let mut state = 7u64;
        let blocks: Vec<Vec<u8>> = (0..60)
            .map(|i| {
                let len = 1000 + i * 937;
                (0..len)
                    .map(|j| {
                        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        if i % 3 == 0 { (state >> 56) as u8 } else { (j % 251) as u8 }
                    })
                    .collect()
            })
            .collect();
        let (one, placed) = run(1, &blocks);
        assert_eq!(run(3, &blocks), (one.clone(), placed.clone()));
        assert_eq!(placed[0].0, 100);
        for (i, block) in blocks.iter().enumerate() {
            let (start, size) = placed[i];
            let stored = &one[(start - 100) as usize..][..(size & !DATA_UNCOMPRESSED) as usize];
            if size & DATA_UNCOMPRESSED != 0 {
                assert_eq!(stored, &block[..]);
            } else {
                assert_eq!(zstd::bulk::decompress(stored, block.len()).unwrap(), *block);
            }
        }
        assert!(placed[0].1 & DATA_UNCOMPRESSED != 0, "random bytes are stored as they are");
        assert!(placed[1].1 & DATA_UNCOMPRESSED == 0, "a repeating pattern is compressed");
    }
}
