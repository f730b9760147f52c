//! USTAR and PAX header encoding.
//!
//! kiln writes POSIX ustar headers and adds a PAX extended header only for what ustar cannot
//! hold: long paths and link targets, sizes from 8 GiB, large ids, and xattrs. PAX records are
//! sorted by key and the extended header's own fields are fixed, so the bytes depend only on the
//! entry. User and group names are always empty. GNU `././@LongLink` entries are never written.

use std::io::{self, Write};

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
/// Largest value of an 11-digit octal field (size, mtime).
const MAX_OCTAL_11: u64 = 0o777_7777_7777;
/// Largest value of a 7-digit octal field (uid, gid).
const MAX_OCTAL_7: u64 = 0o777_7777;

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryType {
    /// A regular file with `size` bytes of data following the header.
    File { size: u64 },
    /// A hard link to an earlier entry's path.
    Hardlink { target: Vec<u8> },
    /// A symbolic link.
    Symlink { target: Vec<u8> },
    /// A directory.
    Directory,
}

/// One archive entry's metadata, already normalised by policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// Path inside the archive, without a leading `/` or `./`; directories end in `/`.
    pub(crate) path: Vec<u8>,
    pub(crate) kind: EntryType,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: u64,
    /// Extended attributes, sorted by name.
    pub(crate) xattrs: Vec<(String, Vec<u8>)>,
}

impl Header {
    /// Writes the header blocks (a PAX extended header first, when needed).
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        let (name, prefix) = match split_ustar_path(&self.path) {
            Some((name, prefix)) => (name, prefix),
            None => {
                records.push(("path".into(), self.path.clone()));
                (truncate(&self.path, NAME_LEN), &[][..])
            }
        };
        let link: &[u8] = match &self.kind {
            EntryType::Hardlink { target } | EntryType::Symlink { target } => target,
            EntryType::File { .. } | EntryType::Directory => &[],
        };
        if link.len() > NAME_LEN {
            records.push(("linkpath".into(), link.to_vec()));
        }
        let size = match self.kind {
            EntryType::File { size } => size,
            _ => 0,
        };
        if size > MAX_OCTAL_11 {
            records.push(("size".into(), size.to_string().into_bytes()));
        }
        if self.mtime > MAX_OCTAL_11 {
            records.push(("mtime".into(), self.mtime.to_string().into_bytes()));
        }
        if u64::from(self.uid) > MAX_OCTAL_7 {
            records.push(("uid".into(), self.uid.to_string().into_bytes()));
        }
        if u64::from(self.gid) > MAX_OCTAL_7 {
            records.push(("gid".into(), self.gid.to_string().into_bytes()));
        }
        for (key, value) in &self.xattrs {
            records.push((format!("SCHILY.xattr.{key}"), value.clone()));
        }
        let binary = records.iter().any(|(key, value)| {
            matches!(key.as_str(), "path" | "linkpath") && std::str::from_utf8(value).is_err()
        });
        if binary {
            records.push(("hdrcharset".into(), b"BINARY".to_vec()));
        }

        if !records.is_empty() {
            records.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let body = encode_pax_records(&records);
            let pax = UstarFields {
                name: &pax_header_name(&self.path),
                prefix: &[],
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: body.len() as u64,
                mtime: 0,
                typeflag: b'x',
                link: &[],
            };
            out.write_all(&pax.encode())?;
            out.write_all(&body)?;
            out.write_all(&[0u8; BLOCK][..padding(body.len() as u64)])?;
        }

        let typeflag = match self.kind {
            EntryType::File { .. } => b'0',
            EntryType::Hardlink { .. } => b'1',
            EntryType::Symlink { .. } => b'2',
            EntryType::Directory => b'5',
        };
        let fields = UstarFields {
            name,
            prefix,
            mode: self.mode,
            uid: clamp(u64::from(self.uid), MAX_OCTAL_7),
            gid: clamp(u64::from(self.gid), MAX_OCTAL_7),
            size: if size > MAX_OCTAL_11 { 0 } else { size },
            mtime: clamp(self.mtime, MAX_OCTAL_11),
            typeflag,
            link: truncate(link, NAME_LEN),
        };
        out.write_all(&fields.encode())
    }
}

/// Bytes of zero padding after `len` bytes of entry data.
pub(crate) fn padding(len: u64) -> usize {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

fn clamp(value: u64, max: u64) -> u64 {
    if value > max { 0 } else { value }
}

fn truncate(bytes: &[u8], len: usize) -> &[u8] {
    &bytes[..bytes.len().min(len)]
}

/// Splits a path into ustar `name` and `prefix`, or `None` when it does not fit.
fn split_ustar_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= NAME_LEN {
        return Some((path, &[]));
    }
    // The split must be at a '/', with the prefix at most 155 bytes and a non-empty name of at
    // most 100 bytes. A directory's trailing '/' belongs to the name.
    let search_end = path.len().saturating_sub(1);
    (0..search_end)
        .rev()
        .filter(|&i| path[i] == b'/')
        .map(|i| (&path[i + 1..], &path[..i]))
        .find(|(name, prefix)| !name.is_empty() && name.len() <= NAME_LEN && prefix.len() <= PREFIX_LEN)
}

/// `PaxHeaders.0/<base name>`: no directory part and no process id, so it depends only on the
/// entry's own name.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    let mut name = b"PaxHeaders.0/".to_vec();
    name.extend_from_slice(base);
    name.truncate(NAME_LEN);
    name
}

/// `"<len> <key>=<value>\n"` records, where `<len>` counts the whole record including itself.
fn encode_pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(key.as_bytes());
        body.push(b'=');
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    body
}

struct UstarFields<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &'a [u8],
}

impl UstarFields<'_> {
    fn encode(&self) -> [u8; BLOCK] {
        let mut block = [0u8; BLOCK];
        block[..self.name.len()].copy_from_slice(self.name);
        octal(&mut block[100..108], u64::from(self.mode));
        octal(&mut block[108..116], self.uid);
        octal(&mut block[116..124], self.gid);
        octal(&mut block[124..136], self.size);
        octal(&mut block[136..148], self.mtime);
        block[156] = self.typeflag;
        block[157..157 + self.link.len()].copy_from_slice(self.link);
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        // uname (265..297) and gname (297..329) stay empty: names never come from the host.
        octal(&mut block[329..337], 0);
        octal(&mut block[337..345], 0);
        block[345..345 + self.prefix.len()].copy_from_slice(self.prefix);
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        octal(&mut block[148..155], u64::from(sum));
        block
    }
}

/// Zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &[u8], size: u64) -> Header {
        Header {
            path: path.to_vec(),
            kind: EntryType::File { size },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        }
    }

    fn encode(header: &Header) -> Vec<u8> {
        let mut out = Vec::new();
        header.write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn short_path_is_plain_ustar() {
        let out = encode(&file(b"etc/hostname", 5));
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[..12], b"etc/hostname");
        assert_eq!(&out[100..108], b"0000644\0");
        assert_eq!(&out[124..136], b"00000000005\0");
        assert_eq!(out[156], b'0');
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert!(out[265..329].iter().all(|&b| b == 0), "uname/gname must be empty");
        let sum: u32 = out
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) })
            .sum();
        assert_eq!(&out[148..156], format!("{sum:06o}\0 ").as_bytes());
    }

    #[test]
    fn long_path_splits_into_prefix() {
        let dir = "d".repeat(120);
        let path = format!("{dir}/file");
        let out = encode(&file(path.as_bytes(), 0));
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[..5], b"file\0");
        assert_eq!(&out[345..465], dir.as_bytes());
    }

    #[test]
    fn unsplittable_path_uses_sorted_pax_records() {
        let path = format!("{}.txt", "n".repeat(150));
        let mut header = file(path.as_bytes(), 3);
        header.xattrs = vec![("security.capability".into(), vec![1, 2])];
        let out = encode(&header);
        assert_eq!(out[156], b'x');
        assert!(out[..100].starts_with(b"PaxHeaders.0/nnnn"));
        let size = usize::from_str_radix(std::str::from_utf8(&out[124..135]).unwrap(), 8).unwrap();
        let body = &out[BLOCK..BLOCK + size];
        let text = String::from_utf8_lossy(body);
        let keys: Vec<&str> =
            text.lines().map(|l| l.split_once(' ').unwrap().1.split('=').next().unwrap()).collect();
        assert_eq!(keys, vec!["SCHILY.xattr.security.capability", "path"]);
        for line in body.split_inclusive(|&b| b == b'\n') {
            let len: usize =
                std::str::from_utf8(line.split(|&b| b == b' ').next().unwrap()).unwrap().parse().unwrap();
            assert_eq!(len, line.len());
        }
        assert_eq!(out.len(), 3 * BLOCK);
        assert_eq!(out[2 * BLOCK + 156], b'0');
    }

    #[test]
    fn non_utf8_long_path_is_marked_binary() {
        let mut path = vec![0xffu8; 120];
        path.extend_from_slice(b"x");
        let out = encode(&file(&path, 0));
        let text = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(text.contains("hdrcharset=BINARY"), "{text}");
    }

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        let body = encode_pax_records(&[("a".into(), b"bcd".to_vec())]);
        assert_eq!(body, b"8 a=bcd\n".to_vec());
        // 9 bytes besides the length: one digit would make 10, which needs two digits, so 11.
        let body = encode_pax_records(&[("a".into(), b"bcdef".to_vec())]);
        assert_eq!(body, b"11 a=bcdef\n".to_vec());
    }

    #[test]
    fn huge_file_size_goes_to_pax() {
        let out = encode(&file(b"big", MAX_OCTAL_11 + 1));
        let text = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(text.contains(&format!("size={}", MAX_OCTAL_11 + 1)));
        assert_eq!(&out[2 * BLOCK + 124..2 * BLOCK + 136], b"00000000000\0");
    }

    #[test]
    fn long_link_target_goes_to_pax() {
        let target = format!("/{}", "t".repeat(150));
        let header =
            Header { kind: EntryType::Symlink { target: target.clone().into_bytes() }, ..file(b"link", 0) };
        let out = encode(&header);
        let text = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(text.contains(&format!("linkpath={target}")), "{text}");
        assert_eq!(out[2 * BLOCK + 156], b'2');
    }

    mod round_trip {
        use super::super::*;
        use proptest::prelude::*;
        use std::io::Read;

        fn component() -> impl Strategy<Value = Vec<u8>> {
            // Any bytes but NUL and '/', including non-UTF-8 and long names. Not '\n': the tar
            // crate splits PAX records at newlines instead of by their length, so it cannot be
            // the oracle for those; GNU tar is (tests/cli/interop.rs).
            prop::collection::vec(
                any::<u8>().prop_filter("no NUL, / or newline", |b| !matches!(b, 0 | b'/' | b'\n')),
                1..120,
            )
            .prop_filter("not . or ..", |c| c != b"." && c != b"..")
        }

        fn path() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(component(), 1..5).prop_map(|parts| parts.join(&b'/'))
        }

        fn kind() -> impl Strategy<Value = EntryType> {
            prop_oneof![
                (0u64..5000).prop_map(|size| EntryType::File { size }),
                Just(EntryType::Directory),
                path().prop_map(|target| EntryType::Symlink { target }),
                path().prop_map(|target| EntryType::Hardlink { target }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            /// What kiln writes, an independent reader (the tar crate) reads back unchanged.
            #[test]
            fn headers_read_back(
                path in path(),
                kind in kind(),
                mode in 0u32..0o7777,
                uid in prop_oneof![0u32..10, Just(u32::MAX)],
                gid in prop_oneof![0u32..10, Just(3_000_000u32)],
                mtime in prop_oneof![0u64..2_000_000_000, Just(MAX_OCTAL_11 + 5)],
                // Binary values, without newlines for the same reason as in `component`.
                xattr in prop::option::of(prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40)),
            ) {
                let mut path = path;
                if kind == EntryType::Directory {
                    path.push(b'/');
                }
                let xattrs: Vec<(String, Vec<u8>)> =
                    xattr.into_iter().map(|v| ("security.capability".to_owned(), v)).collect();
                let header = Header { path: path.clone(), kind: kind.clone(), mode, uid, gid, mtime, xattrs: xattrs.clone() };
                let mut archive = Vec::new();
                header.write_to(&mut archive).unwrap();
                let size = match kind { EntryType::File { size } => size, _ => 0 };
                archive.extend(std::iter::repeat_n(7u8, size as usize));
                archive.extend(std::iter::repeat_n(0u8, padding(size) + 2 * BLOCK));

                let mut reader = tar::Archive::new(&archive[..]);
                let mut entries = reader.entries().unwrap();
                let mut entry = entries.next().unwrap().unwrap();
                // PAX records as the reader parsed them; numeric ones override the header.
                let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions().unwrap() {
                    Some(extensions) => extensions
                        .map(|e| e.unwrap())
                        .map(|e| (e.key().unwrap().to_owned(), e.value_bytes().to_vec()))
                        .collect(),
                    None => Vec::new(),
                };
                let numeric = |key: &str, field: u64| -> u64 {
                    pax.iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap())
                        .unwrap_or(field)
                };
                prop_assert_eq!(entry.path_bytes().into_owned(), path);
                prop_assert_eq!(entry.header().mode().unwrap(), mode);
                prop_assert_eq!(numeric("uid", entry.header().uid().unwrap()), u64::from(uid));
                prop_assert_eq!(numeric("gid", entry.header().gid().unwrap()), u64::from(gid));
                prop_assert_eq!(numeric("mtime", entry.header().mtime().unwrap()), mtime);
                prop_assert_eq!(entry.size(), size);
                let link = entry.link_name_bytes().map(|l| l.into_owned());
                match &kind {
                    EntryType::Symlink { target } | EntryType::Hardlink { target } => {
                        prop_assert_eq!(link.as_ref(), Some(target));
                    }
                    _ => prop_assert_eq!(link, None),
                }
                let read_xattrs: Vec<(String, Vec<u8>)> = pax
                    .iter()
                    .filter_map(|(k, v)| Some((k.strip_prefix("SCHILY.xattr.")?.to_owned(), v.clone())))
                    .collect();
                prop_assert_eq!(read_xattrs, xattrs);
                let keys: Vec<&String> = pax.iter().map(|(k, _)| k).collect();
                prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "PAX keys not sorted: {:?}", keys);
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                prop_assert_eq!(data.len() as u64, size);
                drop(entry);
                prop_assert!(entries.next().is_none());
            }
        }
    }
}
