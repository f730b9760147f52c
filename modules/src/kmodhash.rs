//! The iteration order of kmod's `shared/hash.c` tables, which decides the order of
//! `modules.symbols` and of modules absent from `modules.order`: Paul Hsieh's SuperFastHash
//! of the key, masked to a power-of-two bucket count, buckets in index order and keys within a
//! bucket in `strcmp` order.

/// kmod's `hash_superfast` (keys are read as C `char`, which is signed on x86).
pub(crate) fn superfast(key: &[u8]) -> u32 {
    let len = key.len() as u32;
    let mut hash = len;
    let rem = key.len() & 3;
    let u16_at = |at: usize| u32::from(u16::from_le_bytes([key[at], key[at + 1]]));
    let signed = |b: u8| b as i8 as i32 as u32;
    let mut at = 0;
    for _ in 0..key.len() / 4 {
        hash = hash.wrapping_add(u16_at(at));
        let tmp = (u16_at(at + 2) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        at += 4;
        hash = hash.wrapping_add(hash >> 11);
    }
    match rem {
        3 => {
            hash = hash.wrapping_add(u16_at(at));
            hash ^= hash << 16;
            hash ^= signed(key[at + 2]) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        2 => {
            hash = hash.wrapping_add(u16_at(at));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        1 => {
            hash = hash.wrapping_add(signed(key[at]));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// Sorts `items` into the iteration order of a kmod hash with `buckets` buckets (a power of
/// two) keyed by `key`.
pub(crate) fn sort_in_hash_order<T>(items: &mut [T], buckets: u32, key: impl Fn(&T) -> &[u8]) {
    debug_assert!(buckets.is_power_of_two());
    items.sort_by_cached_key(|item| {
        let k = key(item);
        (superfast(k) & (buckets - 1), k.to_vec())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_bucket_then_bytes() {
        let mut keys = vec![&b"b"[..], b"a", b"printk", b"kfree", b"aa"];
        sort_in_hash_order(&mut keys, 1, |k| k);
        assert_eq!(keys, [&b"a"[..], b"aa", b"b", b"kfree", b"printk"]);
        // Lengths 0..=5 exercise every tail case without overflow panics.
        for len in 0..6 {
            let _ = superfast(&b"abcdef"[..len]);
        }
        let _ = superfast(&[0xff, 0x80, 0x7f]);
    }
}
