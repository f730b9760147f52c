//! Block-parallel gzip whose bytes do not depend on the thread count or on how input is written.
//!
//! The input is cut into fixed [`BLOCK_SIZE`] blocks. Each block is deflated on its own with the
//! last [`DICTIONARY_SIZE`] bytes of the previous block as preset dictionary, and ends with a
//! sync flush (the last one with the final block), so the concatenation is one valid deflate
//! stream in one gzip member — the scheme of pigz. Each block's output depends only on its
//! input, its dictionary and the level, never on which thread compressed it or on the sizes of
//! the writes that delivered the input. The deflate implementation is zlib-rs (through flate2);
//! the block size, dictionary size and zlib-rs version are part of kiln's digest contract.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use flate2::{Compress, FlushCompress, Status};

/// Input bytes per independently compressed block.
pub const BLOCK_SIZE: usize = 128 * 1024;
/// Bytes of the previous block used as preset dictionary (deflate's whole window).
pub const DICTIONARY_SIZE: usize = 32 * 1024;

struct Job {
    sequence: u64,
    input: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
}

type Compressed = (u64, io::Result<Vec<u8>>);

/// A gzip writer that compresses blocks on worker threads and writes them in order to `W`.
pub struct GzipEncoder<W: Write + Send + 'static> {
    block: Vec<u8>,
    dictionary: Vec<u8>,
    sequence: u64,
    crc: crc32fast::Hasher,
    total: u64,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    collector: Option<JoinHandle<io::Result<W>>>,
}

impl<W: Write + Send + 'static> GzipEncoder<W> {
    /// Writes the gzip header to `inner` and starts `threads` workers at `level` (0–9).
    pub fn new(mut inner: W, level: u32, threads: NonZeroUsize) -> io::Result<Self> {
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        // ID1 ID2 CM FLG MTIME(4) XFL OS: no name, no time, OS "unknown" as Go and flate2 write.
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;

        let threads = threads.get();
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
        let (done_tx, done_rx) = mpsc::sync_channel::<Compressed>(threads * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads)
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let done_tx = done_tx.clone();
                thread::spawn(move || work(&job_rx, &done_tx, level))
            })
            .collect();
        drop(done_tx);
        let collector = thread::spawn(move || collect(inner, &done_rx));
        Ok(GzipEncoder {
            block: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            sequence: 0,
            crc: crc32fast::Hasher::new(),
            total: 0,
            jobs: Some(job_tx),
            workers,
            collector: Some(collector),
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(if last { 0 } else { BLOCK_SIZE }));
        let dictionary = std::mem::take(&mut self.dictionary);
        self.dictionary = input[input.len().saturating_sub(DICTIONARY_SIZE)..].to_vec();
        let job = Job { sequence: self.sequence, input, dictionary, last };
        self.sequence += 1;
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job).is_ok()).unwrap_or(false);
        if sent { Ok(()) } else { Err(self.shutdown_error()) }
    }

    /// The collector's error after it stopped early (e.g. the disk is full).
    fn shutdown_error(&mut self) -> io::Error {
        self.jobs = None;
        match self.join() {
            Ok(_) => io::Error::other("gzip collector stopped unexpectedly"),
            Err(error) => error,
        }
    }

    fn join(&mut self) -> io::Result<W> {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            worker.join().map_err(|_| io::Error::other("gzip worker panicked"))?;
        }
        match self.collector.take() {
            Some(collector) => collector.join().map_err(|_| io::Error::other("gzip collector panicked"))?,
            None => Err(io::Error::other("gzip encoder already finished")),
        }
    }

    /// Compresses the rest, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        let mut inner = self.join()?;
        let crc = std::mem::take(&mut self.crc).finalize();
        inner.write_all(&crc.to_le_bytes())?;
        inner.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(inner)
    }
}

impl<W: Write + Send + 'static> Write for GzipEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(BLOCK_SIZE - self.block.len());
        self.block.extend_from_slice(&buf[..take]);
        self.crc.update(&buf[..take]);
        self.total += take as u64;
        if self.block.len() == BLOCK_SIZE {
            self.submit(false)?;
        }
        Ok(take)
    }

    /// Does nothing: a mid-stream flush would change the compressed bytes. Data is written when
    /// a block fills and at [`GzipEncoder::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for GzipEncoder<W> {
    fn drop(&mut self) {
        if self.collector.is_some() {
            let _ = self.join();
        }
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, done: &SyncSender<Compressed>, level: u32) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A fresh deflate state for every block: a reset one keeps traces of the block it
        // compressed before (its output then depended on which worker took which block).
        let mut compress = Compress::new(flate2::Compression::new(level), false);
        let result = deflate_block(&mut compress, &job);
        if done.send((job.sequence, result)).is_err() {
            return;
        }
    }
}

fn deflate_block(compress: &mut Compress, job: &Job) -> io::Result<Vec<u8>> {
    if !job.dictionary.is_empty() {
        compress.set_dictionary(&job.dictionary).map_err(io::Error::other)?;
    }
    let flush = if job.last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(job.input.len() + job.input.len() / 8 + 64);
    let start = compress.total_in();
    loop {
        let consumed = (compress.total_in() - start) as usize;
        let status =
            compress.compress_vec(&job.input[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = (compress.total_in() - start) as usize == job.input.len();
        let done = match status {
            Status::StreamEnd => true,
            // A flush is complete once it leaves output space unused.
            Status::Ok | Status::BufError => !job.last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

fn collect<W: Write>(mut inner: W, done: &Receiver<Compressed>) -> io::Result<W> {
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for (sequence, result) in done {
        pending.insert(sequence, result);
        while let Some(result) = pending.remove(&next) {
            inner.write_all(&result?)?;
            next += 1;
        }
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text with a slowly varying pattern.
        (0..len).map(|i| b"kiln layers deterministic gzip "[i % 31] ^ ((i / 4093) as u8 & 7)).collect()
    }

    fn gzip(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let threads = NonZeroUsize::new(threads).unwrap();
        let mut encoder = GzipEncoder::new(Vec::new(), 6, threads).unwrap();
        for chunk in data.chunks(write_size.max(1)) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn round_trips_through_a_standard_decoder() {
        for len in [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 5 * BLOCK_SIZE + 77] {
            let data = sample(len);
            let compressed = gzip(&data, 2, 8192);
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut decoded).unwrap();
            assert_eq!(decoded, data, "length {len}");
        }
    }

    #[test]
    fn bytes_independent_of_threads_and_write_sizes() {
        let data = sample(7 * BLOCK_SIZE + 1234);
        let reference = gzip(&data, 1, BLOCK_SIZE);
        for (threads, write_size) in [(1, 1), (2, 512), (3, 8192), (8, 1 << 20), (2, 3 * BLOCK_SIZE + 5)] {
            assert_eq!(
                gzip(&data, threads, write_size),
                reference,
                "threads {threads}, writes of {write_size}"
            );
        }
    }

    #[test]
    fn bytes_independent_of_which_worker_takes_which_block() {
        // Incompressible and compressible blocks interleaved, so a worker's earlier block leaves
        // it in a different state than a fresh one; many runs let the scheduler vary.
        let mut data = Vec::new();
        for i in 0..24u32 {
            if i % 3 == 0 {
                data.extend((0..BLOCK_SIZE as u32).map(|j| (j.wrapping_mul(2_654_435_761) ^ i) as u8 >> 1));
            } else {
                data.extend(sample(BLOCK_SIZE - 7 * i as usize));
            }
        }
        let reference = gzip(&data, 1, BLOCK_SIZE);
        for run in 0..20 {
            assert_eq!(gzip(&data, 3 + run % 3, 65536), reference, "run {run}");
        }
    }

    #[test]
    fn header_has_no_time_or_name() {
        let out = gzip(b"x", 1, 1);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn compresses() {
        let data = sample(4 * BLOCK_SIZE);
        assert!(gzip(&data, 2, 65536).len() < data.len() / 4);
    }
}
