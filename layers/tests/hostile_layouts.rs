//! Hostile layouts and index graphs: the fuzzing of layout reading and index walking.
//!
//! proptest drives random index graphs (nested, shared, repeated, deeper than kiln follows) in
//! memory, where every document read is counted, and random layouts on disk, each mutated once
//! where it hurts: a flipped byte, a truncated or extended blob, a lying size in `index.json`, a
//! blob replaced by a symbolic link to the same bytes, a FIFO, a directory, or nothing. Reading
//! must never panic, never read a document twice, stay within the limits, and fail on every
//! corruption (cargo-fuzz targets for the same code are in `fuzz/`; they need nightly).

#![expect(clippy::unwrap_used, reason = "tests fail on any unexpected error")]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use kiln_layers::digest::Digest;
use kiln_layers::inspect::{self, Content, Documents, Image};
use kiln_layers::oci::layout::{Layout, LayoutWriter};
use kiln_layers::oci::limits::{LimitError, MAX_DESCRIPTORS, MAX_INDEX_DEPTH};
use kiln_layers::oci::media_type;
use kiln_layers::oci::spec::{Descriptor, ImageConfig, Index, Manifest};
use proptest::prelude::*;
use serde_json::json;

/// A graph of documents: level 0 holds image manifests (each with its config), level `i > 0`
/// indexes listing documents of level `i - 1` (by position, repeats allowed); the top is the
/// last level's first document.
#[derive(Debug, Clone)]
struct Graph {
    levels: Vec<Vec<Vec<usize>>>,
    manifests: usize,
}

fn graph() -> impl Strategy<Value = Graph> {
    (1usize..4, 0usize..13).prop_flat_map(|(manifests, depth)| {
        let level = proptest::collection::vec(proptest::collection::vec(0usize..64, 1..5), 1..4);
        (Just(manifests), proptest::collection::vec(level, depth))
            .prop_map(|(manifests, levels)| Graph { levels, manifests })
    })
}

/// The documents of a graph: their bytes by digest, the top's descriptor, and how many
/// distinct documents (manifests, configs, indexes) the top reaches.
struct Built {
    blobs: HashMap<Digest, Vec<u8>>,
    top: Descriptor,
    reachable: usize,
    depth: usize,
}

fn document(blobs: &mut HashMap<Digest, Vec<u8>>, media_type: &str, value: &serde_json::Value) -> Descriptor {
    let bytes = serde_json::to_vec(value).unwrap();
    let digest = Digest::sha256_of(&bytes);
    let descriptor = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
    blobs.insert(digest, bytes);
    descriptor
}

fn build(graph: &Graph) -> Built {
    let mut blobs = HashMap::new();
    let mut below: Vec<Descriptor> = (0..graph.manifests)
        .map(|i| {
            let config = document(
                &mut blobs,
                media_type::IMAGE_CONFIG,
                &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                        "config": {"Env": [format!("N={i}")]}}),
            );
            let layer = json!({"mediaType": media_type::LAYER_TAR, "digest": Digest::sha256_of(&[i as u8]).to_string(), "size": i});
            document(
                &mut blobs,
                media_type::IMAGE_MANIFEST,
                &json!({"schemaVersion": 2, "mediaType": media_type::IMAGE_MANIFEST,
                        "config": config, "layers": [layer]}),
            )
        })
        .collect();
    for level in &graph.levels {
        below = level
            .iter()
            .map(|picks| {
                let children: Vec<&Descriptor> = picks.iter().map(|p| &below[p % below.len()]).collect();
                document(
                    &mut blobs,
                    media_type::IMAGE_INDEX,
                    &json!({"schemaVersion": 2, "mediaType": media_type::IMAGE_INDEX, "manifests": children}),
                )
            })
            .collect();
    }
    let top = below[0].clone();
    // What the top reaches, each document once.
    let mut seen = BTreeSet::new();
    let mut stack = vec![top.clone()];
    while let Some(descriptor) = stack.pop() {
        if !seen.insert(descriptor.digest.clone()) {
            continue;
        }
        let bytes = &blobs[&descriptor.digest];
        if media_type::is_index(&descriptor.media_type) {
            stack.extend(serde_json::from_slice::<Index>(bytes).unwrap().manifests);
        } else {
            let manifest: Manifest = serde_json::from_slice(bytes).unwrap();
            seen.insert(manifest.config.digest);
        }
    }
    Built { blobs, top, reachable: seen.len(), depth: graph.levels.len() }
}

/// Documents in memory, checked like a layout checks them, every read counted.
struct Memory<'a> {
    blobs: &'a HashMap<Digest, Vec<u8>>,
    reads: RefCell<Vec<Digest>>,
}

#[derive(Debug)]
enum MemoryError {
    Corrupt,
    Limit(LimitError),
}

impl From<LimitError> for MemoryError {
    fn from(error: LimitError) -> Self {
        MemoryError::Limit(error)
    }
}

impl Memory<'_> {
    fn read<T: serde::de::DeserializeOwned>(&self, descriptor: &Descriptor) -> Result<T, MemoryError> {
        self.reads.borrow_mut().push(descriptor.digest.clone());
        let bytes = self.blobs.get(&descriptor.digest).ok_or(MemoryError::Corrupt)?;
        if bytes.len() as u64 != descriptor.size || Digest::sha256_of(bytes) != descriptor.digest {
            return Err(MemoryError::Corrupt);
        }
        serde_json::from_slice(bytes).map_err(|_| MemoryError::Corrupt)
    }
}

impl Documents for Memory<'_> {
    type Error = MemoryError;

    fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, MemoryError> {
        self.read(descriptor)
    }

    fn nested_index(&self, descriptor: &Descriptor) -> Result<Index, MemoryError> {
        self.read(descriptor)
    }

    fn config(&self, descriptor: &Descriptor) -> Result<ImageConfig, MemoryError> {
        self.read(descriptor)
    }
}

/// Entries of a described image, itself included.
fn entries(image: &Image) -> usize {
    1 + match &image.content {
        Content::Index { manifests } => manifests.iter().map(entries).sum(),
        _ => 0,
    }
}

/// Writes a graph as a layout in `dir` naming the top `app:v1`.
fn write_layout(dir: &Path, built: &Built) {
    let mut writer = LayoutWriter::create_or_update(dir).unwrap();
    for bytes in built.blobs.values() {
        writer.put_blob(bytes).unwrap();
    }
    writer.set(&"app:v1".parse().unwrap(), built.top.clone());
    writer.commit().unwrap();
}

/// One corruption of a layout.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
    Remove,
    LinkToSameBytes,
    Fifo,
    Directory,
    /// `index.json`'s entry for the top gets another size.
    IndexSize(u64),
    /// `index.json`'s entry for the top points at a digest nothing has.
    IndexDigest([u8; 8]),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::FlipByte(i, m)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        Just(Mutation::Remove),
        Just(Mutation::LinkToSameBytes),
        Just(Mutation::Fifo),
        Just(Mutation::Directory),
        prop_oneof![Just(0u64), 1u64..10_000, Just(u64::MAX), (1u64 << 22)..(1u64 << 40)]
            .prop_map(Mutation::IndexSize),
        any::<[u8; 8]>().prop_map(Mutation::IndexDigest),
    ]
}

/// Applies `mutation` to the document `victim` (an index of reachable documents) of the layout
/// at `dir`; `outside` is a directory beside it.
fn mutate(dir: &Path, outside: &Path, built: &Built, victim: &Digest, mutation: &Mutation) {
    let path = dir.join("blobs/sha256").join(victim.encoded());
    let bytes = &built.blobs[victim];
    match mutation {
        Mutation::FlipByte(at, mask) => {
            let mut bytes = bytes.clone();
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
            std::fs::write(&path, bytes).unwrap();
        }
        Mutation::Truncate(at) => std::fs::write(&path, &bytes[..at.index(bytes.len())]).unwrap(),
        Mutation::Extend(more) => std::fs::write(&path, [bytes.as_slice(), more].concat()).unwrap(),
        Mutation::Remove => std::fs::remove_file(&path).unwrap(),
        Mutation::LinkToSameBytes => {
            let copy = outside.join(victim.encoded());
            std::fs::write(&copy, bytes).unwrap();
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(&copy, &path).unwrap();
        }
        Mutation::Fifo => {
            std::fs::remove_file(&path).unwrap();
            rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, 0o644.into(), 0).unwrap();
        }
        Mutation::Directory => {
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        }
        Mutation::IndexSize(size) => {
            let mut index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
            let size = if *size == built.top.size { size.wrapping_add(1) } else { *size };
            index["manifests"][0]["size"] = json!(size);
            std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        }
        Mutation::IndexDigest(seed) => {
            let mut index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
            index["manifests"][0]["digest"] = json!(Digest::sha256_of(seed).to_string());
            std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        }
    }
}

/// The distinct documents (and configs) the top reaches, in a stable order.
fn reachable(built: &Built) -> Vec<Digest> {
    let memory = Memory { blobs: &built.blobs, reads: RefCell::new(Vec::new()) };
    let _ = inspect::image(&memory, &built.top);
    let mut digests = memory.reads.into_inner();
    digests.sort();
    digests.dedup();
    digests
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any index graph: each document read at most once, never deeper than the limit, and a
    /// graph within the limits described in full.
    #[test]
    fn index_graphs_are_walked_once_per_document_and_never_too_deep(graph in graph()) {
        let built = build(&graph);
        let memory = Memory { blobs: &built.blobs, reads: RefCell::new(Vec::new()) };
        let result = inspect::image(&memory, &built.top);
        let reads = memory.reads.into_inner();
        let distinct: BTreeSet<&Digest> = reads.iter().collect();
        prop_assert_eq!(distinct.len(), reads.len(), "a document was read twice");
        prop_assert!(reads.len() <= built.reachable);
        match result {
            Ok(image) => {
                prop_assert!(built.depth <= MAX_INDEX_DEPTH);
                prop_assert_eq!(reads.len(), built.reachable);
                prop_assert!(entries(&image) <= MAX_DESCRIPTORS);
            }
            Err(MemoryError::Limit(LimitError::TooDeep { depth, .. })) => {
                prop_assert!(built.depth > MAX_INDEX_DEPTH);
                prop_assert_eq!(depth, MAX_INDEX_DEPTH + 1);
                // Nothing below the limit was read.
                prop_assert!(reads.len() <= built.reachable);
            }
            Err(MemoryError::Limit(LimitError::TooManyDescriptors { .. })) => {}
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    /// A layout on disk, mutated once where inspect reads: always an error, never a panic.
    #[test]
    fn every_corruption_of_a_layout_is_an_error(graph in graph(), pick in any::<prop::sample::Index>(), mutation in mutation()) {
        // Depth beyond the limit is the in-memory test's; here every document is reached.
        let mut graph = graph;
        graph.levels.truncate(4);
        let built = build(&graph);
        let work = tempfile::tempdir().unwrap();
        let (dir, outside) = (work.path().join("layout"), work.path().join("outside"));
        std::fs::create_dir(&outside).unwrap();
        write_layout(&dir, &built);
        let layout = Layout::open(&dir).unwrap();
        let intact = inspect::inspect(&layout);
        prop_assert!(intact.is_ok(), "{intact:?}");
        let targets = reachable(&built);
        let victim = &targets[pick.index(targets.len())];
        mutate(&dir, &outside, &built, victim, &mutation);
        let result = Layout::open(&dir).and_then(|layout| inspect::inspect(&layout));
        prop_assert!(result.is_err(), "{mutation:?} of {victim} went unnoticed");
        let error = result.unwrap_err();
        let message = error.to_string();
        prop_assert!(!message.is_empty());
        // Corruption is the layout's fault: bad input, with a hint where there is a next step.
        prop_assert!(error.is_input_error(), "{message}");
    }

    /// Arbitrary bytes as `index.json` or as the top document: an error or a summary, never a
    /// panic, and never a read past a file's length.
    #[test]
    fn arbitrary_bytes_in_a_layout(index in proptest::collection::vec(any::<u8>(), 0..512),
                                   top in proptest::collection::vec(any::<u8>(), 0..512),
                                   as_index in any::<bool>(),
                                   size_delta in -2i64..2) {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let _ = Layout::open(dir);
        std::fs::write(dir.join("index.json"), &index).unwrap();
        let _ = Layout::open(dir).map(|layout| inspect::inspect(&layout));
        let digest = Digest::sha256_of(&top);
        std::fs::write(dir.join("blobs/sha256").join(digest.encoded()), &top).unwrap();
        let media = if as_index { media_type::IMAGE_INDEX } else { media_type::IMAGE_MANIFEST };
        let size = (top.len() as u64).saturating_add_signed(size_delta);
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": media, "digest": digest.to_string(), "size": size,
                           "annotations": {"org.opencontainers.image.ref.name": "x:1"}}]});
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        let result = Layout::open(dir).and_then(|layout| inspect::inspect(&layout));
        if size_delta != 0 {
            prop_assert!(result.is_err());
        }
    }
}

#[test]
fn a_chain_of_thousands_stops_at_the_limit_without_reading_further() {
    let graph = Graph { levels: vec![vec![vec![0]]; 3000], manifests: 1 };
    let built = build(&graph);
    let memory = Memory { blobs: &built.blobs, reads: RefCell::new(Vec::new()) };
    let result = inspect::image(&memory, &built.top);
    assert!(matches!(result, Err(MemoryError::Limit(LimitError::TooDeep { .. }))), "{result:?}");
    assert_eq!(memory.reads.borrow().len(), MAX_INDEX_DEPTH + 1);
}

#[test]
fn a_fan_out_is_read_once_and_shown_within_the_limit() {
    // Eight levels each listing the level below twice: 2^8 paths, nine documents and a config.
    let graph = Graph { levels: vec![vec![vec![0, 0]]; 8], manifests: 1 };
    let built = build(&graph);
    let memory = Memory { blobs: &built.blobs, reads: RefCell::new(Vec::new()) };
    let image = inspect::image(&memory, &built.top).unwrap();
    assert_eq!(memory.reads.borrow().len(), 10);
    assert_eq!(entries(&image), (1 << 9) - 1);
    // Sixteen times per level: shown in full it would be 16^8 entries.
    let graph = Graph { levels: vec![vec![vec![0; 16]]; 8], manifests: 1 };
    let built = build(&graph);
    let memory = Memory { blobs: &built.blobs, reads: RefCell::new(Vec::new()) };
    let result = inspect::image(&memory, &built.top);
    assert!(matches!(result, Err(MemoryError::Limit(LimitError::TooManyDescriptors { .. }))), "{result:?}");
    assert!(memory.reads.borrow().len() <= 10);
}
