//! Entry ordering: raw bytes, never locale collation or directory order.
//!
//! A tree is emitted depth first, parents before children, with the children of each directory
//! sorted by the raw bytes of their names — the order `tar --sort=name` produces.

use std::cmp::Ordering;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Compares two file names by their raw bytes.
pub fn cmp_names(a: &OsStr, b: &OsStr) -> Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

/// Sorts directory entry names by their raw bytes.
pub fn sort_names(names: &mut [OsString]) {
    names.sort_unstable_by(|a, b| cmp_names(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn sorts_by_bytes_not_locale() {
        let mut names: Vec<OsString> =
            ["b", "B", "a.txt", "a", "_", "é", "Z"].iter().map(OsString::from).collect();
        names.push(OsString::from_vec(vec![0xff, b'x']));
        sort_names(&mut names);
        let bytes: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        assert_eq!(bytes, vec![&b"B"[..], b"Z", b"_", b"a", b"a.txt", b"b", "é".as_bytes(), &[0xff, b'x']]);
    }
}
