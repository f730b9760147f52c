//! Safe extraction of source archives: tar (plain, gzip, xz, zstd, bzip2) and Debian `.deb`.
//!
//! An archive is untrusted input. Extraction refuses, naming the archive and the entry: absolute
//! paths and `..`; symbolic links that point outside the root (absolute targets are refused, or
//! for `.deb` packages, whose policy makes links between top-level directories absolute, made
//! relative to the root); hard links to anything but a regular file already extracted; device
//! nodes and FIFOs; and any entry whose path goes through a symbolic link. Files are created with
//! `O_NOFOLLOW | O_EXCL`, so nothing is ever written through a link. Permission bits (without
//! setuid/setgid), file modification times and symbolic links are kept; ownership is not.
//!
//! Extraction goes into a temporary directory next to the destination, renamed into place at
//! the end: a failed or killed extraction leaves no partial tree.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// What to do with a symbolic link whose target is absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsoluteLinks {
    /// Refuse the archive.
    Refuse,
    /// Point the link at the same path under the extraction root (`/usr/lib/x` from
    /// `usr/bin/y` becomes `../lib/x`).
    RelativeToRoot,
}

/// How to extract.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Absolute symbolic link targets.
    pub absolute_links: AbsoluteLinks,
    /// Leading path components dropped from every entry (`tar --strip-components`).
    pub strip_components: usize,
    /// Apply OCI whiteouts (`.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory) and
    /// let an entry replace a directory, as image layers stacked on one another do.
    pub whiteouts: bool,
    /// Give directories exactly their archived permission bits (otherwise the owner may always
    /// read, write and enter them).
    pub exact_modes: bool,
    /// Refuse the archive once its files hold more bytes than this.
    pub max_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            absolute_links: AbsoluteLinks::Refuse,
            strip_components: 0,
            whiteouts: false,
            exact_modes: false,
            max_bytes: None,
        }
    }
}

/// What an extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// The compression of a stream, recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
    /// bzip2.
    Bzip2,
    /// None.
    None,
}

impl Compression {
    /// Recognises the compression from a stream's first bytes.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else {
            Compression::None
        }
    }

    /// A reader of the decompressed stream.
    pub fn decoder<'a>(self, reader: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Compression::Xz => Box::new(lzma_rust2::XzReader::new(reader, true)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
            Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
            Compression::None => Box::new(reader),
        })
    }
}

/// Extracts the archive at `archive` (a tar, compressed or not, or a `.deb`, whose data
/// member is extracted) into `dest`, which must not exist yet.
pub fn extract(archive: &Path, dest: &Path, options: Options) -> Result<Extracted> {
    let file = File::open(archive).map_err(|source| Error::Read { path: archive.to_owned(), source })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let head = reader.fill_buf().map_err(|source| Error::Read { path: archive.to_owned(), source })?;
    if head.starts_with(crate::deb::AR_MAGIC) {
        let options = Options { absolute_links: AbsoluteLinks::RelativeToRoot, ..options };
        return into_place(dest, |root| crate::deb::extract_data(archive, reader, root, options));
    }
    into_place(dest, |root| extract_tar(archive, reader, root, options))
}

/// Extracts the image `reference` of the OCI layout at `layout` — its layers in order, with
/// whiteouts; for an index, its `linux/amd64` image — into `dest`, which must not exist yet.
pub fn extract_image(layout: &Path, reference: &str, dest: &Path) -> Result<Extracted> {
    use kiln_layers::oci::{layout::Layout, limits::Budget, media_type};
    let layout = Layout::open(layout)?;
    let mut descriptor = layout.find(reference)?.clone();
    // The layout is untrusted: its index chain is bounded like any walk of one.
    let mut budget = Budget::new();
    let mut depth = 0;
    while media_type::is_index(&descriptor.media_type) {
        budget.document(&descriptor, depth, "image index").map_err(kiln_layers::Error::from)?;
        depth += 1;
        let index = layout.nested_index(&descriptor)?;
        let amd64 = index
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == "amd64"));
        descriptor = amd64.or(index.manifests.first()).cloned().ok_or_else(|| Error::CorruptArchive {
            archive: layout.blob_path(&descriptor.digest),
            entry: None,
            reason: "an image index without a linux/amd64 image".into(),
        })?;
    }
    let manifest = layout.manifest(&descriptor)?;
    let options =
        Options { absolute_links: AbsoluteLinks::RelativeToRoot, whiteouts: true, ..Options::default() };
    into_place(dest, |root| {
        let mut total = Extracted::default();
        for layer in &manifest.layers {
            let path = layout.blob_path(&layer.digest);
            // Beneath the layout, a regular file of the layer's size, through no link.
            let file = layout.open_blob_checked(layer)?;
            let extracted = extract_tar(&path, BufReader::with_capacity(1 << 20, file), root, options)?;
            total.entries += extracted.entries;
            total.bytes += extracted.bytes;
        }
        // Each layer's links stay inside; so must the links of all of them together.
        no_link_leaves(&layout.blob_path(&descriptor.digest), root)?;
        Ok(total)
    })
}

/// Runs `extract` into a temporary directory beside `dest`, then renames it to `dest`.
pub(crate) fn into_place(dest: &Path, extract: impl FnOnce(&Path) -> Result<Extracted>) -> Result<Extracted> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Write {
            path: dest.to_owned(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "the destination exists"),
        });
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let write_error = |source| Error::Write { path: dest.to_owned(), source };
    let temp = tempfile::Builder::new().prefix(".extract-").tempdir_in(parent).map_err(write_error)?;
    let extracted = extract(temp.path())?;
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755)).map_err(write_error)?;
    fs::rename(temp.keep(), dest).map_err(write_error)?;
    Ok(extracted)
}

/// Extracts a tar stream (compressed or not, recognised by its first bytes) into the existing
/// empty directory `root`. `archive` names the archive in errors.
pub fn extract_tar(archive: &Path, reader: impl BufRead, root: &Path, options: Options) -> Result<Extracted> {
    let mut reader = reader;
    let head = reader.fill_buf().map_err(|source| Error::Read { path: archive.to_owned(), source })?;
    let compression = Compression::sniff(head);
    let decoder =
        compression.decoder(reader).map_err(|source| Error::Read { path: archive.to_owned(), source })?;
    let mut tar = tar::Archive::new(decoder);
    let mut writer =
        Writer { archive, root, options, directories: Vec::new(), extracted: Extracted::default() };
    let entries = tar.entries().map_err(|source| writer.corrupt(None, &source))?;
    for entry in entries {
        let mut entry = entry.map_err(|source| writer.corrupt(None, &source))?;
        writer.entry(&mut entry)?;
    }
    let extracted = writer.finish()?;
    no_link_leaves(archive, root)?;
    Ok(extracted)
}

/// Refuses a tree in which a link leads out, judged as the kernel resolves it once every entry
/// is in place: a link's text can look harmless and still leave through other links.
fn no_link_leaves(archive: &Path, root: &Path) -> Result<()> {
    match crate::beneath::leaving_link(root) {
        Ok(None) => Ok(()),
        Ok(Some((link, target))) => Err(Error::UnsafeEntry {
            archive: archive.to_owned(),
            entry: link.display().to_string(),
            reason: format!(
                "a symbolic link to {:?}, which resolves outside the root",
                target.display().to_string()
            ),
        }),
        Err(source) => Err(Error::Read { path: root.to_owned(), source }),
    }
}

/// The relative path from the link at `link` (below the root) to the absolute `target` taken as
/// a path below the root (`..` at the root stays at the root, as in path resolution).
fn relative_to_root(link: &Path, target: &Path) -> PathBuf {
    let mut wanted: Vec<&std::ffi::OsStr> = Vec::new();
    for component in target.components() {
        match component {
            Component::Normal(part) => wanted.push(part),
            Component::ParentDir => {
                wanted.pop();
            }
            _ => {}
        }
    }
    let from: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| {
            p.components().filter_map(|c| if let Component::Normal(n) = c { Some(n) } else { None }).collect()
        })
        .unwrap_or_default();
    let common = from.iter().zip(&wanted).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    path.extend(&wanted[common..]);
    if path.as_os_str().is_empty() { PathBuf::from(".") } else { path }
}

/// Gives the owner write permission on `root` and every directory below it.
pub(crate) fn make_writable(root: &Path) {
    if let Ok(meta) = fs::symlink_metadata(root)
        && meta.is_dir()
    {
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(meta.permissions().mode() | 0o700));
        for entry in fs::read_dir(root).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

/// Writes entries under `root`, never through a link.
struct Writer<'a> {
    archive: &'a Path,
    root: &'a Path,
    options: Options,
    /// Directories and their modes, applied at the end (a read-only directory may still get
    /// entries).
    directories: Vec<(PathBuf, u32)>,
    extracted: Extracted,
}

impl Writer<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            return Ok(());
        }
        let Some(relative) = self.relative(&name, &raw_name)? else { return Ok(()) };
        if self.options.whiteouts && self.whiteout(&name, &relative)? {
            return Ok(());
        }
        let path = self.root.join(&relative);
        let header = entry.header();
        let mode = header.mode().map_err(|e| self.corrupt(Some(&name), &e))? & 0o1777;
        let mtime = header.mtime().map_err(|e| self.corrupt(Some(&name), &e))?;
        self.parents(&name, &relative)?;
        match kind {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => self.remove(&path)?,
                    Err(_) => {}
                }
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(|source| self.write_error(&path, source))?;
                }
                self.directories.push((path, mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.replace(&path)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&path)
                    .map_err(|source| self.write_error(&path, source))?;
                let room =
                    self.options.max_bytes.map_or(u64::MAX, |max| max.saturating_sub(self.extracted.bytes));
                let copied = io::copy(&mut entry.take(room.saturating_add(1)), &mut file)
                    .map_err(|e| self.corrupt(Some(&name), &e))?;
                if copied > room {
                    return Err(self.unsafe_entry(
                        &name,
                        format!(
                            "more than the {} bytes the archive may hold",
                            self.options.max_bytes.unwrap_or(0)
                        ),
                    ));
                }
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|source| self.write_error(&path, source))?;
                let time = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
                file.set_modified(time).map_err(|source| self.write_error(&path, source))?;
                self.extracted.bytes += copied;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let target = self.link_target(&name, &relative, &target)?;
                self.replace(&path)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|source| self.write_error(&path, source))?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let target_name = String::from_utf8_lossy(&target).into_owned();
                let Some(target_relative) = self.relative(&name, &target)? else {
                    return Err(self.unsafe_entry(&name, format!("a hard link to {target_name:?}")));
                };
                self.parents(&name, &target_relative)?;
                let source = self.root.join(&target_relative);
                match fs::symlink_metadata(&source) {
                    Ok(meta) if meta.is_file() => {}
                    _ => {
                        return Err(self.unsafe_entry(
                            &name,
                            format!(
                                "a hard link to {target_name:?}, which is not a file extracted before it"
                            ),
                        ));
                    }
                }
                self.replace(&path)?;
                fs::hard_link(&source, &path).map_err(|source| self.write_error(&path, source))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(self.unsafe_entry(&name, "a device node".into()));
            }
            tar::EntryType::Fifo => return Err(self.unsafe_entry(&name, "a FIFO".into())),
            other => return Err(self.unsafe_entry(&name, format!("an unsupported entry type {other:?}"))),
        }
        self.extracted.entries += 1;
        Ok(())
    }

    /// Applies `relative` if it is a whiteout; says whether it was one.
    fn whiteout(&self, name: &str, relative: &Path) -> Result<bool> {
        let Some(file_name) = relative.file_name().map(|n| n.as_bytes()) else { return Ok(false) };
        let Some(hidden) = file_name.strip_prefix(b".wh.") else { return Ok(false) };
        // The name it hides is one entry of its directory (`.wh..` or `.wh...` would be the
        // directory itself or its parent); `.wh..wh.` names are reserved, but for the opaque
        // marker (OCI image spec, layer.md).
        let opaque = hidden == b".wh..opq";
        if !opaque && (hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.starts_with(b".wh."))
        {
            return Err(self.unsafe_entry(
                name,
                format!("the whiteout {:?}, which names no entry", String::from_utf8_lossy(file_name)),
            ));
        }
        self.parents(name, relative)?;
        let parent = self.root.join(relative.parent().unwrap_or(Path::new("")));
        let doomed: Vec<PathBuf> = if opaque {
            fs::read_dir(&parent)
                .map_err(|source| Error::Read { path: parent.clone(), source })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .collect()
        } else {
            vec![parent.join(std::ffi::OsStr::from_bytes(hidden))]
        };
        for path in doomed {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    make_writable(&path);
                    fs::remove_dir_all(&path).map_err(|source| self.write_error(&path, source))?;
                }
                Ok(_) => self.remove(&path)?,
                Err(_) => {}
            }
        }
        Ok(true)
    }

    fn finish(self) -> Result<Extracted> {
        // Deepest first, so a read-only parent is made read-only after its children.
        let mut directories = self.directories;
        directories.sort_by(|a, b| b.0.cmp(&a.0));
        let owner = if self.options.exact_modes { 0 } else { 0o700 };
        for (path, mode) in directories {
            // A later entry of a layer may have put a link (or a file) where the directory was:
            // a mode is given to a directory only, never through a link.
            if !fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
                continue;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(mode | owner))
                .map_err(|source| Error::Write { path: path.clone(), source })?;
        }
        Ok(self.extracted)
    }

    /// The entry's path below the root after `strip_components`, or `None` for the root
    /// itself (or an entry stripped away).
    fn relative(&self, name: &str, raw: &[u8]) -> Result<Option<PathBuf>> {
        let mut parts = Vec::new();
        for component in Path::new(std::ffi::OsStr::from_bytes(raw)).components() {
            match component {
                Component::Normal(part) => parts.push(part),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => {
                    return Err(self
                        .unsafe_entry(name, format!("an absolute path {:?}", String::from_utf8_lossy(raw))));
                }
                Component::ParentDir => {
                    return Err(
                        self.unsafe_entry(name, format!("'..' in {:?}", String::from_utf8_lossy(raw)))
                    );
                }
            }
        }
        if parts.len() <= self.options.strip_components {
            return Ok(None);
        }
        Ok(Some(parts[self.options.strip_components..].iter().collect()))
    }

    /// Makes every parent directory of `relative` exist as a real directory, never a link.
    fn parents(&self, name: &str, relative: &Path) -> Result<()> {
        let mut path = self.root.to_path_buf();
        let Some(parent) = relative.parent() else { return Ok(()) };
        for part in parent.components() {
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(self.unsafe_entry(
                        name,
                        format!(
                            "a path through the symbolic link {}",
                            path.strip_prefix(self.root).unwrap_or(&path).display()
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(self.unsafe_entry(
                        name,
                        format!(
                            "a path through {}, which is not a directory",
                            path.strip_prefix(self.root).unwrap_or(&path).display()
                        ),
                    ));
                }
                Err(_) => fs::create_dir(&path).map_err(|source| self.write_error(&path, source))?,
            }
        }
        Ok(())
    }

    /// The target a symbolic link at `relative` gets, refusing one that leaves the root.
    fn link_target(&self, name: &str, relative: &Path, target: &[u8]) -> Result<PathBuf> {
        let shown = String::from_utf8_lossy(target).into_owned();
        let target = Path::new(std::ffi::OsStr::from_bytes(target));
        let depth = relative.components().count() - 1;
        let target = if target.is_absolute() {
            if self.options.absolute_links == AbsoluteLinks::Refuse {
                return Err(
                    self.unsafe_entry(name, format!("a symbolic link to the absolute path {shown:?}"))
                );
            }
            relative_to_root(relative, target)
        } else {
            target.to_path_buf()
        };
        if !crate::beneath::stays_inside_lexically(depth, &target) {
            return Err(self.unsafe_entry(name, format!("a symbolic link to {shown:?}, outside the root")));
        }
        Ok(target)
    }

    /// Clears the way for a new entry at `path`: an earlier file or link of the same name goes
    /// (a later entry wins, as in tar); a directory is refused.
    fn replace(&self, path: &Path) -> Result<()> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() && self.options.whiteouts => {
                make_writable(path);
                fs::remove_dir_all(path).map_err(|source| self.write_error(path, source))
            }
            Ok(meta) if meta.is_dir() => Err(Error::Write {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a directory of this name was extracted before",
                ),
            }),
            Ok(_) => self.remove(path),
            Err(_) => Ok(()),
        }
    }

    fn remove(&self, path: &Path) -> Result<()> {
        fs::remove_file(path).map_err(|source| self.write_error(path, source))
    }

    fn write_error(&self, path: &Path, source: io::Error) -> Error {
        Error::Write { path: path.to_owned(), source }
    }

    fn unsafe_entry(&self, entry: &str, reason: String) -> Error {
        Error::UnsafeEntry { archive: self.archive.to_owned(), entry: entry.to_owned(), reason }
    }

    fn corrupt(&self, entry: Option<&str>, source: &io::Error) -> Error {
        Error::CorruptArchive {
            archive: self.archive.to_owned(),
            entry: entry.map(str::to_owned),
            reason: source.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_become_relative_to_the_root() {
        let cases = [
            ("usr/bin/tool", "/usr/lib/kiln/tool", "../lib/kiln/tool"),
            ("usr/bin/tool", "/usr/bin/other", "other"),
            ("top", "/etc", "etc"),
            ("a/b/c", "/", "../.."),
            ("a/b", "/../../a", "."),
            ("a/b", "/x/../a/y", "y"),
        ];
        for (link, target, expected) in cases {
            assert_eq!(
                relative_to_root(Path::new(link), Path::new(target)),
                Path::new(expected),
                "{link} -> {target}"
            );
        }
    }
}
