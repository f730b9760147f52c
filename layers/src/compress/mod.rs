//! Layer compression: gzip, zstd or none, with output that depends only on the input and the
//! chosen [`Compression`].
//!
//! - gzip: [`gzip`] block-parallel deflate (zlib-rs), identical for any thread count.
//! - zstd: libzstd in multi-worker mode with at least one worker; zstd's worker mode output is
//!   the same for every worker count ≥ 1 (but differs from its single-threaded mode, which is
//!   therefore never used).
//! - none: the tar stream as it is.

pub mod gzip;

use std::fmt;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::str::FromStr;

use crate::oci::media_type;

/// A compression algorithm and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed tar.
    None,
    /// gzip at a level from 1 to 9.
    Gzip {
        /// Deflate level.
        level: u32,
    },
    /// zstd at a level from 1 to 22.
    Zstd {
        /// zstd level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::None => media_type::LAYER_TAR,
            Compression::Gzip { .. } => media_type::LAYER_TAR_GZIP,
            Compression::Zstd { .. } => media_type::LAYER_TAR_ZSTD,
        }
    }
}

/// A `--compression` value that is not `none`, `gzip[:1-9]` or `zstd[:1-22]`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid compression {value:?}: expected none, gzip[:1-9] or zstd[:1-22]")]
pub struct CompressionError {
    /// The rejected text.
    pub value: String,
}

impl FromStr for Compression {
    type Err = CompressionError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = || CompressionError { value: value.to_owned() };
        let (name, level) = match value.split_once(':') {
            Some((name, level)) => (name, Some(level.parse::<i32>().map_err(|_| error())?)),
            None => (value, None),
        };
        match (name, level) {
            ("none", None) => Ok(Compression::None),
            ("gzip", None) => Ok(Compression::default()),
            ("gzip", Some(level @ 1..=9)) => Ok(Compression::Gzip { level: level.unsigned_abs() }),
            ("zstd", None) => Ok(Compression::Zstd { level: 3 }),
            ("zstd", Some(level @ 1..=22)) => Ok(Compression::Zstd { level }),
            _ => Err(error()),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Gzip { level } => write!(f, "gzip:{level}"),
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
        }
    }
}

/// A compressing writer for one of the [`Compression`] choices; its output does not depend on
/// the thread count or on how the input is split into writes.
pub enum Encoder<W: Write + Send + 'static> {
    /// Uncompressed.
    None(W),
    /// gzip in fixed blocks.
    Gzip(gzip::GzipEncoder<W>),
    /// zstd in its multi-worker mode.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send + 'static> Encoder<W> {
    /// A writer compressing into `inner`.
    pub fn new(inner: W, compression: Compression, threads: NonZeroUsize) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip { level } => Encoder::Gzip(gzip::GzipEncoder::new(inner, level, threads)?),
            Compression::Zstd { level } => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, level)?;
                let workers = u32::try_from(threads.get()).unwrap_or(u32::MAX);
                encoder.multithread(workers)?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(inner) => Ok(inner),
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write + Send + 'static> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(inner) => inner.write(buf),
            Encoder::Gzip(encoder) => encoder.write(buf),
            Encoder::Zstd(encoder) => encoder.write(buf),
        }
    }

    /// Never flushes a compressor mid-stream, which would change its output.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a reader that decompresses a layer of the given media type.
pub(crate) fn decoder<'a, R: io::BufRead + 'a>(
    media_type: &str,
    reader: R,
) -> Option<Box<dyn io::Read + 'a>> {
    match media_type {
        media_type::LAYER_TAR | media_type::DOCKER_LAYER_TAR => Some(Box::new(reader)),
        media_type::LAYER_TAR_GZIP | media_type::DOCKER_LAYER_TAR_GZIP => {
            Some(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
        }
        media_type::LAYER_TAR_ZSTD => {
            zstd::stream::read::Decoder::with_buffer(reader).ok().map(|d| Box::new(d) as Box<dyn io::Read>)
        }
        _ => None,
    }
}

/// What decides the compressed bytes besides the input and the level, per algorithm: recorded in
/// `kiln.lock` so that a change of backend shows up as a change of the lock.
pub fn identities() -> Vec<(&'static str, String)> {
    vec![
        (
            "gzip",
            format!(
                "zlib-rs deflate in independent {} KiB blocks with a {} KiB dictionary",
                gzip::BLOCK_SIZE / 1024,
                gzip::DICTIONARY_SIZE / 1024
            ),
        ),
        ("zstd", format!("libzstd {} in worker mode", zstd::zstd_safe::version_string())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compression() {
        assert_eq!("gzip".parse(), Ok(Compression::Gzip { level: 6 }));
        assert_eq!("gzip:9".parse(), Ok(Compression::Gzip { level: 9 }));
        assert_eq!("zstd".parse(), Ok(Compression::Zstd { level: 3 }));
        assert_eq!("zstd:19".parse(), Ok(Compression::Zstd { level: 19 }));
        assert_eq!("none".parse(), Ok(Compression::None));
        for bad in ["gzip:0", "gzip:10", "zstd:0", "xz", "none:1", "gzip:x"] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }

    fn zstd_bytes(data: &[u8], threads: usize) -> Vec<u8> {
        let threads = NonZeroUsize::new(threads).unwrap();
        let mut encoder = Encoder::new(Vec::new(), Compression::Zstd { level: 3 }, threads).unwrap();
        for chunk in data.chunks(3000) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn zstd_independent_of_worker_count() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8 ^ (i / 10_000) as u8).collect();
        let reference = zstd_bytes(&data, 1);
        assert_eq!(zstd_bytes(&data, 2), reference);
        assert_eq!(zstd_bytes(&data, 4), reference);
        assert_eq!(zstd::decode_all(&reference[..]).unwrap(), data);
    }
}
