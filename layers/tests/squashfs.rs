//! squashfs images checked with squashfs-tools 4.5.1: `unsquashfs -s`, `-lln` and a full
//! extraction compared file by file with the source tree; determinism across thread counts
//! and creation orders; a golden digest; refused trees and bad roots.

#![expect(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "tests fail on any unexpected error and say why they skip"
)]

use std::collections::BTreeMap;
use std::fs;
use std::num::NonZeroUsize;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_layers::squashfs::{self, Error, Options, Summary};
use kiln_reproducible::{Epoch, Policy};
use sha2::{Digest, Sha256};

const EPOCH: u64 = 1_700_000_000;
const BLOCK: usize = 131_072;

/// Whether `unsquashfs` is installed; outside CI a test without it says so and passes.
fn unsquashfs_available() -> bool {
    let found = Command::new("unsquashfs").arg("-help").output().is_ok();
    if !found {
        let message = "unsquashfs (squashfs-tools) is not installed; run scripts/install-deps";
        assert!(std::env::var_os("CI").is_none(), "CI requires every tool: {message}");
        eprintln!("skipped: {message}");
    }
    found
}

fn options(threads: usize) -> Options {
    let mut options = Options::new(Policy::with_epoch(Epoch::from_secs(EPOCH)));
    options.threads = NonZeroUsize::new(threads).unwrap();
    options
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Text that compresses, different for every seed.
fn text(seed: usize, len: usize) -> Vec<u8> {
    format!("line {seed} of a kiln squashfs test file\n").into_bytes().into_iter().cycle().take(len).collect()
}

enum Item {
    Dir(u32),
    File(Vec<u8>, u32),
    Link(Vec<u8>),
}

/// The test tree: every case the writer handles, as (relative path, item).
fn items() -> Vec<(Vec<u8>, Item)> {
    let mut items: Vec<(Vec<u8>, Item)> = Vec::new();
    let mut add = |path: &[u8], item| items.push((path.to_vec(), item));
    add(b"a", Item::Dir(0o700));
    add(b"a/b", Item::Dir(0o755));
    add(b"a/b/c", Item::Dir(0o750));
    add(b"a/b/c/deep.txt", Item::File(text(1, 5000), 0o600));
    add(b"a/b/empty-dir", Item::Dir(0o755));
    add(b"empty", Item::File(Vec::new(), 0o644));
    add(b"one", Item::File(b"x".to_vec(), 0o664));
    add(b"blocks-exact", Item::File(text(2, 2 * BLOCK), 0o644));
    let mut sparse = text(3, 3 * BLOCK + 777);
    sparse[BLOCK..2 * BLOCK].fill(0);
    add(b"blocks-with-zeros", Item::File(sparse, 0o755));
    add(b"zeros", Item::File(vec![0; 2 * BLOCK + 10], 0o644));
    add(b"random", Item::File(noise(4, 3_000_000), 0o700));
    add(b"tool", Item::File(text(5, 200), 0o711));
    add(b"link", Item::Link(b"one".to_vec()));
    add(b"dangling", Item::Link(b"../nowhere/at/all".to_vec()));
    let long: Vec<u8> = (0..300).map(|i| b"abcdefghij/"[i % 11]).collect();
    add(b"long-link", Item::Link(long));
    add(b"odd", Item::Dir(0o755));
    for name in
        [&b"sp ace"[..], b"tab\tname", b"\xff\xfe-not-utf8", "é-ü".as_bytes(), b"-dash", b"#hash", b"q?*"]
    {
        add(&[&b"odd/"[..], name].concat(), Item::File(name.to_vec(), 0o644));
    }
    add(&[&b"odd/"[..], &[b'n'; 255][..]].concat(), Item::File(b"long name".to_vec(), 0o644));
    add(b"many", Item::Dir(0o755));
    for i in 0..700 {
        let path = format!("many/entry-{i:04}-{}", "x".repeat(i % 40)).into_bytes();
        match i % 50 {
            7 => add(&path, Item::Dir(0o755)),
            13 => add(&path, Item::Link(format!("entry-{:04}", i - 1).into_bytes())),
            _ => add(&path, Item::File(text(i, i * 37 % 3000), if i % 3 == 0 { 0o755 } else { 0o644 })),
        }
    }
    items
}

fn host(root: &Path, relative: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(relative))
}

/// Creates the test tree under `root`, in the given order of items (parents always first).
fn build_tree(root: &Path, reverse: bool) {
    let mut items = items();
    let dirs: Vec<_> =
        items.iter().filter(|(_, i)| matches!(i, Item::Dir(_))).map(|(p, _)| p.clone()).collect();
    for dir in &dirs {
        fs::create_dir_all(host(root, dir)).unwrap();
    }
    if reverse {
        items.reverse();
    }
    for (path, item) in &items {
        let path = host(root, path);
        match item {
            Item::Dir(_) => {}
            Item::File(bytes, mode) => {
                fs::write(&path, bytes).unwrap();
                let mode = if reverse { mode & !0o022 } else { *mode };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            Item::Link(target) => symlink(std::ffi::OsStr::from_bytes(target), &path).unwrap(),
        }
    }
    for (path, item) in &items {
        if let Item::Dir(mode) = item {
            fs::set_permissions(host(root, path), fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
}

/// What a path of the source tree should become, as modes after normalisation.
fn expected(root: &Path) -> BTreeMap<Vec<u8>, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    out.insert(Vec::new(), ('d', 0o755, Vec::new()));
    for (path, item) in items() {
        let value = match item {
            Item::Dir(_) => ('d', 0o755, Vec::new()),
            Item::File(bytes, mode) => ('-', if mode & 0o111 != 0 { 0o755 } else { 0o644 }, bytes),
            Item::Link(target) => ('l', 0o777, target),
        };
        assert!(host(root, &path).symlink_metadata().is_ok());
        out.insert(path, value);
    }
    out
}

/// Every path under `root` (relative, root itself as empty) with its kind, mode and content.
fn read_tree(root: &Path) -> BTreeMap<Vec<u8>, (char, u32, Vec<u8>)> {
    fn visit(root: &Path, relative: Vec<u8>, out: &mut BTreeMap<Vec<u8>, (char, u32, Vec<u8>)>) {
        let path = if relative.is_empty() { root.to_owned() } else { host(root, &relative) };
        let metadata = path.symlink_metadata().unwrap();
        let mode = metadata.mode() & 0o7777;
        if metadata.is_dir() {
            out.insert(relative.clone(), ('d', mode, Vec::new()));
            for entry in fs::read_dir(&path).unwrap() {
                let name = entry.unwrap().file_name().into_vec();
                let child =
                    if relative.is_empty() { name } else { [&relative[..], b"/", &name[..]].concat() };
                visit(root, child, out);
            }
        } else if metadata.is_symlink() {
            out.insert(relative, ('l', 0o777, fs::read_link(&path).unwrap().into_os_string().into_vec()));
        } else {
            assert!(metadata.is_file(), "{} is neither file, directory nor symlink", path.display());
            out.insert(relative, ('-', mode, fs::read(&path).unwrap()));
        }
    }
    let mut out = BTreeMap::new();
    visit(root, Vec::new(), &mut out);
    out
}

fn unsquashfs(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let output = Command::new("unsquashfs").args(args).env("TZ", "UTC").output().unwrap();
    assert!(output.status.success(), "unsquashfs {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn image_of_test_tree(threads: usize) -> (tempfile::TempDir, PathBuf, Summary) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    build_tree(&root, false);
    let image = dir.path().join("out.sqsh");
    let summary = squashfs::write(&root, &image, &options(threads)).unwrap();
    (dir, image, summary)
}

#[test]
fn unsquashfs_reads_back_every_entry() {
    if !unsquashfs_available() {
        return;
    }
    let (dir, image, summary) = image_of_test_tree(2);
    let root = dir.path().join("root");
    let want = expected(&root);
    let count = |kind| want.values().filter(|(k, _, _)| *k == kind).count() as u64;
    assert_eq!(summary.bytes, fs::metadata(&image).unwrap().len());
    assert_eq!(summary.bytes % 4096, 0);
    assert_eq!((summary.files, summary.directories, summary.symlinks), (count('-'), count('d'), count('l')));

    let stats = String::from_utf8(unsquashfs(&["-s".as_ref(), image.as_os_str()])).unwrap();
    for line in ["Compression zstd", "compression-level 18", "Block size 131072", "Xattrs are not stored"] {
        assert!(stats.contains(line), "no {line:?} in\n{stats}");
    }
    assert!(stats.contains(&format!("Number of inodes {}", want.len())), "{stats}");
    assert!(stats.contains("Number of ids 1"), "{stats}");

    // -lln: owner 0/0, mode, mtime at the epoch (2023-11-14 22:13 UTC), sizes, link targets.
    let listing = unsquashfs(&["-lln".as_ref(), "-d".as_ref(), "R".as_ref(), image.as_os_str()]);
    let mut seen = 0;
    for line in listing.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let mut fields = Vec::new();
        let mut rest = line;
        for _ in 0..5 {
            let start = rest.iter().position(|&b| b != b' ').unwrap();
            let end = start + rest[start..].iter().position(|&b| b == b' ').unwrap();
            fields.push(&rest[start..end]);
            rest = &rest[end + 1..];
        }
        let path = rest.strip_prefix(b"R").unwrap();
        let path = path.strip_prefix(b"/").unwrap_or(path);
        let (path, target) = match path.windows(4).position(|w| w == b" -> ") {
            Some(arrow) if fields[0][0] == b'l' => (&path[..arrow], Some(&path[arrow + 4..])),
            _ => (path, None),
        };
        let (kind, mode, content) =
            want.get(path).unwrap_or_else(|| panic!("unexpected {}", String::from_utf8_lossy(path)));
        let show = String::from_utf8_lossy(line);
        let perms: String = "rwxrwxrwx"
            .chars()
            .enumerate()
            .map(|(i, c)| if mode & (0o400 >> i) != 0 { c } else { '-' })
            .collect();
        assert_eq!(fields[0], format!("{kind}{perms}").as_bytes(), "{show}");
        assert_eq!(fields[1], b"0/0", "{show}");
        assert_eq!([fields[3], fields[4]], [&b"2023-11-14"[..], b"22:13"], "{show}");
        if *kind != 'd' {
            assert_eq!(fields[2], content.len().to_string().as_bytes(), "{show}");
        }
        if *kind == 'l' {
            assert_eq!(target, Some(&content[..]), "{show}");
        }
        seen += 1;
    }
    assert_eq!(seen, want.len());

    // Full extraction: every path, kind, mode and byte as in the source tree.
    let extracted = dir.path().join("extracted");
    unsquashfs(&["-no-xattrs".as_ref(), "-d".as_ref(), extracted.as_os_str(), image.as_os_str()]);
    let got = read_tree(&extracted);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (path, value) in &want {
        assert!(got[path] == *value, "{} differs", String::from_utf8_lossy(path));
    }
    assert_eq!(read_tree(&root).len(), want.len());
}

#[test]
fn level_and_block_size_are_recorded() {
    if !unsquashfs_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f"), text(9, 100_000)).unwrap();
    for (level, block_size) in [(15, 4096), (3, 1 << 20)] {
        let image = dir.path().join(format!("{level}.sqsh"));
        let options = Options { level, block_size, ..options(1) };
        squashfs::write(&root, &image, &options).unwrap();
        let stats = String::from_utf8(unsquashfs(&["-s".as_ref(), image.as_os_str()])).unwrap();
        assert!(stats.contains(&format!("Block size {block_size}")), "{stats}");
        // A level of 15 is zstd's default in squashfs: no options block, nothing shown.
        assert_eq!(stats.contains("compression-level"), level != 15, "{stats}");
        let out = dir.path().join(format!("x{level}"));
        unsquashfs(&["-d".as_ref(), out.as_os_str(), image.as_os_str()]);
        assert_eq!(fs::read(out.join("f")).unwrap(), text(9, 100_000));
    }
}

#[test]
fn bytes_do_not_depend_on_threads_or_creation_order() {
    let (_dir, one, _) = image_of_test_tree(1);
    let (_dir2, two, _) = image_of_test_tree(2);
    let first = fs::read(&one).unwrap();
    assert_eq!(first, fs::read(&two).unwrap(), "1 vs 2 threads");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("reversed");
    build_tree(&root, true);
    // Host mtimes differ too: the policy sets every one to the epoch.
    fs::File::open(root.join("one")).unwrap().set_modified(std::time::UNIX_EPOCH).unwrap();
    let image = dir.path().join("reversed.sqsh");
    squashfs::write(&root, &image, &options(3)).unwrap();
    assert!(fs::read(&image).unwrap() == first, "tree created in reverse order");
}

#[test]
fn golden_digest() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("usr/lib/firmware")).unwrap();
    fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    fs::write(root.join("manifest.yaml"), text(10, 300)).unwrap();
    fs::write(root.join("usr/lib/firmware/blob.bin"), noise(11, 200_000)).unwrap();
    fs::write(root.join("usr/local/bin/tool"), [text(12, 300_000), vec![0; BLOCK]].concat()).unwrap();
    fs::set_permissions(root.join("usr/local/bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("bin/tool", root.join("usr/local/tool")).unwrap();
    let image = dir.path().join("golden.sqsh");
    let summary = squashfs::write(&root, &image, &options(2)).unwrap();
    let digest = hex::encode(Sha256::digest(fs::read(&image).unwrap()));
    assert_eq!(
        (digest.as_str(), summary),
        (
            "7f2aa821ec5176e8f0909f467f6e13d05768330a48547141450a99daaf37afde",
            Summary { bytes: 204_800, files: 3, directories: 6, symlinks: 1 }
        ),
        "a change of these bytes is a format change: check it with unsquashfs and the kernel"
    );
}

#[test]
fn a_fifo_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("run")).unwrap();
    fs::write(root.join("a"), "a").unwrap();
    let fifo = root.join("run/pipe");
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o644), 0)
        .unwrap();
    let image = dir.path().join("out.sqsh");
    let error = squashfs::write(&root, &image, &options(1)).unwrap_err();
    assert!(matches!(&error, Error::Unsupported { path, kind: "FIFO" } if *path == fifo), "{error:?}");
    assert!(error.to_string().contains(&*fifo.to_string_lossy()), "{error}");
    assert!(!image.exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left behind");
}

#[test]
fn bad_roots_and_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("out.sqsh");
    let missing = dir.path().join("missing");
    let error = squashfs::write(&missing, &image, &options(1)).unwrap_err();
    assert!(error.to_string().contains(&*missing.to_string_lossy()), "{error}");

    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let error = squashfs::write(&file, &image, &options(1)).unwrap_err();
    assert!(matches!(&error, Error::NotADirectory { path } if *path == file), "{error:?}");

    let link = dir.path().join("link");
    symlink(dir.path(), &link).unwrap();
    let error = squashfs::write(&link, &image, &options(1)).unwrap_err();
    assert!(matches!(error, Error::NotADirectory { .. }), "a symlinked root is not followed: {error:?}");

    for bad in [
        Options { level: 0, ..options(1) },
        Options { block_size: 100_000, ..options(1) },
        Options { policy: Policy::with_epoch(Epoch::from_secs(1 << 33)), ..options(1) },
    ] {
        assert!(matches!(squashfs::write(dir.path(), &image, &bad), Err(Error::Options { .. })));
    }
    let error =
        squashfs::write(dir.path(), &dir.path().join("no/such/dir/out.sqsh"), &options(1)).unwrap_err();
    assert!(matches!(error, Error::Write { .. }), "{error:?}");
    assert!(!image.exists());
}

#[test]
fn an_existing_image_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let image = dir.path().join("out.sqsh");
    fs::write(&image, "old").unwrap();
    let summary = squashfs::write(&root, &image, &options(1)).unwrap();
    assert_eq!(summary, Summary { bytes: 4096, files: 0, directories: 1, symlinks: 0 });
    let bytes = fs::read(&image).unwrap();
    assert_eq!(&bytes[..4], b"hsqs");
    assert_eq!(fs::metadata(&image).unwrap().mode() & 0o777, 0o644);
}
