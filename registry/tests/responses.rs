//! Hostile registry responses: the fuzzing of the client's reading of what a registry sends.
//!
//! proptest drives random index graphs served by a loopback server, each response possibly
//! mutated (a flipped byte, a truncated or extended body, a body for another digest, garbage),
//! through `inspect` and `pull`: never a panic, never a document fetched twice by one pull,
//! never more requests than the graph has documents, and an error for every corruption. (The
//! credential rule and the `WWW-Authenticate` parser have their own properties next to the code;
//! cargo-fuzz targets are in `fuzz/`.)

#![expect(clippy::unwrap_used, reason = "tests fail on any unexpected error")]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_layers::digest::Digest;
use kiln_layers::inspect;
use kiln_layers::oci::limits::MAX_INDEX_DEPTH;
use kiln_layers::oci::media_type;
use kiln_layers::oci::spec::{Descriptor, Index, Manifest};
use kiln_registry::client::{Client, ClientOptions, RetryPolicy};
use kiln_registry::pull::{self, Remote};
use proptest::prelude::*;
use serde_json::json;

/// Responses by path, and the paths asked for.
#[derive(Default)]
struct State {
    responses: HashMap<String, (String, Vec<u8>)>,
    asked: Vec<String>,
}

/// A loopback registry answering `GET` from [`State`], one request per connection.
struct Server {
    address: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(responses: HashMap<String, (String, Vec<u8>)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State { responses, asked: Vec::new() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = answer(stream, &thread_state);
            }
        });
        Server { address, state, stop }
    }

    fn asked(&self) -> Vec<String> {
        self.state.lock().unwrap().asked.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.address);
    }
}

fn answer(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let response = {
        let mut state = state.lock().unwrap();
        state.asked.push(path.clone());
        state.responses.get(&path).cloned()
    };
    let mut stream = reader.into_inner();
    let (status, content_type, body) = match response {
        Some((content_type, body)) => (200, content_type, body),
        None => (
            404,
            "application/json".to_owned(),
            br#"{"errors":[{"code":"NOT_FOUND","message":"x"}]}"#.to_vec(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// A random graph: level 0 image manifests, each further level indexes listing the level
/// below (repeats allowed); the top is the last level's first document.
fn graph() -> impl Strategy<Value = (usize, Vec<Vec<Vec<usize>>>)> {
    (
        1usize..3,
        proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(0usize..8, 1..4), 1..3),
            0..11,
        ),
    )
}

struct Built {
    /// Bytes and media type by digest.
    blobs: HashMap<Digest, (String, Vec<u8>)>,
    top: Descriptor,
    depth: usize,
}

fn add(
    blobs: &mut HashMap<Digest, (String, Vec<u8>)>,
    media_type: &str,
    value: serde_json::Value,
) -> Descriptor {
    let bytes = serde_json::to_vec(&value).unwrap();
    let digest = Digest::sha256_of(&bytes);
    let descriptor = Descriptor::new(media_type, digest.clone(), bytes.len() as u64);
    blobs.insert(digest, (media_type.to_owned(), bytes));
    descriptor
}

fn build(manifests: usize, levels: &[Vec<Vec<usize>>]) -> Built {
    let mut blobs = HashMap::new();
    let mut below: Vec<Descriptor> = (0..manifests)
        .map(|i| {
            let layer = {
                let bytes = vec![i as u8; 16 + i];
                let digest = Digest::sha256_of(&bytes);
                blobs.insert(digest.clone(), (media_type::LAYER_TAR.to_owned(), bytes.clone()));
                Descriptor::new(media_type::LAYER_TAR, digest, bytes.len() as u64)
            };
            let config = add(
                &mut blobs,
                media_type::IMAGE_CONFIG,
                json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.digest.to_string()]},
                       "config": {"Env": [format!("N={i}")]}}),
            );
            add(
                &mut blobs,
                media_type::IMAGE_MANIFEST,
                json!({"schemaVersion": 2, "mediaType": media_type::IMAGE_MANIFEST, "config": config, "layers": [layer]}),
            )
        })
        .collect();
    for level in levels {
        below = level
            .iter()
            .map(|picks| {
                let children: Vec<&Descriptor> = picks.iter().map(|p| &below[p % below.len()]).collect();
                add(
                    &mut blobs,
                    media_type::IMAGE_INDEX,
                    json!({"schemaVersion": 2, "mediaType": media_type::IMAGE_INDEX, "manifests": children}),
                )
            })
            .collect();
    }
    Built { top: below[0].clone(), blobs, depth: levels.len() }
}

/// Distinct documents (manifests, indexes) and blobs (configs, layers) the top reaches.
fn reachable(built: &Built) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
    let (mut documents, mut blobs) = (BTreeSet::new(), BTreeSet::new());
    let mut stack = vec![built.top.clone()];
    while let Some(descriptor) = stack.pop() {
        if !documents.insert(descriptor.digest.clone()) {
            continue;
        }
        let bytes = &built.blobs[&descriptor.digest].1;
        if media_type::is_index(&descriptor.media_type) {
            stack.extend(serde_json::from_slice::<Index>(bytes).unwrap().manifests);
        } else {
            let manifest: Manifest = serde_json::from_slice(bytes).unwrap();
            blobs.insert(manifest.config.digest);
            blobs.extend(manifest.layers.into_iter().map(|l| l.digest));
        }
    }
    (documents, blobs)
}

/// What the server answers for a graph: manifests by digest and the tag `v1`, blobs by digest.
fn responses(built: &Built) -> HashMap<String, (String, Vec<u8>)> {
    let mut responses = HashMap::new();
    for (digest, (media, bytes)) in &built.blobs {
        let kind =
            if media_type::is_index(media) || media_type::is_manifest(media) { "manifests" } else { "blobs" };
        responses.insert(format!("/v2/repo/{kind}/{digest}"), (media.clone(), bytes.clone()));
    }
    let (media, bytes) = &built.blobs[&built.top.digest];
    responses.insert("/v2/repo/manifests/v1".into(), (media.clone(), bytes.clone()));
    responses
}

/// One corruption of what the registry sends for a digest.
#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Extend(Vec<u8>),
    /// Another document's bytes.
    Swap(prop::sample::Index),
    Garbage(Vec<u8>),
    Missing,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::FlipByte(i, m)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
        any::<prop::sample::Index>().prop_map(Mutation::Swap),
        proptest::collection::vec(any::<u8>(), 0..256).prop_map(Mutation::Garbage),
        Just(Mutation::Missing),
    ]
}

fn client(address: &str) -> Client {
    let options = ClientOptions {
        insecure_http: true,
        credentials: Some(kiln_registry::auth::Credentials::Anonymous),
        retry: RetryPolicy { attempts: 1, first_backoff: Duration::ZERO, max_backoff: Duration::ZERO },
        ..ClientOptions::default()
    };
    Client::new(address, &options).unwrap()
}

/// `inspect` then `pull` of `repo:v1`; (inspect's result is Ok, pull's result is Ok).
fn run(server: &Server) -> (bool, bool) {
    let client = client(&server.address);
    let remote = Remote::new(&client, "repo");
    let inspected = remote.manifest_bytes("v1").and_then(|(top, _)| inspect::image(&remote, &top));
    let work = tempfile::tempdir().unwrap();
    let reference: kiln_registry::reference::ImageRef =
        format!("{}/repo:v1", server.address).parse().unwrap();
    let pulled = pull::pull(&client, &reference, &work.path().join("out"), &"repo:v1".parse().unwrap());
    if pulled.is_err() {
        assert!(!work.path().join("out").exists(), "a failed pull left a layout behind");
    }
    (inspected.is_ok(), pulled.is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// An honest registry: inspect and pull work within the limits, pull fetches each document
    /// and blob once, and nothing is asked for beyond what the graph holds.
    #[test]
    fn honest_graphs_within_the_limits((manifests, levels) in graph()) {
        let built = build(manifests, &levels);
        let server = Server::start(responses(&built));
        let (inspected, pulled) = run(&server);
        let (documents, blobs) = reachable(&built);
        let asked = server.asked();
        if built.depth > MAX_INDEX_DEPTH {
            prop_assert!(!inspected && !pulled);
        } else {
            prop_assert!(pulled, "{asked:?}");
            // Descriptor limits may stop inspect of a wide graph, never pull.
            let _ = inspected;
        }
        // pull: the tag once, each document and blob at most once.
        let pull_asked = &asked[asked.iter().rposition(|p| p.ends_with("/manifests/v1")).unwrap()..];
        let distinct: BTreeSet<&String> = pull_asked.iter().collect();
        prop_assert_eq!(distinct.len(), pull_asked.len(), "{:?}", pull_asked);
        prop_assert!(pull_asked.len() <= 1 + documents.len() + blobs.len());
        prop_assert!(asked.len() <= 2 * (1 + documents.len() + blobs.len()));
    }

    /// One response corrupted where both inspect and pull read it: both fail, nothing panics.
    #[test]
    fn every_corrupt_response_is_an_error((manifests, levels) in graph(), pick in any::<prop::sample::Index>(), mutation in mutation()) {
        let mut levels = levels;
        levels.truncate(MAX_INDEX_DEPTH);
        let built = build(manifests, &levels);
        let (documents, _) = reachable(&built);
        // Inspect reads documents and configs; pull reads everything: corrupt a document.
        let documents: Vec<&Digest> = documents.iter().collect();
        let victim = documents[pick.index(documents.len())];
        let mut responses = responses(&built);
        let path = format!("/v2/repo/manifests/{victim}");
        let (media, bytes) = responses[&path].clone();
        let corrupt = match &mutation {
            Mutation::FlipByte(at, mask) => {
                let mut bytes = bytes.clone();
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
                Some(bytes)
            }
            Mutation::Truncate(at) => Some(bytes[..at.index(bytes.len())].to_vec()),
            Mutation::Extend(more) => Some([bytes.as_slice(), more].concat()),
            Mutation::Swap(other) => {
                let all: Vec<&(String, Vec<u8>)> = built.blobs.values().filter(|(_, b)| *b != bytes).collect();
                (!all.is_empty()).then(|| all[other.index(all.len())].1.clone())
            }
            Mutation::Garbage(garbage) => Some(garbage.clone()).filter(|g| *g != bytes),
            Mutation::Missing => None,
        };
        match corrupt {
            Some(corrupt) => {
                responses.insert(path.clone(), (media.clone(), corrupt.clone()));
                if *victim == built.top.digest {
                    responses.insert("/v2/repo/manifests/v1".into(), (media, corrupt));
                }
            }
            None => {
                responses.remove(&path);
            }
        }
        let server = Server::start(responses);
        let (inspected, pulled) = run(&server);
        // The tag's bytes are whatever the registry says (there is no digest to check them
        // against) unless they were asked for by digest: the top corrupted under its tag is
        // another document, which may be valid.
        if *victim != built.top.digest {
            prop_assert!(!inspected, "{mutation:?} of {victim} went unnoticed by inspect");
            prop_assert!(!pulled, "{mutation:?} of {victim} went unnoticed by pull");
        }
    }
}
