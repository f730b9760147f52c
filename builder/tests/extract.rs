//! Extraction of hostile and ordinary archives, checked against the file system and, for
//! `.deb`, against `dpkg-deb -x`.

#![expect(clippy::unwrap_used, reason = "tests fail on any unexpected error")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_builder::extract::{self, Options};

/// One tar entry, written with raw names so hostile paths can be made.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Device(&'a str),
    Fifo(&'a str),
}

fn tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, kind, data, mode, link): (&str, tar::EntryType, &[u8], u32, &str) = match entry {
            Entry::Dir(n) => (n, tar::EntryType::Directory, b"", 0o755, ""),
            Entry::File(n, d, m) => (n, tar::EntryType::Regular, d, *m, ""),
            Entry::Symlink(n, t) => (n, tar::EntryType::Symlink, b"", 0o777, t),
            Entry::Hardlink(n, t) => (n, tar::EntryType::Link, b"", 0o644, t),
            Entry::Device(n) => (n, tar::EntryType::Char, b"", 0o644, ""),
            Entry::Fifo(n) => (n, tar::EntryType::Fifo, b"", 0o644, ""),
        };
        // Raw names: tar's own setters refuse `..`, which is the point here.
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Every path under `root`, with a kind and content marker, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if meta.file_type().is_symlink() {
                out.push(format!("{name} -> {}", fs::read_link(&path).unwrap().display()));
            } else if meta.is_dir() {
                out.push(format!("{name}/ {:o}", meta.mode() & 0o7777));
                stack.push(path);
            } else {
                let content = fs::read(&path).unwrap();
                out.push(format!(
                    "{name} {:o} {} bytes {:x}",
                    meta.mode() & 0o7777,
                    content.len(),
                    crc(&content)
                ));
            }
        }
    }
    out.sort();
    out
}

fn crc(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

const GOOD: &[Entry<'static>] = &[
    Entry::Dir("./"),
    Entry::Dir("./src/"),
    Entry::File("./src/main.c", b"int main(void) { return 0; }\n", 0o644),
    Entry::File("./configure", b"#!/bin/sh\n", 0o755),
    Entry::Symlink("./src/link.c", "main.c"),
    Entry::Symlink("./up", "src/../configure"),
    Entry::Hardlink("./configure.hard", "./configure"),
    Entry::File("./deep/er/file", b"x", 0o600),
];

#[test]
fn every_compression_extracts_the_same_tree() {
    let work = tempfile::tempdir().unwrap();
    let plain = tar(GOOD);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let mut xz = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
    xz.write_all(&plain).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&plain).unwrap();
    let archives = [
        ("a.tar", plain.clone()),
        ("a.tar.gz", gz.finish().unwrap()),
        ("a.tar.xz", xz.finish().unwrap()),
        ("a.tar.zst", zstd::encode_all(&plain[..], 3).unwrap()),
        ("a.tar.bz2", bz.finish().unwrap()),
    ];
    let mut listings = Vec::new();
    for (name, bytes) in archives {
        let archive = write(work.path(), name, &bytes);
        let dest = work.path().join(format!("{name}.d"));
        let extracted = extract::extract(&archive, &dest, Options::default()).unwrap();
        assert_eq!(extracted.entries, 7, "{name}: the root entry ./ is not counted");
        listings.push(listing(&dest));
        assert_eq!(
            fs::metadata(dest.join("configure")).unwrap().ino(),
            fs::metadata(dest.join("configure.hard")).unwrap().ino(),
            "a hard link is a hard link"
        );
        let mtime = fs::metadata(dest.join("src/main.c")).unwrap().mtime();
        assert_eq!(mtime, 1_700_000_000, "file times are kept");
    }
    assert!(listings.windows(2).all(|w| w[0] == w[1]), "{listings:#?}");
    assert!(listings[0].iter().any(|l| l.starts_with("configure 755 10 bytes")), "{:#?}", listings[0]);
    assert!(listings[0].contains(&"src/link.c -> main.c".to_owned()), "{:#?}", listings[0]);
    assert!(listings[0].iter().any(|l| l.starts_with("deep/er/file 600 1 bytes")), "{:#?}", listings[0]);

    // strip_components, as tar --strip-components=1 does for a top-level directory.
    let archive =
        write(work.path(), "strip.tar", &tar(&[Entry::Dir("top/"), Entry::File("top/a", b"a", 0o644)]));
    let dest = work.path().join("strip");
    extract::extract(&archive, &dest, Options { strip_components: 1, ..Options::default() }).unwrap();
    assert_eq!(listing(&dest), ["a 644 1 bytes 61"]);
}

/// The archive is refused, naming the entry, and nothing is written: not the destination, not
/// outside it.
fn refused(entries: &[Entry<'_>], entry: &str, reason: &str) {
    let work = tempfile::tempdir().unwrap();
    let inner = work.path().join("a/b");
    fs::create_dir_all(&inner).unwrap();
    let archive = write(work.path(), "evil.tar", &tar(entries));
    let dest = inner.join("dest");
    let error = extract::extract(&archive, &dest, Options::default()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("evil.tar") && message.contains(entry) && message.contains(reason), "{message}");
    assert!(error.is_input_error());
    assert_eq!(fs::read_dir(&inner).unwrap().count(), 0, "nothing left beside the destination");
    let mut everything: Vec<String> = listing(work.path());
    everything.retain(|l| !l.starts_with("evil.tar") && !l.starts_with("a/"));
    assert!(everything.is_empty(), "written outside: {everything:?}");
}

#[test]
fn hostile_archives_are_refused_without_writing_anything() {
    refused(&[Entry::File("ok", b"1", 0o644), Entry::File("../../x", b"evil", 0o644)], "../../x", "'..'");
    refused(&[Entry::File("/tmp/kiln-absolute", b"evil", 0o644)], "/tmp/kiln-absolute", "absolute path");
    refused(&[Entry::Symlink("etc", "/etc")], "etc", "absolute path \"/etc\"");
    refused(&[Entry::Dir("d/"), Entry::Symlink("d/up", "../../x")], "d/up", "outside the root");
    refused(&[Entry::Hardlink("passwd", "/etc/passwd")], "passwd", "absolute path");
    refused(&[Entry::Hardlink("passwd", "../../etc/passwd")], "passwd", "'..'");
    refused(&[Entry::Hardlink("ghost", "missing")], "ghost", "not a file extracted before it");
    // A link inside the root, then a file written through it.
    refused(
        &[Entry::Dir("real/"), Entry::Symlink("alias", "real"), Entry::File("alias/x", b"1", 0o644)],
        "alias/x",
        "symbolic link alias",
    );
    // Chained links: each one's text stays inside, together they resolve to the root's parent.
    refused(
        &[Entry::Symlink("l1", "."), Entry::Symlink("x", "l1/l1/../../etc")],
        "x",
        "resolves outside the root",
    );
    refused(
        &[Entry::Symlink("x", "l1/l1/../../etc"), Entry::Symlink("l1", ".")],
        "x",
        "resolves outside the root",
    );
    refused(
        &[
            Entry::Dir("a/"),
            Entry::Symlink("a/up", ".."),
            Entry::Dir("a/b/"),
            Entry::Symlink("a/b/esc", "../up/../.."),
        ],
        "a/b/esc",
        "resolves outside the root",
    );
    refused(&[Entry::Symlink("m", "missing/../../etc")], "m", "outside the root");
    refused(&[Entry::Device("null")], "null", "device node");
    refused(&[Entry::Fifo("pipe")], "pipe", "FIFO");
    assert!(!Path::new("/tmp/kiln-absolute").exists());
}

#[test]
fn truncated_and_garbage_archives_are_errors() {
    let work = tempfile::tempdir().unwrap();
    let whole = tar(GOOD);
    for (name, bytes) in [("cut.tar", &whole[..700]), ("noise.tar", &[7u8; 3000][..])] {
        let archive = write(work.path(), name, bytes);
        let dest = work.path().join(format!("{name}.d"));
        let error = extract::extract(&archive, &dest, Options::default()).unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
        assert!(!dest.exists());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&whole).unwrap();
    let gz = gz.finish().unwrap();
    let archive = write(work.path(), "cut.tar.gz", &gz[..gz.len() / 2]);
    assert!(extract::extract(&archive, &work.path().join("gz.d"), Options::default()).is_err());
    assert!(!work.path().join("gz.d").exists());
}

#[expect(clippy::print_stderr, reason = "a skipped test must say why")]
fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).status().unwrap().success();
    assert!(found || std::env::var_os("CI").is_none(), "CI requires {tool}; run scripts/install-deps");
    if !found {
        eprintln!("skipped: {tool} is not installed; run scripts/install-deps");
    }
    found
}

#[test]
fn a_deb_extracts_as_dpkg_deb_does() {
    if !require_tool("dpkg-deb") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let package = work.path().join("pkg");
    fs::create_dir_all(package.join("DEBIAN")).unwrap();
    fs::write(
        package.join("DEBIAN/control"),
        "Package: kiln-test\nVersion: 1.2-3\nArchitecture: amd64\nMaintainer: kiln <kiln@example.org>\n\
         Description: a test package\n two lines\n",
    )
    .unwrap();
    fs::create_dir_all(package.join("usr/bin")).unwrap();
    fs::create_dir_all(package.join("usr/lib/kiln")).unwrap();
    fs::write(package.join("usr/lib/kiln/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(package.join("usr/lib/kiln/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    // Debian policy: links across top-level directories are absolute.
    std::os::unix::fs::symlink("/usr/lib/kiln/tool", package.join("usr/bin/tool")).unwrap();
    std::os::unix::fs::symlink("../lib/kiln/tool", package.join("usr/bin/tool2")).unwrap();
    for compression in ["xz", "zstd", "gzip", "none"] {
        let deb = work.path().join(format!("kiln-test-{compression}.deb"));
        let status = Command::new("dpkg-deb")
            .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
            .arg(&package)
            .arg(&deb)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let ours = work.path().join(format!("ours-{compression}"));
        extract::extract(&deb, &ours, Options::default()).unwrap();
        let theirs = work.path().join(format!("theirs-{compression}"));
        assert!(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&theirs).status().unwrap().success());
        // dpkg-deb keeps the absolute link; kiln points it at the same file inside the root.
        let mut expected = listing(&theirs);
        for line in &mut expected {
            if line == "usr/bin/tool -> /usr/lib/kiln/tool" {
                *line = "usr/bin/tool -> ../lib/kiln/tool".into();
            }
        }
        assert_eq!(listing(&ours), expected, "{compression}");
        assert_eq!(fs::read(ours.join("usr/bin/tool")).unwrap(), b"#!/bin/sh\necho hi\n");

        let control = kiln_builder::deb::control(&deb).unwrap();
        assert_eq!(control.get("Package"), Some("kiln-test"));
        assert_eq!(control.get("Version"), Some("1.2-3"));
        assert_eq!(control.get("Description"), Some("a test package\ntwo lines"));
    }
}

#[test]
fn image_layers_apply_whiteouts_in_order() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let options = Options { whiteouts: true, ..Options::default() };
    let lower = tar(&[
        Entry::Dir("a/"),
        Entry::File("a/x", b"x", 0o644),
        Entry::File("a/y", b"y", 0o644),
        Entry::Dir("b/"),
        Entry::File("b/f", b"f", 0o644),
        Entry::Dir("c/"),
        Entry::File("c/old", b"old", 0o644),
        Entry::Dir("d/"),
        Entry::File("d/inner", b"i", 0o644),
    ]);
    let upper = tar(&[
        Entry::File("a/.wh.x", b"", 0o644),
        Entry::File(".wh.b", b"", 0o644),
        Entry::Dir("c/"),
        Entry::File("c/.wh..wh..opq", b"", 0o644),
        Entry::File("c/new", b"new", 0o644),
        // A file where the lower layer had a directory.
        Entry::File("d", b"now a file", 0o644),
    ]);
    for (name, layer) in [("lower.tar", lower), ("upper.tar", upper)] {
        extract::extract_tar(Path::new(name), &layer[..], &root, options).unwrap();
    }
    let names: Vec<String> = listing(&root).iter().map(|l| l.split(' ').next().unwrap().to_owned()).collect();
    assert_eq!(names, ["a/", "a/y", "c/", "c/new", "d"]);
    assert_eq!(fs::read(root.join("d")).unwrap(), b"now a file");
    // Without whiteouts (a plain tarball), `.wh.` names are ordinary files.
    let plain = work.path().join("plain");
    fs::create_dir(&plain).unwrap();
    extract::extract_tar(
        Path::new("plain.tar"),
        &tar(&[Entry::File(".wh.b", b"", 0o644)])[..],
        &plain,
        Options::default(),
    )
    .unwrap();
    assert!(plain.join(".wh.b").is_file());
}

/// Whiteouts that name the directory itself, its parent or a reserved name delete nothing: the
/// layer is refused and everything beside the root (other extracted trees) stays.
#[test]
fn hostile_whiteouts_are_refused_and_delete_nothing() {
    for whiteout in [".wh..", ".wh...", "a/.wh..", "a/.wh...", ".wh.", ".wh..wh.x", "a/.wh..wh..."] {
        let work = tempfile::tempdir().unwrap();
        let unpacked = work.path().join("unpacked");
        let root = unpacked.join("root");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(unpacked.join("neighbour"), "another extracted tree").unwrap();
        fs::write(root.join("a/kept"), "kept").unwrap();
        let options = Options { whiteouts: true, ..Options::default() };
        let layer = tar(&[Entry::File(whiteout, b"", 0o644)]);
        let error = extract::extract_tar(Path::new("layer.tar"), &layer[..], &root, options).unwrap_err();
        assert!(error.to_string().contains("names no entry"), "{whiteout}: {error}");
        assert_eq!(fs::read_to_string(unpacked.join("neighbour")).unwrap(), "another extracted tree");
        assert_eq!(fs::read_to_string(root.join("a/kept")).unwrap(), "kept", "{whiteout}");
    }
}

/// A directory of a layer replaced by a link later in the same layer: the directory's mode is
/// not given to what the link points at.
#[test]
fn a_directory_replaced_by_a_link_keeps_its_mode_off_the_target() {
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let options = Options { whiteouts: true, ..Options::default() };
    // A link whose text stays inside (so only resolving it shows where it goes).
    let layer = tar(&[
        Entry::Dir("d/"),
        Entry::Symlink("l", "."),
        Entry::File(".wh.d", b"", 0o644),
        Entry::Symlink("d", "l/l/../../outside"),
    ]);
    let error = extract::extract_tar(Path::new("layer.tar"), &layer[..], &root, options).unwrap_err();
    assert!(error.to_string().contains("resolves outside the root"), "{error}");
    assert_eq!(fs::metadata(&outside).unwrap().permissions().mode() & 0o7777, 0o700);
}

/// Two layers whose links are harmless one by one and leave the root together.
#[test]
fn links_from_two_layers_are_judged_together() {
    let work = tempfile::tempdir().unwrap();
    let first = tar(&[Entry::Symlink("x", "l1/l1/../../etc")]);
    let second = tar(&[Entry::Symlink("l1", ".")]);
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let options = Options { whiteouts: true, ..Options::default() };
    extract::extract_tar(Path::new("first.tar"), &first[..], &root, options).unwrap();
    let error = extract::extract_tar(Path::new("second.tar"), &second[..], &root, options).unwrap_err();
    assert!(error.to_string().contains("resolves outside the root"), "{error}");
}
