use std::fs;
use std::io;
use std::path::Path;

use kiln_reproducible::{Epoch, Owner, Policy};
use sha2::{Digest, Sha256};

use super::*;

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sample() -> Vec<u8> {
    let mut writer = Writer::new(Vec::new());
    writer.directory(b"etc", 0o755, 1_700_000_000).unwrap();
    writer.file(b"etc/hostname", 0o644, 1_700_000_000, 5, &mut &b"kiln\n"[..]).unwrap();
    writer.set_owner(Owner { uid: 1000, gid: 100 });
    writer.symlink(b"init", b"bin/sh", 1_700_000_001).unwrap();
    writer.finish().unwrap()
}

#[test]
fn header_bytes_match_gen_init_cpio_layout() {
    let bytes = sample();
    let first = std::str::from_utf8(&bytes[..110]).unwrap();
    assert_eq!(
        first,
        "070701\
         00000001000041ED000000000000000000000002\
         6553F10000000000000000000000000000000000\
         000000000000000400000000"
    );
    assert_eq!(&bytes[110..116], b"etc\0\0\0", "header+name padded to 4");
    assert_eq!(bytes.len() % 4, 0);
    assert!(bytes.ends_with(b"TRAILER!!!\0\0\0\0"), "no 512-byte block padding");
}

#[test]
fn golden_archive() {
    let bytes = sample();
    assert_eq!(bytes.len(), 496);
    assert_eq!(sha256(&bytes), "d2c6a3c389398fe26ab261ea305b6a91d1bad43967c1d4d2a63c59c640ac2453");
}

#[test]
fn round_trip() {
    let entries = read(&sample()).unwrap();
    let expected = [
        Entry {
            name: b"etc".to_vec(),
            mode: 0o40755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            nlink: 2,
            data: vec![],
        },
        Entry {
            name: b"etc/hostname".to_vec(),
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            nlink: 1,
            data: b"kiln\n".to_vec(),
        },
        Entry {
            name: b"init".to_vec(),
            mode: 0o120777,
            uid: 1000,
            gid: 100,
            mtime: 1_700_000_001,
            nlink: 1,
            data: b"bin/sh".to_vec(),
        },
    ];
    assert_eq!(entries, expected);
}

#[test]
fn inode_numbers_follow_write_order() {
    let bytes = sample();
    let inos: Vec<&[u8]> = [0, 116, 248].iter().map(|&o| &bytes[o + 6..o + 14]).collect();
    assert_eq!(inos, [b"00000001", b"00000002", b"00000003"]);
}

fn invalid_input(result: io::Result<()>) -> String {
    let error = result.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
    error.to_string()
}

#[test]
fn limits_of_the_format_are_errors() {
    let mut writer = Writer::new(Vec::new());
    let long = vec![b'a'; MAX_NAME + 1];
    assert!(invalid_input(writer.directory(&long, 0o755, 0)).contains("longer than 4095"));
    writer.directory(&long[..MAX_NAME], 0o755, 0).unwrap();
    assert!(invalid_input(writer.directory(b"", 0o755, 0)).contains("empty"));
    assert!(invalid_input(writer.directory(b"a\0b", 0o755, 0)).contains("NUL"));
    assert!(invalid_input(writer.directory(b"TRAILER!!!", 0o755, 0)).contains("end-of-archive"));
    assert!(invalid_input(writer.directory(b"d", 0o40755, 0)).contains("permission bits only"));
    let huge = writer.file(b"big", 0o644, 0, 1 << 32, &mut io::empty());
    assert!(invalid_input(huge).contains("\"big\": size 4294967296"));
    assert!(invalid_input(writer.symlink(b"l", b"t", 1 << 32)).contains("mtime"));
}

#[test]
fn data_must_match_the_size() {
    let mut writer = Writer::new(Vec::new());
    let short = writer.file(b"short", 0o644, 0, 10, &mut &b"abc"[..]).unwrap_err();
    assert!(short.to_string().contains("\"short\" has 3 bytes of data instead of 10"), "{short}");
    let long = writer.file(b"long", 0o644, 0, 2, &mut &b"abc"[..]).unwrap_err();
    assert!(long.to_string().contains("instead of 2"), "{long}");
}

#[test]
fn concatenated_archives_with_nul_padding() {
    let mut bytes = sample();
    bytes.extend_from_slice(&[0; 512]);
    let mut second = Writer::new(Vec::new());
    second.file(b"kernel/x86/microcode/GenuineIntel.bin", 0o644, 0, 3, &mut &b"ucd"[..]).unwrap();
    bytes.extend(second.finish().unwrap());
    bytes.extend_from_slice(&[0; 8]);
    let names: Vec<Vec<u8>> = read(&bytes).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names.len(), 4);
    assert_eq!(names[3], b"kernel/x86/microcode/GenuineIntel.bin");
}

fn malformed(bytes: &[u8]) -> (u64, String) {
    match read(bytes) {
        Err(Error::Malformed { offset, reason }) => (offset, reason),
        other => panic!("expected a malformed-archive error, got {other:?}"),
    }
}

#[test]
fn malformed_archives_name_the_offset() {
    let bytes = sample();
    assert_eq!(malformed(&bytes[..bytes.len() - 20]).0, 372, "truncated trailer");
    assert_eq!(malformed(&bytes[..230]), (226, "truncated name of 13 bytes".into()));
    let (offset, reason) = malformed(&bytes[..242]);
    assert_eq!(offset, 240);
    assert!(reason.contains("\"etc/hostname\""), "{reason}");

    let mut bad_magic = bytes.clone();
    bad_magic[116] = b'1';
    assert_eq!(malformed(&bad_magic), (116, "magic \"170701\" is not newc 070701 or 070702".into()));

    let mut bad_digit = bytes.clone();
    bad_digit[116 + 6 + 8 + 3] = b'x';
    assert_eq!(malformed(&bad_digit), (116 + 14, "header field 1 is not 8 hex digits".into()));

    let mut misaligned = bytes.clone();
    misaligned.extend_from_slice(&[0, 0]);
    misaligned.extend_from_slice(&bytes);
    assert!(malformed(&misaligned).1.contains("multiple of 4"));
}

mod mutations {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn truncations_never_panic(cut in 0usize..496) {
            let bytes = sample();
            let _ = read(&bytes[..cut]);
        }

        #[test]
        fn bit_flips_never_panic(flips in proptest::collection::vec((0usize..496, 0u8..8), 1..8)) {
            let mut bytes = sample();
            for (at, bit) in flips {
                bytes[at] ^= 1 << bit;
            }
            let _ = read(&bytes);
        }

        #[test]
        fn size_fields_never_panic(field in 0usize..13, value in any::<u32>()) {
            let mut bytes = sample();
            let start = 116 + 6 + 8 * field;
            bytes[start..start + 8].copy_from_slice(format!("{value:08X}").as_bytes());
            let _ = read(&bytes);
        }
    }
}

enum Make {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Link(&'static str, &'static str),
}

/// The same tree, made in forward or reverse order and under different host modes.
fn build_tree(root: &Path, reversed: bool) {
    let mut steps = vec![
        Make::Dir("usr/bin"),
        Make::Dir("etc"),
        Make::Dir("dev"),
        Make::File("etc/os-release", b"ID=talos\n".to_vec()),
        Make::File("usr/bin/tool", vec![7u8; 70_001]),
        Make::Link("init", "usr/bin/tool"),
        Make::File("empty", Vec::new()),
    ];
    if reversed {
        steps.reverse();
    }
    for step in steps {
        match step {
            Make::Dir(path) => fs::create_dir_all(root.join(path)).unwrap(),
            Make::File(path, data) => {
                fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
                fs::write(root.join(path), data).unwrap();
            }
            Make::Link(path, target) => std::os::unix::fs::symlink(target, root.join(path)).unwrap(),
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = if reversed { 0o700 } else { 0o775 };
    fs::set_permissions(root.join("usr/bin/tool"), fs::Permissions::from_mode(mode)).unwrap();
}

fn policy() -> Policy {
    Policy { owner: Owner { uid: 0, gid: 0 }, ..Policy::with_epoch(Epoch::from_secs(1_700_000_000)) }
}

#[test]
fn tree_in_walk_order_with_policy() {
    let dir = tempfile::tempdir().unwrap();
    build_tree(dir.path(), false);
    let owned = Policy { owner: Owner { uid: 5, gid: 6 }, ..policy() };
    let entries = read(&write_tree(dir.path(), Vec::new(), &owned).unwrap()).unwrap();
    let summary: Vec<(String, u32, u32, u32, u64)> = entries
        .iter()
        .map(|e| (String::from_utf8(e.name.clone()).unwrap(), e.mode, e.uid, e.gid, e.mtime))
        .collect();
    let t = 1_700_000_000;
    assert_eq!(
        summary,
        [
            ("dev".into(), 0o40755, 5, 6, t),
            ("empty".into(), 0o100644, 5, 6, t),
            ("etc".into(), 0o40755, 5, 6, t),
            ("etc/os-release".into(), 0o100644, 5, 6, t),
            ("init".into(), 0o120777, 5, 6, t),
            ("usr".into(), 0o40755, 5, 6, t),
            ("usr/bin".into(), 0o40755, 5, 6, t),
            ("usr/bin/tool".into(), 0o100755, 5, 6, t),
        ]
    );
    assert_eq!(entries[4].data, b"usr/bin/tool");
    assert_eq!(entries[7].data, vec![7u8; 70_001]);
}

#[test]
fn tree_bytes_are_independent_of_creation_order_and_threads() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    build_tree(first.path(), false);
    build_tree(second.path(), true);
    let a = write_tree(first.path(), Vec::new(), &policy()).unwrap();
    let b = write_tree(second.path(), Vec::new(), &policy()).unwrap();
    assert_eq!(sha256(&a), sha256(&b));
    assert_eq!(sha256(&a), "2a55586988b66b23821a95f6ce3f17dca2cd7d98cecdef7b11a4e90e209f2daa");
    let parallel: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let root = if i % 2 == 0 { first.path() } else { second.path() };
                scope.spawn(move || write_tree(root, Vec::new(), &policy()).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(parallel.iter().all(|bytes| *bytes == a));
}

#[test]
fn special_files_are_rejected_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let error = write_tree(dir.path(), Vec::new(), &policy()).unwrap_err();
    assert!(matches!(error, Error::Walk(crate::Error::Unsupported { kind: "socket", .. })), "{error:?}");
    assert!(error.to_string().contains("control.sock"), "{error}");
}
