//! A fast path for `.xz` modules: the container parsed here, each block's LZMA2 data decoded
//! by lzma-rust2's raw LZMA2 reader, and its CRC32 check verified with `crc32fast` (SIMD).
//!
//! lzma-rust2's `XzReader` verifies the check with a byte-wise CRC that took a sixth of
//! depmod's time on Debian's tree. Only the layout the kernel's build writes is taken here
//! (`xz --check=crc32 --lzma2=dict=…`: LZMA2 as the only filter, CRC32 or no check); anything
//! else — and any stream this code does not understand — returns `None` and goes through
//! `XzReader`, which also produces the error for corrupt data.

use std::io::Read;

const MAGIC: &[u8] = b"\xfd7zXZ\0";
const CHECK_NONE: u8 = 0;
const CHECK_CRC32: u8 = 1;
const FILTER_LZMA2: u64 = 0x21;

/// Decompresses `data` if it has the simple layout, with every block's check verified.
pub(crate) fn decompress(data: &[u8]) -> Option<Vec<u8>> {
    let flags = data.get(6..8)?;
    if !data.starts_with(MAGIC) || flags[0] != 0 || data.get(8..12)? != crc32fast::hash(flags).to_le_bytes() {
        return None;
    }
    let check = flags[1];
    if check != CHECK_NONE && check != CHECK_CRC32 {
        return None;
    }
    // The index, found from the footer, gives each block's uncompressed size up front: the
    // output is allocated once, and the dictionary no larger than the block.
    let sizes = index_sizes(data)?;
    let total = sizes.iter().fold(0u64, |sum, &size| sum.saturating_add(size));
    let mut out = Vec::with_capacity(usize::try_from(total).ok()?.min(data.len().saturating_mul(64)));
    let mut blocks = sizes.into_iter();
    let mut at = 12;
    // Blocks until the index (a zero byte where a block header would start).
    while *data.get(at)? != 0 {
        let header_len = (usize::from(data[at]) + 1) * 4;
        let header = data.get(at..at + header_len)?;
        let (body, crc) = header.split_at(header_len - 4);
        if crc != crc32fast::hash(body).to_le_bytes() {
            return None;
        }
        let block_flags = body[1];
        if block_flags & 0x03 != 0 || block_flags & 0x3c != 0 {
            return None; // more than one filter, or reserved bits
        }
        let mut field = 2;
        if block_flags & 0x40 != 0 {
            varint(body, &mut field)?; // compressed size
        }
        let uncompressed = if block_flags & 0x80 != 0 { Some(varint(body, &mut field)?) } else { None };
        if varint(body, &mut field)? != FILTER_LZMA2 || varint(body, &mut field)? != 1 {
            return None;
        }
        let size = blocks.next()?;
        if uncompressed.is_some_and(|n| n != size) {
            return None;
        }
        let dict_size =
            dictionary_size(*body.get(field)?)?.min(u32::try_from(size.max(4096)).unwrap_or(u32::MAX));
        let start = at + header_len;
        let compressed = data.get(start..)?;
        let block_start = out.len();
        let mut reader = lzma_rust2::Lzma2Reader::new(compressed, dict_size, None);
        reader.read_to_end(&mut out).ok()?;
        let consumed = compressed.len() - reader.into_inner().len();
        let block = &out[block_start..];
        if block.len() as u64 != size {
            return None;
        }
        // Block padding to a multiple of four, then the check.
        at = start + consumed;
        at += (4 - (at - 12) % 4) % 4;
        if check == CHECK_CRC32 {
            if data.get(at..at + 4)? != crc32fast::hash(block).to_le_bytes() {
                return None;
            }
            at += 4;
        }
    }
    if blocks.next().is_some() {
        return None;
    }
    // The index and the stream footer, both checked, end the file: a truncated file, a second
    // stream or stream padding is left to XzReader.
    let footer = data.get(data.len().checked_sub(12)?..)?;
    let index = data.get(at..data.len() - 12)?;
    let backward = (u64::from(u32::from_le_bytes(footer[4..8].try_into().ok()?)) + 1) * 4;
    if &footer[10..] != b"YZ"
        || footer[8..10] != *flags
        || footer[..4] != crc32fast::hash(&footer[4..10]).to_le_bytes()
        || index.len() as u64 != backward
        || index[index.len() - 4..] != crc32fast::hash(&index[..index.len() - 4]).to_le_bytes()
    {
        return None;
    }
    Some(out)
}

/// The uncompressed size of each block, from the stream's index (its CRC checked).
fn index_sizes(data: &[u8]) -> Option<Vec<u64>> {
    let footer = data.get(data.len().checked_sub(12)?..)?;
    let backward = (usize::try_from(u32::from_le_bytes(footer[4..8].try_into().ok()?)).ok()? + 1) * 4;
    let index = data.get(data.len().checked_sub(12 + backward)?..data.len() - 12)?;
    if index.first() != Some(&0)
        || index.len() < 8
        || index[index.len() - 4..] != crc32fast::hash(&index[..index.len() - 4]).to_le_bytes()
    {
        return None;
    }
    let mut at = 1;
    let count = varint(index, &mut at)?;
    let mut sizes = Vec::new();
    for _ in 0..count.min(index.len() as u64) {
        varint(index, &mut at)?; // unpadded size
        sizes.push(varint(index, &mut at)?);
    }
    Some(sizes)
}

/// An xz variable-length integer (7 bits per byte, little endian, at most 9 bytes).
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in 0..9 {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The LZMA2 dictionary size from its one-byte property.
fn dictionary_size(property: u8) -> Option<u32> {
    match property {
        0..=39 => Some((2 | u32::from(property & 1)) << (property / 2 + 11)),
        40 => Some(u32::MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `kiln module N\n` for N in 0..64, by `xz -c --lzma2=dict=1MiB` with --check=crc32, with
    // --check=crc32 --block-size=300 (several blocks), and with --check=crc64.
    const ONE: &[u8] = &[
        253, 55, 122, 88, 90, 0, 0, 1, 105, 34, 222, 54, 2, 0, 33, 1, 16, 0, 0, 0, 168, 112, 142, 134, 224,
        3, 181, 0, 114, 93, 0, 53, 154, 73, 215, 140, 4, 53, 136, 254, 163, 4, 210, 102, 139, 218, 167, 183,
        31, 217, 140, 91, 142, 67, 187, 46, 225, 186, 36, 80, 219, 219, 18, 119, 3, 238, 221, 57, 93, 125,
        49, 82, 114, 213, 243, 116, 180, 60, 227, 6, 181, 88, 98, 21, 1, 52, 60, 82, 214, 202, 164, 201, 96,
        87, 131, 68, 155, 238, 61, 170, 89, 53, 55, 17, 85, 158, 10, 6, 150, 66, 177, 69, 60, 77, 116, 45,
        116, 85, 183, 106, 59, 118, 69, 85, 51, 229, 74, 64, 99, 115, 212, 163, 18, 52, 203, 86, 60, 250,
        153, 100, 139, 198, 18, 68, 0, 0, 0, 0, 242, 213, 46, 177, 0, 1, 138, 1, 182, 7, 0, 0, 16, 205, 72,
        124, 62, 48, 13, 139, 2, 0, 0, 0, 0, 1, 89, 90,
    ];
    const BLOCKS: &[u8] = &[
        253, 55, 122, 88, 90, 0, 0, 1, 105, 34, 222, 54, 2, 0, 33, 1, 16, 0, 0, 0, 168, 112, 142, 134, 224,
        1, 43, 0, 59, 93, 0, 53, 154, 73, 215, 140, 4, 53, 136, 254, 163, 4, 210, 102, 139, 218, 167, 183,
        31, 217, 140, 91, 142, 67, 187, 46, 225, 186, 36, 80, 219, 219, 18, 119, 3, 238, 221, 57, 93, 125,
        49, 82, 114, 213, 243, 116, 180, 60, 227, 6, 181, 88, 98, 20, 253, 168, 53, 30, 72, 0, 0, 0, 161,
        182, 62, 159, 2, 0, 33, 1, 16, 0, 0, 0, 168, 112, 142, 134, 224, 1, 43, 0, 59, 93, 0, 50, 136, 2, 67,
        31, 221, 229, 204, 158, 168, 193, 50, 143, 121, 123, 47, 216, 193, 26, 133, 176, 50, 117, 72, 45, 60,
        84, 79, 90, 238, 2, 17, 48, 129, 231, 223, 76, 109, 39, 84, 194, 51, 29, 78, 205, 166, 97, 167, 252,
        162, 47, 215, 102, 53, 75, 255, 244, 123, 0, 0, 0, 131, 212, 170, 42, 2, 0, 33, 1, 16, 0, 0, 0, 168,
        112, 142, 134, 224, 1, 43, 0, 59, 93, 0, 50, 136, 2, 131, 31, 218, 190, 83, 232, 86, 208, 249, 73,
        100, 173, 105, 167, 118, 214, 223, 66, 84, 100, 24, 99, 126, 7, 31, 115, 3, 44, 83, 40, 134, 150, 82,
        11, 62, 167, 240, 125, 252, 239, 73, 230, 242, 214, 1, 99, 234, 16, 138, 240, 201, 184, 250, 253, 47,
        0, 0, 0, 151, 218, 37, 104, 2, 0, 33, 1, 16, 0, 0, 0, 168, 112, 142, 134, 224, 0, 49, 0, 28, 93, 0,
        50, 136, 2, 195, 31, 218, 190, 83, 232, 86, 208, 249, 73, 100, 173, 105, 167, 118, 214, 223, 66, 84,
        100, 16, 39, 239, 117, 64, 0, 181, 53, 10, 174, 0, 4, 83, 172, 2, 83, 172, 2, 83, 172, 2, 52, 50, 0,
        0, 0, 82, 50, 31, 60, 35, 211, 84, 93, 4, 0, 0, 0, 0, 1, 89, 90,
    ];
    const CRC64: &[u8] = &[
        253, 55, 122, 88, 90, 0, 0, 4, 230, 214, 180, 70, 2, 0, 33, 1, 16, 0, 0, 0, 168, 112, 142, 134, 224,
        3, 181, 0, 114, 93, 0, 53, 154, 73, 215, 140, 4, 53, 136, 254, 163, 4, 210, 102, 139, 218, 167, 183,
        31, 217, 140, 91, 142, 67, 187, 46, 225, 186, 36, 80, 219, 219, 18, 119, 3, 238, 221, 57, 93, 125,
        49, 82, 114, 213, 243, 116, 180, 60, 227, 6, 181, 88, 98, 21, 1, 52, 60, 82, 214, 202, 164, 201, 96,
        87, 131, 68, 155, 238, 61, 170, 89, 53, 55, 17, 85, 158, 10, 6, 150, 66, 177, 69, 60, 77, 116, 45,
        116, 85, 183, 106, 59, 118, 69, 85, 51, 229, 74, 64, 99, 115, 212, 163, 18, 52, 203, 86, 60, 250,
        153, 100, 139, 198, 18, 68, 0, 0, 0, 0, 38, 55, 244, 172, 186, 223, 26, 204, 0, 1, 142, 1, 182, 7, 0,
        0, 6, 143, 217, 231, 177, 196, 103, 251, 2, 0, 0, 0, 0, 4, 89, 90,
    ];

    fn plain() -> Vec<u8> {
        (0..64).flat_map(|i| format!("kiln module {i}\n").into_bytes()).collect()
    }

    fn reference(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        lzma_rust2::XzReader::new(data, true).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn decodes_what_the_kernel_build_writes() {
        assert_eq!(decompress(ONE).unwrap(), plain());
        assert_eq!(decompress(BLOCKS).unwrap(), plain());
        assert_eq!(reference(BLOCKS), plain());
    }

    #[test]
    fn declines_other_checks_and_damage() {
        assert_eq!(decompress(CRC64), None);
        assert_eq!(reference(CRC64), plain());
        for cut in 0..ONE.len() {
            assert_eq!(decompress(&ONE[..cut]), None, "{cut}");
        }
        for at in 0..ONE.len() - 12 {
            let mut damaged = ONE.to_vec();
            damaged[at] ^= 0x01;
            // Either declined (then XzReader reports the damage) or, where the byte does not
            // matter (index, footer), the same data.
            if let Some(out) = decompress(&damaged) {
                assert_eq!(out, plain(), "{at}");
            }
        }
        assert_eq!(dictionary_size(0), Some(4096));
        assert_eq!(dictionary_size(16), Some(1 << 20));
        assert_eq!(dictionary_size(41), None);
    }
}
