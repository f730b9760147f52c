//! Property tests in the manner of a fuzzer (the cargo-fuzz targets in `fuzz/` need a nightly
//! toolchain): random archives of hostile entries — `..`, absolute paths, links and chains of
//! links, whiteouts, hard links, names that repeat — extracted as source tarballs, image layers
//! and shared-cache entries; random and mutated recipes. Extraction either fails or leaves a
//! tree whose every link resolves inside it, and nothing outside the root ever changes; a
//! recipe either loads or fails naming its file.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test on any unexpected error")]

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use kiln_builder::extract::{self, Options};
use proptest::prelude::*;

/// Names entries are made of: ordinary ones, ones that repeat, and hostile ones.
const NAMES: &[&str] = &[
    "a",
    "b",
    "a/b",
    "a/b/c",
    "d",
    "l1",
    "l2",
    "x",
    ".wh.a",
    ".wh..",
    ".wh...",
    ".wh.",
    "a/.wh.b",
    "a/.wh..wh..opq",
    ".wh..wh.x",
    "..",
    "../x",
    "a/../../x",
    "/abs",
    "./a",
    "a//b",
    "",
    ".",
];

/// Where links are made: few names, so that chains form.
const LINK_NAMES: &[&str] = &["l1", "l2", "x", "a/up", "a/b/esc"];

/// Targets links point at: inside, through other links, out.
const TARGETS: &[&str] = &[
    ".",
    "..",
    "a",
    "a/b",
    "l1",
    "l1/l1",
    "l1/l1/../../etc",
    "../up",
    "l2/..",
    "/",
    "/etc",
    "x/../..",
    "missing/../../etc",
    "b/../a",
    "../../../../tmp",
    "a/b/c/../../..",
];

#[derive(Debug, Clone)]
enum Entry {
    Dir(usize),
    File(usize, u8),
    Link(usize, usize),
    Hard(usize, usize),
}

fn entry() -> impl Strategy<Value = Entry> {
    let name = 0..NAMES.len();
    prop_oneof![
        1 => name.clone().prop_map(Entry::Dir),
        1 => (name.clone(), any::<u8>()).prop_map(|(n, b)| Entry::File(n, b)),
        4 => (0..LINK_NAMES.len(), 0..TARGETS.len()).prop_map(|(n, t)| Entry::Link(n, t)),
        1 => (name.clone(), name).prop_map(|(n, t)| Entry::Hard(n, t)),
    ]
}

/// A tar of `entries` with raw names (tar's setters refuse `..`, which is the point here).
fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, kind, data, link): (&str, tar::EntryType, Vec<u8>, &str) = match entry {
            Entry::Dir(n) => (NAMES[*n], tar::EntryType::Directory, Vec::new(), ""),
            Entry::File(n, byte) => (NAMES[*n], tar::EntryType::Regular, vec![*byte; 3], ""),
            Entry::Link(n, t) => (LINK_NAMES[*n], tar::EntryType::Symlink, Vec::new(), TARGETS[*t]),
            Entry::Hard(n, t) => (NAMES[*n], tar::EntryType::Link, Vec::new(), NAMES[*t]),
        };
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o755);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Every path under `dir` with its kind, mode and content: what must not change.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_file() { fs::read(&path).unwrap() } else { Vec::new() };
            if meta.is_dir() {
                pending.push(path.clone());
            }
            out.push((path, meta.mode(), content));
        }
    }
    out.sort();
    out
}

/// Extracts `layers` one over the other into a root beside a sentinel tree, with `options`;
/// checks that the sentinel tree did not change and that a finished tree has no link leading
/// out.
fn extract_layers(layers: &[Vec<Entry>], options: Options) {
    let work = tempfile::tempdir().unwrap();
    let sentinel = work.path().join("neighbour");
    fs::create_dir_all(sentinel.join("etc")).unwrap();
    fs::write(sentinel.join("etc/passwd"), "root").unwrap();
    let root = work.path().join("unpacked/root");
    fs::create_dir_all(&root).unwrap();
    fs::write(work.path().join("unpacked/other-tree"), "another source").unwrap();
    let before = (snapshot(&sentinel), fs::read(work.path().join("unpacked/other-tree")).unwrap());
    let mut failed = false;
    for (i, layer) in layers.iter().enumerate() {
        let bytes = tar(layer);
        if extract::extract_tar(Path::new(&format!("layer{i}.tar")), &bytes[..], &root, options).is_err() {
            failed = true;
            break;
        }
    }
    let after = (snapshot(&sentinel), fs::read(work.path().join("unpacked/other-tree")).unwrap());
    assert_eq!(before, after, "something outside the root changed");
    if !failed {
        assert_eq!(kiln_builder::beneath::leaving_link(&root).unwrap(), None, "a link leads out");
    }
    // The root may be left partly written (the caller removes it); it is always removable.
    let chmod = std::process::Command::new("chmod").arg("-R").arg("u+rwx").arg(&root).status().unwrap();
    assert!(chmod.success());
    fs::remove_dir_all(&root).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_source_tarballs_never_write_outside_or_leave_links_out(entries in prop::collection::vec(entry(), 0..12)) {
        extract_layers(&[entries], Options::default());
    }

    #[test]
    fn hostile_image_layers_never_write_outside_or_leave_links_out(
        layers in prop::collection::vec(prop::collection::vec(entry(), 0..8), 1..4),
    ) {
        let options = Options {
            absolute_links: extract::AbsoluteLinks::RelativeToRoot,
            whiteouts: true,
            ..Options::default()
        };
        extract_layers(&layers, options);
    }

    #[test]
    fn hostile_shared_cache_entries_never_write_outside_or_leave_links_out(entries in prop::collection::vec(entry(), 0..12)) {
        // As a pulled entry is extracted: exact modes, at most the bytes its config says.
        extract_layers(&[entries], Options { exact_modes: true, max_bytes: Some(7), ..Options::default() });
    }
}

/// The smoke recipe, a realistic start for mutations.
fn smoke_text() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipes/smoke/kiln.toml")).unwrap()
}

/// Parses `text` as a recipe in a directory with a few of the files recipes name.
fn parse(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("kernel")).unwrap();
    fs::write(dir.path().join("kernel/signing.seed"), [1u8; 32]).unwrap();
    let path = dir.path().join("kiln.toml");
    match kiln_builder::recipe::Recipe::parse(dir.path(), &path, text) {
        Ok(recipe) => {
            let _ = recipe.order();
        }
        Err(error) => assert!(error.to_string().contains("kiln.toml"), "{error}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_recipes_load_or_name_their_file(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4usize, "[ -~\\n\\[\\]\"=.]{0,6}"), 1..6),
    ) {
        let mut text = smoke_text().into_bytes();
        for (at, cut, insert) in edits {
            let at = at.index(text.len() + 1);
            let end = (at + cut).min(text.len());
            text.splice(at..end, insert.into_bytes());
        }
        parse(&String::from_utf8_lossy(&text));
    }

    #[test]
    fn random_recipes_load_or_name_their_file(
        pieces in prop::collection::vec(prop_oneof![
            Just("[recipe]\nname = \"r\"\n".to_owned()),
            Just("[sources.s]\npath = \"/etc/passwd\"\n".to_owned()),
            Just("[sources.s]\npath = \"../../x\"\nsha256 = \"00\"\n".to_owned()),
            Just("package = \"p\"\n".to_owned()),
            Just("locked = true\n".to_owned()),
            Just("url = \"file:///etc/passwd\"\n".to_owned()),
            Just("image = \"reg/x:1\"\n".to_owned()),
            Just("[steps.a]\ninputs = [\"a\"]\nscript = \"true\"\n".to_owned()),
            Just("[steps.b]\ninputs = [\"s\", \"c\"]\nscript = \"x\"\n".to_owned()),
            Just("[images.\"i:v\"]\nfrom = \"a\"\npath = \"../..\"\n".to_owned()),
            Just("[images.\"i:v\"]\nbase = \"i:v\"\n".to_owned()),
            Just("[kernel]\nsource = \"s\"\n".to_owned()),
            Just("[talos]\nversion = \"v1\"\ninitramfs = \"a/../x\"\n".to_owned()),
            Just("[extensions.e]\nversion = \"1\"\nrootfs = [\"a/../../etc\"]\n".to_owned()),
            "[ -~\n]{0,12}".prop_map(|s: String| s),
        ], 0..10),
    ) {
        parse(&pieces.concat());
    }
}

/// Sanity for the generators: an ordinary archive extracts.
#[test]
fn an_ordinary_archive_extracts() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    fs::create_dir(&root).unwrap();
    let bytes = tar(&[Entry::Dir(0), Entry::File(2, 7), Entry::Link(0, 3)]);
    extract::extract_tar(Path::new("ok.tar"), &bytes[..], &root, Options::default()).unwrap();
    assert_eq!(fs::read(root.join("a/b")).unwrap(), [7, 7, 7]);
    assert_eq!(fs::read_link(root.join("l1")).unwrap(), Path::new("a/b"));
}
