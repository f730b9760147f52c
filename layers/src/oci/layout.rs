//! OCI image layouts on disk: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
//!
//! Writing never leaves a half-written layout behind:
//! - a new layout is assembled in a hidden sibling directory and renamed into place by
//!   [`LayoutWriter::commit`]; dropping the writer without committing removes it;
//! - an existing layout is extended in place: blobs are content-addressed and each appears
//!   atomically (temporary file, then rename), and `index.json` is replaced atomically last, so
//!   a reader sees either the old or the new set of images (a layout may hold unreferenced
//!   blobs).
//!
//! File modes are fixed (0644 files, 0755 directories) whatever the umask, so a layout archived
//! as a whole is reproducible too.
//!
//! Reading trusts nothing in the layout: every file of it (`oci-layout`, `index.json`, each blob,
//! for [`Layout::read_blob`], [`Layout::open_blob`], [`Layout::open_blob_checked`],
//! [`Layout::has_blob`] and [`LayoutWriter::has_blob`] alike) is opened by one function, beneath
//! the layout's directory without following a symbolic link in any component (`openat2` with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), and must be a regular file — of its descriptor's
//! size, where one is known — before a byte is read. Documents are read only up to that size,
//! and only when it is within [`limits::MAX_DOCUMENT_SIZE`].

use std::fs::{self, File, Permissions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::oci::limits::{self, MAX_DOCUMENT_SIZE};
use crate::oci::reference::Reference;
use crate::oci::spec::{self, Descriptor, ImageConfig, Index, Manifest, annotation};

const OCI_LAYOUT: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_JSON: &str = "index.json";
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;

/// A layout opened for reading.
#[derive(Debug)]
pub struct Layout {
    root: PathBuf,
    index: Index,
}

impl Layout {
    /// Opens the layout at `root`, checking `oci-layout` and reading `index.json` (each a regular
    /// file in it of at most [`MAX_DOCUMENT_SIZE`] bytes).
    pub fn open(root: &Path) -> Result<Self> {
        let not_layout = |reason: String| Error::NotALayout { path: root.to_owned(), reason };
        let marker = root.join(OCI_LAYOUT);
        let text = match read_file_beneath(root, Path::new(OCI_LAYOUT)) {
            Ok(text) => text,
            Err(Refused::Missing) => return Err(not_layout("it has no oci-layout file".into())),
            Err(refused) => return Err(refused.into_error(root, Path::new(OCI_LAYOUT))),
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let marker_doc: Marker = serde_json::from_slice(&text).map_err(|source| Error::Json {
            path: marker.clone(),
            what: "oci-layout file",
            source,
        })?;
        if marker_doc.image_layout_version != "1.0.0" {
            return Err(not_layout(format!(
                "unsupported imageLayoutVersion {:?}",
                marker_doc.image_layout_version
            )));
        }
        let index_path = root.join(INDEX_JSON);
        let bytes = match read_file_beneath(root, Path::new(INDEX_JSON)) {
            Ok(bytes) => bytes,
            Err(Refused::Missing) => return Err(not_layout("it has no index.json".into())),
            Err(refused) => return Err(refused.into_error(root, Path::new(INDEX_JSON))),
        };
        let index = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: index_path,
            what: "image index",
            source,
        })?;
        Ok(Layout { root: root.to_owned(), index })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Where a blob is stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// Reads a whole document blob, checking its size and digest against the descriptor: a
    /// descriptor larger than [`MAX_DOCUMENT_SIZE`] is refused before anything is opened, the blob
    /// must be a regular file of the descriptor's size, and no more than that is read. Layers are
    /// streamed with [`Layout::open_blob_checked`].
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        limits::check_document_size(descriptor, limits::document_kind(descriptor))?;
        let file = self.open_blob_checked(descriptor)?;
        let capacity = usize::try_from(descriptor.size).unwrap_or(0);
        let mut bytes = Vec::with_capacity(capacity);
        let path = self.blob_path(&descriptor.digest);
        file.take(descriptor.size).read_to_end(&mut bytes).map_err(|e| Error::read("read", &path, e))?;
        self.check(descriptor, bytes.len() as u64, {
            let mut verifier = descriptor.digest.verifier();
            verifier.update(&bytes);
            verifier.finish()
        })?;
        Ok(bytes)
    }

    /// Opens a blob for streaming: a regular file below the layout, reached without a symbolic
    /// link (not verified here; see [`Layout::check`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        self.open_blob_sized(digest).map(|(file, _)| file)
    }

    /// Opens the blob `descriptor` points at for streaming, as [`Layout::open_blob`] does, and
    /// checks that its size is the descriptor's (its digest is for the reader to check).
    pub fn open_blob_checked(&self, descriptor: &Descriptor) -> Result<File> {
        let (file, size) = self.open_blob_sized(&descriptor.digest)?;
        if size != descriptor.size {
            return Err(Error::SizeMismatch {
                layout: self.root.clone(),
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                actual: size,
            });
        }
        Ok(file)
    }

    /// Whether the layout holds the blob `descriptor` points at: a regular file of its size,
    /// reached without a symbolic link.
    pub fn has_blob(&self, descriptor: &Descriptor) -> bool {
        self.open_blob_checked(descriptor).is_ok()
    }

    /// The one way a blob is opened: beneath the layout, no link followed, a regular file; with
    /// its size.
    fn open_blob_sized(&self, digest: &Digest) -> Result<(File, u64)> {
        let relative = blob_relative(digest);
        open_beneath(&self.root, &relative).map_err(|refused| match refused {
            Refused::Missing => Error::MissingBlob { layout: self.root.clone(), digest: digest.clone() },
            refused => refused.into_error(&self.root, &relative),
        })
    }

    /// Checks a blob's measured size and digest against its descriptor.
    pub fn check(&self, descriptor: &Descriptor, size: u64, digest: Digest) -> Result<()> {
        if size != descriptor.size {
            return Err(Error::SizeMismatch {
                layout: self.root.clone(),
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                actual: size,
            });
        }
        if digest != descriptor.digest {
            return Err(Error::DigestMismatch {
                layout: self.root.clone(),
                expected: descriptor.digest.clone(),
                actual: digest,
            });
        }
        Ok(())
    }

    /// Reads and parses an image manifest.
    pub fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        self.document(descriptor, "image manifest")
    }

    /// Reads and parses a nested image index.
    pub fn nested_index(&self, descriptor: &Descriptor) -> Result<Index> {
        self.document(descriptor, "image index")
    }

    /// Reads and parses an image config.
    pub fn config(&self, descriptor: &Descriptor) -> Result<ImageConfig> {
        self.document(descriptor, "image config")
    }

    fn document<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        what: &'static str,
    ) -> Result<T> {
        let bytes = self.read_blob(descriptor)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: self.blob_path(&descriptor.digest),
            what,
            source,
        })
    }

    /// The artifacts `index.json` lists about the image named `subject` (see
    /// [`crate::oci::artifact`]), in index order.
    pub fn artifacts_of(&self, subject: &str) -> Vec<&Descriptor> {
        self.index
            .manifests
            .iter()
            .filter(|d| d.ref_name().is_none() && d.subject_name() == Some(subject))
            .collect()
    }

    /// The descriptor named `reference` in `index.json`.
    pub fn find(&self, reference: &str) -> Result<&Descriptor> {
        self.index.manifests.iter().find(|d| d.ref_name() == Some(reference)).ok_or_else(|| {
            Error::RefNotFound {
                layout: self.root.clone(),
                reference: reference.to_owned(),
                available: {
                    let names: Vec<&str> =
                        self.index.manifests.iter().filter_map(Descriptor::ref_name).collect();
                    if names.is_empty() { "no named images".into() } else { names.join(", ") }
                },
            }
        })
    }
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(blob_relative(digest))
}

/// `blobs/<alg>/<hex>`; a parsed digest holds only lowercase hex, so this never leaves `blobs/`.
fn blob_relative(digest: &Digest) -> PathBuf {
    Path::new("blobs").join(digest.algorithm().name()).join(digest.encoded())
}

/// Why a file of a layout was not opened.
enum Refused {
    /// It does not exist (or a component on its way is not a directory).
    Missing,
    /// A symbolic link is on its way, or the path leaves the layout.
    Link,
    /// It is not a regular file.
    NotRegular(&'static str),
    /// A document larger than [`MAX_DOCUMENT_SIZE`].
    TooLarge(u64),
    /// Another error of the operating system.
    Io(io::Error),
}

impl Refused {
    fn into_error(self, root: &Path, relative: &Path) -> Error {
        let path = root.join(relative);
        match self {
            Refused::Missing => Error::read("open", path, io::ErrorKind::NotFound.into()),
            Refused::Link => Error::UnsafeFile {
                path,
                reason: "a symbolic link is on its way, or it lies outside the layout".into(),
            },
            Refused::NotRegular(kind) => Error::UnsafeFile { path, reason: format!("it is a {kind}") },
            Refused::TooLarge(size) => Error::NotALayout {
                path: root.to_owned(),
                reason: format!(
                    "{} is {size} bytes; kiln reads documents of at most {} MiB",
                    relative.display(),
                    MAX_DOCUMENT_SIZE >> 20
                ),
            },
            Refused::Io(source) => Error::read("open", path, source),
        }
    }
}

/// Opens `relative` (plain components, no `..`) below `root` for reading: the kernel resolves it
/// beneath `root` and refuses a symbolic link in any component, the last included
/// (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`; a component-by-component `O_NOFOLLOW` walk
/// where `openat2` is missing). It must be a regular file; returns it and its length. A FIFO or
/// device is opened without blocking and refused before anything is read.
fn open_beneath(root: &Path, relative: &Path) -> std::result::Result<(File, u64), Refused> {
    use rustix::io::Errno;
    let refused = |errno: Errno| match errno {
        Errno::NOENT | Errno::NOTDIR => Refused::Missing,
        Errno::LOOP | Errno::XDEV => Refused::Link,
        errno => Refused::Io(errno.into()),
    };
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(refused)?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let mut attempts = 0;
    let fd = loop {
        match rustix::fs::openat2(&dir, relative, flags, Mode::empty(), resolve) {
            // A rename elsewhere in the tree raced the lookup; the kernel asks to try again.
            Err(Errno::AGAIN) if attempts < 8 => attempts += 1,
            // No openat2 (before Linux 5.6, or a seccomp filter that hides it).
            Err(Errno::NOSYS | Errno::PERM) => {
                break walk_nofollow(&dir, relative, flags).map_err(refused)?;
            }
            result => break result.map_err(refused)?,
        }
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(Refused::Io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        return Err(Refused::NotRegular(if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_socket() {
            "socket"
        } else if kind.is_char_device() {
            "character device"
        } else if kind.is_block_device() {
            "block device"
        } else {
            "special file"
        }));
    }
    let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| Refused::Io(e.into()))?;
    rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK).map_err(|e| Refused::Io(e.into()))?;
    Ok((file, meta.len()))
}

/// `openat` one component at a time with `O_NOFOLLOW`: a link anywhere is `ELOOP` (or, for a
/// directory component, `ENOTDIR`).
fn walk_nofollow(
    dir: &rustix::fd::OwnedFd,
    relative: &Path,
    flags: OFlags,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use std::path::Component;
    let components: Vec<&std::ffi::OsStr> = relative
        .components()
        .map(|c| match c {
            Component::Normal(name) => Ok(name),
            _ => Err(rustix::io::Errno::XDEV),
        })
        .collect::<rustix::io::Result<_>>()?;
    let Some((last, parents)) = components.split_last() else { return Err(rustix::io::Errno::NOENT) };
    let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut current: Option<rustix::fd::OwnedFd> = None;
    for name in parents {
        let next = match &current {
            Some(fd) => rustix::fs::openat(fd, *name, directory, Mode::empty())?,
            None => rustix::fs::openat(dir, *name, directory, Mode::empty())?,
        };
        current = Some(next);
    }
    match &current {
        Some(fd) => rustix::fs::openat(fd, *last, flags, Mode::empty()),
        None => rustix::fs::openat(dir, *last, flags, Mode::empty()),
    }
}

/// A small file of a layout (`oci-layout`, `index.json`), opened as [`open_beneath`] opens a
/// blob, refused above [`MAX_DOCUMENT_SIZE`] and read no further than its length.
fn read_file_beneath(root: &Path, relative: &Path) -> std::result::Result<Vec<u8>, Refused> {
    let (file, size) = open_beneath(root, relative)?;
    if size > MAX_DOCUMENT_SIZE {
        return Err(Refused::TooLarge(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(size).read_to_end(&mut bytes).map_err(Refused::Io)?;
    Ok(bytes)
}

/// Adds images to a new or existing layout; see the module docs for the atomicity rules.
#[derive(Debug)]
pub struct LayoutWriter {
    destination: PathBuf,
    work: PathBuf,
    staging: Option<tempfile::TempDir>,
    /// Held while the staging directory is written: `.kiln-layout-X.lock` beside it.
    _staging_lock: Option<tempfile::NamedTempFile>,
    index: Index,
}

impl LayoutWriter {
    /// Prepares to write into `destination`: a new layout if it does not exist (or is an empty
    /// directory), otherwise the existing layout there.
    pub fn create_or_update(destination: &Path) -> Result<Self> {
        match fs::symlink_metadata(destination) {
            Ok(meta) if meta.is_dir() && destination.join(OCI_LAYOUT).exists() => {
                let layout = Layout::open(destination)?;
                // Blobs are written below these directories: a link there would put them
                // elsewhere.
                for relative in ["blobs", "blobs/sha256"] {
                    let dir = destination.join(relative);
                    if fs::symlink_metadata(&dir).is_ok_and(|meta| !meta.is_dir()) {
                        return Err(Error::UnsafeFile {
                            path: dir,
                            reason: "it is not a directory (a symbolic link is not followed)".into(),
                        });
                    }
                    create_dir(&dir)?;
                }
                // What writers killed mid-write left (no live writer holds their locks).
                sweep(destination, ".tmp-", "");
                sweep(&destination.join("blobs/sha256"), ".tmp-", "");
                Ok(LayoutWriter {
                    destination: destination.to_owned(),
                    work: destination.to_owned(),
                    staging: None,
                    _staging_lock: None,
                    index: layout.index,
                })
            }
            Ok(meta) if meta.is_dir() && is_empty_dir(destination)? => Self::create(destination),
            Ok(_) => Err(Error::OutputInUse { path: destination.to_owned() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(destination),
            Err(e) => Err(Error::write("read", destination, e)),
        }
    }

    fn create(destination: &Path) -> Result<Self> {
        let parent = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::write("create", &parent, e))?;
        sweep(&parent, STAGING_PREFIX, LOCK_SUFFIX);
        // The lock first, then the directory of the same name: a sweeper never sees the
        // directory without its (held) lock.
        let lock = locked_temp(&parent, STAGING_PREFIX, LOCK_SUFFIX)?;
        let name = lock.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let staging = tempfile::Builder::new()
            .prefix(name.trim_end_matches(LOCK_SUFFIX))
            .rand_bytes(0)
            .tempdir_in(&parent)
            .map_err(|e| Error::write("create a directory in", &parent, e))?;
        let work = staging.path().to_owned();
        write_file(&work.join(OCI_LAYOUT), OCI_LAYOUT_CONTENT)?;
        create_dir(&work.join("blobs"))?;
        create_dir(&work.join("blobs").join("sha256"))?;
        Ok(LayoutWriter {
            destination: destination.to_owned(),
            work,
            staging: Some(staging),
            _staging_lock: Some(lock),
            index: Index::new(),
        })
    }

    /// Whether the layout already holds the blob `descriptor` points at: a regular file of its
    /// size, reached without a symbolic link (anything else there is replaced by a new blob).
    pub fn has_blob(&self, descriptor: &Descriptor) -> bool {
        open_beneath(&self.work, &blob_relative(&descriptor.digest))
            .is_ok_and(|(_, size)| size == descriptor.size)
    }

    /// A writer for one new blob.
    pub fn blob(&self) -> Result<BlobWriter> {
        BlobWriter::new(self.work.join("blobs").join("sha256"))
    }

    /// Stores `bytes` as a blob and returns its digest and size.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let mut blob = self.blob()?;
        blob.write_all(bytes).map_err(|e| Error::write("write", blob.temp_path(), e))?;
        blob.commit()
    }

    /// Stores an encoded document and returns its descriptor.
    pub fn put_document(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
        let (digest, size) = self.put_blob(bytes)?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// Names `descriptor` as `reference` in `index.json`, replacing an image of that name and
    /// dropping the artifacts attached to it (they are about the image replaced).
    pub fn set(&mut self, reference: &Reference, mut descriptor: Descriptor) {
        let name = reference.to_string();
        descriptor.annotations.insert(annotation::REF_NAME.to_owned(), name.clone());
        self.index
            .manifests
            .retain(|d| d.ref_name() != Some(name.as_str()) && d.subject_name() != Some(name.as_str()));
        self.index.manifests.push(descriptor);
        self.sort();
    }

    /// Lists an artifact manifest about the image named `subject` in `index.json` (annotated
    /// [`annotation::SUBJECT`], without a `ref.name`), replacing one of the same artifact type
    /// about the same image.
    pub fn attach(&mut self, subject: &str, mut descriptor: Descriptor) {
        descriptor.annotations.remove(annotation::REF_NAME);
        descriptor.annotations.insert(annotation::SUBJECT.to_owned(), subject.to_owned());
        self.index.manifests.retain(|d| {
            d.ref_name().is_some()
                || d.subject_name() != Some(subject)
                || d.artifact_type != descriptor.artifact_type
        });
        self.index.manifests.push(descriptor);
        self.sort();
    }

    /// Entries sorted by name (artifacts, unnamed, first: by subject, then artifact type), so the
    /// index does not depend on the order images were added.
    fn sort(&mut self) {
        self.index.manifests.sort_by(|a, b| {
            (a.ref_name(), a.subject_name(), &a.artifact_type).cmp(&(
                b.ref_name(),
                b.subject_name(),
                &b.artifact_type,
            ))
        });
    }

    /// Writes `index.json` and, for a new layout, moves it into place. Returns the layout path.
    pub fn commit(mut self) -> Result<PathBuf> {
        let bytes = spec::encode("image index", &self.index)?;
        write_file(&self.work.join(INDEX_JSON), &bytes)?;
        if let Some(staging) = self.staging.take() {
            let staged = staging.keep();
            set_mode(&staged, DIR_MODE)?;
            if self.destination.is_dir() {
                // An empty directory was there; replace it.
                fs::remove_dir(&self.destination)
                    .map_err(|e| Error::write("replace", &self.destination, e))?;
            }
            if let Err(e) = fs::rename(&staged, &self.destination) {
                let _ = fs::remove_dir_all(&staged);
                return Err(Error::write("move the new layout to", &self.destination, e));
            }
        }
        Ok(self.destination)
    }
}

/// A blob being written: a temporary file in the blob directory that becomes
/// `blobs/sha256/<digest>` on [`BlobWriter::commit`] and disappears if dropped.
pub struct BlobWriter {
    dir: PathBuf,
    file: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
}

impl BlobWriter {
    fn new(dir: PathBuf) -> Result<Self> {
        let temp = locked_temp(&dir, ".tmp-", "")?;
        Ok(BlobWriter { dir, file: HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp)) })
    }

    /// The temporary file's path, for error messages.
    pub fn temp_path(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Finishes the blob: its digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (buffered, digest, size) = self.file.finish();
        let temp = buffered.into_inner().map_err(|e| Error::write("write", &self.dir, e.into_error()))?;
        temp.as_file()
            .set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| Error::write("set permissions of", temp.path(), e))?;
        let target = self.dir.join(digest.encoded());
        temp.persist(&target).map_err(|e| Error::write("write", &target, e.error))?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn is_empty_dir(path: &Path) -> Result<bool> {
    let mut entries = fs::read_dir(path).map_err(|e| Error::write("list", path, e))?;
    Ok(entries.next().is_none())
}

fn create_dir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => set_mode(path, DIR_MODE),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::write("create", path, e)),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| Error::write("set permissions of", path, e))
}

/// Writes a small file atomically (temporary file in the same directory, then rename).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = locked_temp(dir, ".tmp-", "")?;
    temp.write_all(bytes).map_err(|e| Error::write("write", path, e))?;
    temp.as_file()
        .set_permissions(Permissions::from_mode(FILE_MODE))
        .map_err(|e| Error::write("set permissions of", path, e))?;
    temp.persist(path).map_err(|e| Error::write("write", path, e.error))?;
    Ok(())
}

/// The prefix of a new layout's staging directory, beside the destination.
const STAGING_PREFIX: &str = ".kiln-layout-";
/// The suffix of the lock file a staging directory is held by.
const LOCK_SUFFIX: &str = ".lock";

/// A new temporary file in `dir`, locked (`flock`) for as long as it is open: a writer killed
/// mid-write leaves it unlocked, which is how [`sweep`] knows it is stale.
fn locked_temp(dir: &Path, prefix: &str, suffix: &str) -> Result<tempfile::NamedTempFile> {
    let temp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(|e| Error::write("create a file in", dir, e))?;
    rustix::fs::flock(temp.as_file(), rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| Error::write("lock", temp.path(), e.into()))?;
    Ok(temp)
}

/// Removes what writers killed mid-write left in `dir`: each `PREFIX*SUFFIX` file nobody holds
/// a lock on (and, for a staging lock, its directory). Best effort: a leftover that cannot be
/// removed is left for the next writer.
fn sweep(dir: &Path, prefix: &str, suffix: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix)
            || !name.ends_with(suffix)
            || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else { continue };
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue;
        }
        if !suffix.is_empty() {
            let staged = dir.join(name.trim_end_matches(suffix));
            if fs::symlink_metadata(&staged).is_ok_and(|meta| meta.is_dir()) {
                let _ = fs::remove_dir_all(&staged);
            }
        }
        let _ = fs::remove_file(&path);
    }
}
