//! How two images differ: manifest → config → layer → file entry.
//!
//! Images are paired by name (or given explicitly). Equal manifest digests end the comparison.
//! Otherwise the manifests and configs are compared field by field (as JSON paths), layers
//! are paired by position, and for each pair whose uncompressed content differs the tar entries
//! are compared: added, removed, and changed with the fields that differ (type, mode, owner,
//! mtime, size, link target, content digest, extended attributes). When entries agree but the
//! streams do not, the report says the difference is in ordering or encoding, which
//! `diffoscope` can show byte by byte.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::compress;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::oci::layout::Layout;
use crate::oci::media_type;
use crate::oci::spec::Descriptor;

/// Result of comparing two layouts or images.
#[derive(Debug, Serialize)]
pub struct Report {
    /// One entry per image name (or the one pair asked for).
    pub images: Vec<ImageDiff>,
}

impl Report {
    /// Whether nothing differs.
    pub fn is_identical(&self) -> bool {
        self.images.iter().all(|i| matches!(i.status, Status::Identical))
    }
}

/// Outcome for one image.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Same manifest digest.
    Identical,
    /// Different manifests.
    Differs,
    /// Only the first layout has it.
    OnlyInA,
    /// Only the second layout has it.
    OnlyInB,
}

/// Differences of one image.
#[derive(Debug, Serialize)]
pub struct ImageDiff {
    /// Image name, or `A-name ↔ B-name` when two differently named images were compared.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Manifest digests of A and B.
    pub manifests: (Option<Digest>, Option<Digest>),
    /// Fields of the manifests that differ (JSON paths).
    pub manifest_fields: Vec<FieldChange>,
    /// Fields of the configs that differ (JSON paths).
    pub config_fields: Vec<FieldChange>,
    /// Layers whose content differs.
    pub layers: Vec<LayerDiff>,
}

/// One differing field.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FieldChange {
    /// JSON path or tar header field.
    pub field: String,
    /// Value in A (absent: `-`).
    pub a: String,
    /// Value in B.
    pub b: String,
}

/// Differences of one layer position.
#[derive(Debug, Serialize)]
pub struct LayerDiff {
    /// Position, base layer 0.
    pub index: usize,
    /// Blob digest in A.
    pub a: Option<Digest>,
    /// Blob digest in B.
    pub b: Option<Digest>,
    /// Entry-level differences.
    pub entries: Vec<EntryChange>,
    /// Set when the entries agree but the tar streams do not (order, header encoding).
    pub stream_note: Option<String>,
}

/// One differing tar entry.
#[derive(Debug, Serialize)]
pub struct EntryChange {
    /// Path inside the layer (non-UTF-8 bytes replaced).
    pub path: String,
    /// What happened to it.
    pub change: Change,
}

/// Kind of entry change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both, with these fields differing.
    Changed(Vec<FieldChange>),
}

/// One side of a comparison: a layout and optionally the name of one image in it.
pub struct Side<'a> {
    /// The layout.
    pub layout: &'a Layout,
    /// The image name, or all named images.
    pub reference: Option<&'a str>,
}

/// Compares two images or layouts.
pub fn diff<'a>(a: &Side<'a>, b: &Side<'a>) -> Result<Report> {
    let pairs: Vec<(String, Option<&Descriptor>, Option<&Descriptor>)> = match (a.reference, b.reference) {
        (Some(ra), Some(rb)) => {
            let name = if ra == rb { ra.to_owned() } else { format!("{ra} ↔ {rb}") };
            vec![(name, Some(a.layout.find(ra)?), Some(b.layout.find(rb)?))]
        }
        (Some(r), None) | (None, Some(r)) => {
            vec![(r.to_owned(), Some(a.layout.find(r)?), Some(b.layout.find(r)?))]
        }
        (None, None) => {
            let names: BTreeSet<&str> = a
                .layout
                .index()
                .manifests
                .iter()
                .chain(&b.layout.index().manifests)
                .filter_map(Descriptor::ref_name)
                .collect();
            let lookup = |layout: &'a Layout, name: &str| {
                layout.index().manifests.iter().find(|d| d.ref_name() == Some(name))
            };
            names.into_iter().map(|n| (n.to_owned(), lookup(a.layout, n), lookup(b.layout, n))).collect()
        }
    };
    let images = pairs
        .into_iter()
        .map(|(name, da, db)| image_diff(name, (a.layout, da), (b.layout, db)))
        .collect::<Result<_>>()?;
    Ok(Report { images })
}

fn image_diff(
    name: String,
    a: (&Layout, Option<&Descriptor>),
    b: (&Layout, Option<&Descriptor>),
) -> Result<ImageDiff> {
    let mut result = ImageDiff {
        name,
        status: Status::Identical,
        manifests: (a.1.map(|d| d.digest.clone()), b.1.map(|d| d.digest.clone())),
        manifest_fields: Vec::new(),
        config_fields: Vec::new(),
        layers: Vec::new(),
    };
    let (da, db) = match (a.1, b.1) {
        (Some(da), Some(db)) => (da, db),
        (Some(_), None) => {
            result.status = Status::OnlyInA;
            return Ok(result);
        }
        _ => {
            result.status = Status::OnlyInB;
            return Ok(result);
        }
    };
    if da.digest == db.digest {
        return Ok(result);
    }
    result.status = Status::Differs;
    let (va, vb) = (json(a.0, da)?, json(b.0, db)?);
    json_diff("", &va, &vb, &mut result.manifest_fields);
    if !(media_type::is_manifest(&da.media_type) && media_type::is_manifest(&db.media_type)) {
        return Ok(result);
    }
    let (ma, mb) = (a.0.manifest(da)?, b.0.manifest(db)?);
    if ma.config.digest != mb.config.digest {
        json_diff("", &json(a.0, &ma.config)?, &json(b.0, &mb.config)?, &mut result.config_fields);
    }
    let (ca, cb) = (a.0.config(&ma.config)?, b.0.config(&mb.config)?);
    for index in 0..ma.layers.len().max(mb.layers.len()) {
        let (la, lb) = (ma.layers.get(index), mb.layers.get(index));
        let same_content = match (ca.rootfs.diff_ids.get(index), cb.rootfs.diff_ids.get(index)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        };
        if same_content && la.map(|l| &l.digest) == lb.map(|l| &l.digest) {
            continue;
        }
        let mut layer = LayerDiff {
            index,
            a: la.map(|l| l.digest.clone()),
            b: lb.map(|l| l.digest.clone()),
            entries: Vec::new(),
            stream_note: None,
        };
        if same_content {
            layer.stream_note = Some("same uncompressed content, different compression".into());
        } else {
            let ea = la.map(|l| read_entries(a.0, l)).transpose()?.unwrap_or_default();
            let eb = lb.map(|l| read_entries(b.0, l)).transpose()?.unwrap_or_default();
            layer.entries = entry_diff(&ea, &eb);
            if layer.entries.is_empty() {
                let order = |e: &Entries| e.order.clone();
                layer.stream_note = Some(if order(&ea) != order(&eb) {
                    "same entries in a different order".into()
                } else {
                    "same entries, different tar encoding (run diffoscope on the two blobs)".into()
                });
            }
        }
        result.layers.push(layer);
    }
    Ok(result)
}

fn json(layout: &Layout, descriptor: &Descriptor) -> Result<Value> {
    let bytes = layout.read_blob(descriptor)?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: layout.blob_path(&descriptor.digest),
        what: "JSON document",
        source,
    })
}

fn json_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                json_diff(
                    &join(key),
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                json_diff(
                    &format!("{path}[{i}]"),
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push(FieldChange { field: path.to_owned(), a: show(a), b: show(b) }),
        _ => {}
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Metadata of one tar entry, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryInfo {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    names: (Vec<u8>, Vec<u8>),
    mtime: u64,
    size: u64,
    link: Option<Vec<u8>>,
    content: Option<String>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct Entries {
    by_path: BTreeMap<Vec<u8>, EntryInfo>,
    order: Vec<Vec<u8>>,
}

fn read_entries(layout: &Layout, descriptor: &Descriptor) -> Result<Entries> {
    let file = layout.open_blob_checked(descriptor)?.take(descriptor.size);
    let unsupported = || Error::UnsupportedMediaType {
        digest: descriptor.digest.clone(),
        media_type: descriptor.media_type.clone(),
    };
    let reader = compress::decoder(&descriptor.media_type, BufReader::new(file)).ok_or_else(unsupported)?;
    let tar_error = |source| Error::Tar { digest: descriptor.digest.clone(), source };
    let mut archive = tar::Archive::new(reader);
    let mut entries = Entries::default();
    for entry in archive.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let path = entry.path_bytes().into_owned();
        let header = entry.header().clone();
        let mut xattrs = BTreeMap::new();
        if let Some(extensions) = entry.pax_extensions().map_err(tar_error)? {
            for extension in extensions {
                let extension = extension.map_err(tar_error)?;
                if let Some(name) = extension.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.insert(name.to_owned(), extension.value_bytes().to_vec());
                }
            }
        }
        let kind = header.entry_type().as_byte() as char;
        let content = if header.entry_type().is_file() {
            let mut hasher = Sha256::new();
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let n = entry.read(&mut buffer).map_err(tar_error)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
            Some(format!("sha256:{}", hex::encode(hasher.finalize())))
        } else {
            None
        };
        let info = EntryInfo {
            kind,
            mode: header.mode().map_err(tar_error)?,
            uid: header.uid().map_err(tar_error)?,
            gid: header.gid().map_err(tar_error)?,
            names: (
                header.username_bytes().unwrap_or_default().to_vec(),
                header.groupname_bytes().unwrap_or_default().to_vec(),
            ),
            mtime: header.mtime().map_err(tar_error)?,
            size: entry.size(),
            link: entry.link_name_bytes().map(|l| l.into_owned()),
            content,
            xattrs,
        };
        entries.order.push(path.clone());
        entries.by_path.insert(path, info);
    }
    Ok(entries)
}

fn entry_diff(a: &Entries, b: &Entries) -> Vec<EntryChange> {
    let paths: BTreeSet<&Vec<u8>> = a.by_path.keys().chain(b.by_path.keys()).collect();
    let mut changes = Vec::new();
    for path in paths {
        let display = show_path(path);
        let change = match (a.by_path.get(path), b.by_path.get(path)) {
            (Some(_), None) => Change::Removed,
            (None, Some(_)) => Change::Added,
            (Some(x), Some(y)) if x != y => Change::Changed(entry_fields(x, y)),
            _ => continue,
        };
        changes.push(EntryChange { path: display, change });
    }
    changes
}

fn entry_fields(x: &EntryInfo, y: &EntryInfo) -> Vec<FieldChange> {
    let mut fields = Vec::new();
    let mut push = |field: &str, a: String, b: String| {
        if a != b {
            fields.push(FieldChange { field: field.to_owned(), a, b });
        }
    };
    let bytes =
        |b: &Option<Vec<u8>>| b.as_ref().map_or("-".into(), |b| String::from_utf8_lossy(b).into_owned());
    push("type", x.kind.to_string(), y.kind.to_string());
    push("mode", format!("{:04o}", x.mode), format!("{:04o}", y.mode));
    push("uid", x.uid.to_string(), y.uid.to_string());
    push("gid", x.gid.to_string(), y.gid.to_string());
    push("uname", String::from_utf8_lossy(&x.names.0).into(), String::from_utf8_lossy(&y.names.0).into());
    push("gname", String::from_utf8_lossy(&x.names.1).into(), String::from_utf8_lossy(&y.names.1).into());
    push("mtime", x.mtime.to_string(), y.mtime.to_string());
    push("size", x.size.to_string(), y.size.to_string());
    push("link", bytes(&x.link), bytes(&y.link));
    push("content", x.content.clone().unwrap_or("-".into()), y.content.clone().unwrap_or("-".into()));
    let xattrs = |m: &BTreeMap<String, Vec<u8>>| {
        m.iter().map(|(k, v)| format!("{k}={}", hex::encode(v))).collect::<Vec<_>>().join(",")
    };
    push("xattrs", xattrs(&x.xattrs), xattrs(&y.xattrs));
    fields
}

/// A path as reports show it (non-UTF-8 bytes replaced).
fn show_path(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Where the contents of one file first differ between two layers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ByteDifference {
    /// Offset of the first differing byte (or the shorter file's length).
    pub offset: u64,
    /// Up to 16 bytes of A from there.
    pub a: Vec<u8>,
    /// Up to 16 bytes of B from there.
    pub b: Vec<u8>,
}

/// The first difference between the contents of the regular file `path` (as
/// [`EntryChange::path`] shows it) in layer `a` of one layout and layer `b` of another; `None`
/// when either lacks it or the contents are equal. The layers' compression is read from their
/// first bytes. The two contents are compared as they stream, so memory does not grow with the
/// file.
pub fn first_difference(
    layout_a: &Layout,
    a: &Digest,
    layout_b: &Layout,
    b: &Digest,
    path: &str,
) -> Result<Option<ByteDifference>> {
    let mut archive_a = layer_archive(layout_a, a)?;
    let Some(mut x) = find_entry(&mut archive_a, a, path)? else { return Ok(None) };
    let mut archive_b = layer_archive(layout_b, b)?;
    let Some(mut y) = find_entry(&mut archive_b, b, path)? else { return Ok(None) };
    const CHUNK: usize = 64 * 1024;
    let (mut bx, mut by) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut offset = 0u64;
    loop {
        let nx = fill(&mut x, &mut bx).map_err(|source| Error::Tar { digest: a.clone(), source })?;
        let ny = fill(&mut y, &mut by).map_err(|source| Error::Tar { digest: b.clone(), source })?;
        let at = bx[..nx].iter().zip(&by[..ny]).position(|(p, q)| p != q).or((nx != ny).then(|| nx.min(ny)));
        if let Some(at) = at {
            // Up to 16 bytes from the difference; a window that crosses the chunk's end is
            // completed from the stream.
            let window = |buffer: &[u8], n: usize, reader: &mut dyn Read| -> std::io::Result<Vec<u8>> {
                let mut bytes = buffer[at.min(n)..(at + 16).min(n)].to_vec();
                if bytes.len() < 16 && n == CHUNK {
                    let mut more = vec![0u8; 16 - bytes.len()];
                    let got = fill(reader, &mut more)?;
                    bytes.extend_from_slice(&more[..got]);
                }
                Ok(bytes)
            };
            let wa = window(&bx, nx, &mut x).map_err(|source| Error::Tar { digest: a.clone(), source })?;
            let wb = window(&by, ny, &mut y).map_err(|source| Error::Tar { digest: b.clone(), source })?;
            return Ok(Some(ByteDifference { offset: offset + at as u64, a: wa, b: wb }));
        }
        if nx == 0 {
            return Ok(None);
        }
        offset += nx as u64;
    }
}

/// Reads until `buffer` is full or the stream ends; the number of bytes read.
fn fill(reader: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

type LayerArchive = tar::Archive<Box<dyn Read>>;

/// A layer blob as a tar archive, its compression read from its first bytes.
fn layer_archive(layout: &Layout, digest: &Digest) -> Result<LayerArchive> {
    let mut file = layout.open_blob(digest)?;
    let mut magic = [0u8; 4];
    let read = file.read(&mut magic).map_err(|e| Error::read("read", layout.blob_path(digest), e))?;
    let media_type = match &magic[..read] {
        [0x1f, 0x8b, ..] => media_type::LAYER_TAR_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => media_type::LAYER_TAR_ZSTD,
        _ => media_type::LAYER_TAR,
    };
    let file = layout.open_blob(digest)?;
    let unsupported =
        || Error::UnsupportedMediaType { digest: digest.clone(), media_type: media_type.to_owned() };
    let reader = compress::decoder(media_type, BufReader::new(file)).ok_or_else(unsupported)?;
    Ok(tar::Archive::new(Box::new(reader)))
}

/// The regular file at the shown path `path` in a layer's archive, to read its content from.
fn find_entry<'a>(
    archive: &'a mut LayerArchive,
    digest: &Digest,
    path: &str,
) -> Result<Option<tar::Entry<'a, Box<dyn Read>>>> {
    let tar_error = |source| Error::Tar { digest: digest.clone(), source };
    for entry in archive.entries().map_err(tar_error)? {
        let entry = entry.map_err(tar_error)?;
        if entry.header().entry_type().is_file() && show_path(&entry.path_bytes()) == path {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}
