//! Paths and links resolved beneath a root, the way the kernel resolves them, never leaving it.
//!
//! Every tree kiln reads on the host that untrusted code made — a step's output, an extracted
//! source, an entry of a shared cache — may hold symbolic links chosen by an attacker:
//! `usr/root -> /`, or a chain such as `l1 -> .` and `x -> l1/l1/../../etc` whose text looks
//! harmless. kiln never follows them: [`path`] and [`open`] resolve a path below a root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so a link anywhere on the way is refused,
//! and [`leaving_link`] asks the kernel where each link of a tree leads
//! (`openat2(RESOLVE_BENEATH)`), so a chain is judged by what it resolves to, not by its text.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Why a path below a root cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path is absolute, empty or has `..`: it is not a path below a root.
    #[error("{path:?} is not a relative path below {} (no `..`, not absolute)", root.display())]
    NotBeneath {
        /// The root.
        root: PathBuf,
        /// The path as given.
        path: String,
    },
    /// A component of the path is a symbolic link, or the path leaves the root.
    #[error("{} goes through a symbolic link or leaves {}", root.join(path).display(), root.display())]
    ThroughLink {
        /// The root.
        root: PathBuf,
        /// The path below it.
        path: PathBuf,
    },
    /// The path cannot be opened.
    #[error("cannot open {}", root.join(path).display())]
    Open {
        /// The root.
        root: PathBuf,
        /// The path below it.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// The relative path `relative` checked lexically: components only, no `..`, not absolute,
/// not empty (`.` components are dropped).
pub fn relative(root: &Path, relative: impl AsRef<Path>) -> Result<PathBuf, Error> {
    let relative = relative.as_ref();
    let refused = || Error::NotBeneath { root: root.to_owned(), path: relative.display().to_string() };
    let mut path = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(refused()),
        }
    }
    if path.as_os_str().is_empty() {
        return Err(refused());
    }
    Ok(path)
}

/// `root/relative`, once the kernel confirmed that no component of it (the last included) is a
/// symbolic link and that it exists below `root`. `relative` may be empty (the root itself).
pub fn path(root: &Path, relative: &Path) -> Result<PathBuf, Error> {
    open_with(root, relative, OFlags::PATH)?;
    Ok(root.join(relative))
}

/// Opens `root/relative` for reading, refusing a symbolic link anywhere on the way.
pub fn open(root: &Path, relative: &Path) -> Result<File, Error> {
    open_with(root, relative, OFlags::RDONLY).map(File::from)
}

/// The content of `root/relative`, refusing a symbolic link anywhere on the way.
pub fn read(root: &Path, relative: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    open(root, relative)?.read_to_end(&mut bytes).map_err(|source| Error::Open {
        root: root.to_owned(),
        path: relative.to_owned(),
        source,
    })?;
    Ok(bytes)
}

/// [`read`] as text.
pub fn read_to_string(root: &Path, relative: &Path) -> Result<String, Error> {
    let bytes = read(root, relative)?;
    String::from_utf8(bytes).map_err(|e| Error::Open {
        root: root.to_owned(),
        path: relative.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// Writes `bytes` to `root/relative` (mode 0644) as a new file: whatever had its name (a file
/// or a link) goes first, so nothing is written through a link, and missing directories on the
/// way are made, none of them through a link either.
pub fn write(root: &Path, relative: &Path, bytes: &[u8]) -> Result<(), Error> {
    let fail = |source: io::Error| Error::Open { root: root.to_owned(), path: relative.to_owned(), source };
    let Some(name) = relative.file_name() else {
        return Err(Error::NotBeneath { root: root.to_owned(), path: relative.display().to_string() });
    };
    let dir = directories(root, relative.parent().unwrap_or(Path::new("")))?;
    match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(errno) => return Err(fail(errno.into())),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let file =
        rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o644)).map_err(|e| fail(e.into()))?;
    let mut file = File::from(file);
    // The umask must not decide the mode.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(fail)?;
    file.write_all(bytes).map_err(fail)
}

/// The directory `root/relative`, made where missing, opened without following a link.
fn directories(root: &Path, relative: &Path) -> Result<std::os::fd::OwnedFd, Error> {
    let mut dir = open_with(root, Path::new(""), OFlags::PATH | OFlags::DIRECTORY)?;
    let mut walked = PathBuf::new();
    for component in relative.components() {
        let Component::Normal(part) = component else {
            return Err(Error::NotBeneath { root: root.to_owned(), path: relative.display().to_string() });
        };
        walked.push(part);
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let open = |dir: &std::os::fd::OwnedFd| rustix::fs::openat2(dir, part, flags, Mode::empty(), resolve);
        let next = match open(&dir) {
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)).map_err(|e| Error::Open {
                    root: root.to_owned(),
                    path: walked.clone(),
                    source: e.into(),
                })?;
                open(&dir)
            }
            other => other,
        };
        dir = next.map_err(|errno| match errno {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV | rustix::io::Errno::NOTDIR => {
                Error::ThroughLink { root: root.to_owned(), path: walked.clone() }
            }
            errno => Error::Open { root: root.to_owned(), path: walked.clone(), source: errno.into() },
        })?;
    }
    Ok(dir)
}

fn open_with(root: &Path, relative: &Path, flags: OFlags) -> Result<std::os::fd::OwnedFd, Error> {
    let open_error =
        |source: io::Error| Error::Open { root: root.to_owned(), path: relative.to_owned(), source };
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| open_error(e.into()))?;
    let relative_or_dot = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    // No O_NOFOLLOW: with O_PATH it would open a final link itself; RESOLVE_NO_SYMLINKS refuses it.
    rustix::fs::openat2(&dir, relative_or_dot, flags | OFlags::CLOEXEC, Mode::empty(), resolve).map_err(
        |errno| match errno {
            rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => {
                Error::ThroughLink { root: root.to_owned(), path: relative.to_owned() }
            }
            errno => open_error(errno.into()),
        },
    )
}

/// The first symbolic link below `root` (depth first, by name) that leads out of it, as the
/// kernel resolves it from the link's place, with its target; `None` if every link stays in.
/// A link that does not resolve (its target is missing, or a loop) is judged by its text, read
/// from its directory: `missing/../../x` leaves a tree whatever `missing` becomes.
pub fn leaving_link(root: &Path) -> io::Result<Option<(PathBuf, PathBuf)>> {
    let dir = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(&relative))?.collect::<io::Result<_>>()?;
        entries.sort_by(|a, b| b.file_name().as_bytes().cmp(a.file_name().as_bytes()));
        for entry in entries {
            let kind = entry.file_type()?;
            let path = relative.join(entry.file_name());
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path())?;
                let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
                let leaves = match rustix::fs::openat2(
                    &dir,
                    &path,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    resolve,
                ) {
                    Ok(_) => false,
                    Err(rustix::io::Errno::XDEV) => true,
                    Err(_) => !stays_inside_lexically(relative.components().count(), &target),
                };
                if leaves {
                    return Ok(Some((path, target)));
                }
            }
        }
    }
    Ok(None)
}

/// Whether a link `depth` directories below a root pointing at `target` stays inside, read as
/// text from the link's directory (`..` at the root leaves it; an absolute target always does).
pub fn stays_inside_lexically(depth: usize, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut level = depth;
    for component in target.components() {
        match component {
            Component::ParentDir if level == 0 => return false,
            Component::ParentDir => level -= 1,
            Component::Normal(_) => level += 1,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree(links: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("root/a/b")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("root/a/file"), "x").unwrap_or_else(|e| panic!("{e}"));
        for (link, target) in links {
            symlink(target, dir.path().join("root").join(link)).unwrap_or_else(|e| panic!("{e}"));
        }
        dir
    }

    fn leaving(links: &[(&str, &str)]) -> Option<String> {
        let dir = tree(links);
        leaving_link(&dir.path().join("root"))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|(link, _)| link.display().to_string())
    }

    #[test]
    fn chained_links_are_judged_by_where_they_lead() {
        assert_eq!(leaving(&[("l1", "."), ("x", "l1/l1/../../etc")]), Some("x".into()));
        assert_eq!(leaving(&[("a/up", ".."), ("a/b/esc", "../up/../..")]), Some("a/b/esc".into()));
        assert_eq!(leaving(&[("a/b/l", "../../a"), ("a/b/m", "l/b/l/file")]), None);
        assert_eq!(leaving(&[("abs", "/etc")]), Some("abs".into()));
        assert_eq!(leaving(&[("a/up", "..")]), None);
        assert_eq!(leaving(&[("loop", "loop")]), None);
        // A missing component: the text decides.
        assert_eq!(leaving(&[("m", "missing/../../etc")]), Some("m".into()));
        assert_eq!(leaving(&[("m", "missing/x")]), None);
    }

    #[test]
    fn writes_replace_links_and_never_go_through_them() {
        let dir = tree(&[("up", ".."), ("a/alias", "file"), ("a/dangling", "../../../kiln-beneath-test")]);
        let root = dir.path().join("root");
        write(&root, Path::new("a/alias"), b"new").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read(root.join("a/file")).unwrap_or_default(),
            b"x",
            "the link's target is untouched"
        );
        assert_eq!(std::fs::read(root.join("a/alias")).unwrap_or_default(), b"new");
        write(&root, Path::new("a/dangling"), b"new").unwrap_or_else(|e| panic!("{e}"));
        assert!(!dir.path().join("kiln-beneath-test").exists());
        write(&root, Path::new("made/deep/file"), b"d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_to_string(&root, Path::new("made/deep/file")).unwrap_or_default(), "d");
        assert!(matches!(write(&root, Path::new("up/escaped"), b"e"), Err(Error::ThroughLink { .. })));
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn paths_through_links_are_refused() {
        let dir = tree(&[("up", ".."), ("a/dir", "b"), ("a/alias", "file")]);
        let root = dir.path().join("root");
        assert!(path(&root, Path::new("a/b")).is_ok());
        assert!(path(&root, Path::new("")).is_ok());
        for bad in ["up", "up/root", "a/dir", "a/alias"] {
            assert!(matches!(path(&root, Path::new(bad)), Err(Error::ThroughLink { .. })), "{bad}");
            assert!(open(&root, Path::new(bad)).is_err(), "{bad}");
        }
        assert!(open(&root, Path::new("a/file")).is_ok());
        for bad in ["../x", "/etc", "", ".", "a/../b"] {
            assert!(matches!(relative(&root, bad), Err(Error::NotBeneath { .. })), "{bad}");
        }
        assert_eq!(relative(&root, "./a/./b").unwrap_or_else(|e| panic!("{e}")), Path::new("a/b"));
    }
}
