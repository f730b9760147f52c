//! The content-addressed cache shared by every build on a machine.
//!
//! Layout under the cache root (`$KILN_CACHE`, else `$XDG_CACHE_HOME/kiln`, else
//! `~/.cache/kiln`):
//!
//! - `sources/sha256/<hex>`: source files by content;
//! - `images/<hex>/`: image sources by manifest digest, each an OCI layout;
//! - `unpacked/<hex>-strip<N>/`, `unpacked/<hex>-strip0.image/`: extracted sources;
//! - `local/<digest>/`: recipe directories as the steps see them (modes as committed);
//! - `steps/<key>/`: a step's `out/` tree, `log` and `meta.json`, by input key;
//! - `locks/`: one lock file per entry being made; `tmp/`: work in progress, each directory
//!   with a lock file its build holds (opening the cache removes those nobody holds);
//! - `logs/`: the log of the last failed run of each step.
//!
//! Entries appear only by renaming a finished temporary directory or file into place, under
//! the entry's exclusive lock, so concurrent builds share the cache and a killed build leaves
//! nothing half written; whoever takes the lock second finds the entry made.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A work directory inside the cache: removed when dropped unless kept; its lock tells other
/// builds that it is in use.
#[derive(Debug)]
pub struct Work {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: File,
    kept: bool,
}

impl Work {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Keeps the directory (the caller renames it into place at once); returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        self.dir.clone()
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !self.kept {
            remove_tree(&self.dir);
        }
        let _ = fs::remove_file(&self.lock_path);
    }
}

fn remove_tree(path: &Path) {
    crate::extract::make_writable(path);
    let _ = fs::remove_dir_all(path);
}

/// An exclusive lock on one cache entry, released when dropped.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

impl Cache {
    /// The cache at `root`, or the default location.
    pub fn open(root: Option<PathBuf>) -> Result<Cache> {
        let root = match root {
            Some(root) => root,
            None => default_root().ok_or_else(|| Error::Sandbox {
                reason: "no cache directory: set KILN_CACHE, XDG_CACHE_HOME or HOME".into(),
            })?,
        };
        for sub in ["sources/sha256", "images", "unpacked", "local", "steps", "locks", "tmp", "logs"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|source| Error::Write { path: dir, source })?;
        }
        let cache = Cache { root };
        cache.remove_stale_work();
        Ok(cache)
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a source file with this SHA-256 lives.
    pub fn source(&self, sha256: &str) -> PathBuf {
        self.root.join("sources/sha256").join(sha256)
    }

    /// Where a pulled image source lives (an OCI layout).
    pub fn image(&self, sha256: &str) -> PathBuf {
        self.root.join("images").join(sha256)
    }

    /// Where a copy of a recipe directory lives, by its digest.
    pub fn local(&self, digest: &str) -> PathBuf {
        self.root.join("local").join(digest)
    }

    /// Where an extracted source lives.
    pub fn unpacked(&self, sha256: &str, strip_components: usize) -> PathBuf {
        self.root.join("unpacked").join(format!("{sha256}-strip{strip_components}"))
    }

    /// Where a step's entry lives.
    pub fn step(&self, key: &str) -> PathBuf {
        self.root.join("steps").join(key)
    }

    /// Where the log of a failed step is kept.
    pub fn failed_log(&self, recipe: &str, step: &str) -> PathBuf {
        self.root.join("logs").join(format!("{recipe}-{step}.log"))
    }

    /// A new directory for work in progress inside the cache (same file system, so it can be
    /// renamed into place), locked while it lives.
    pub fn temp_dir(&self) -> Result<Work> {
        let tmp = self.root.join("tmp");
        let write_error = |source| Error::Write { path: tmp.clone(), source };
        // A `work-*.lock` is held from the moment it has a name until its build is done: it is
        // made unnamed (O_TMPFILE), locked, then linked in, so a build killed at any point leaves
        // either nothing or a lock nobody holds, which the next build removes.
        if let Some((file, lock_path)) = locked_in(&tmp)? {
            let dir = lock_path.with_extension("");
            fs::create_dir(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
            return Ok(Work { dir, lock_path, _lock: file, kept: false });
        }
        // Without O_TMPFILE: the lock is taken under a name the cleaner ignores, then renamed
        // (a build killed between the two leaves that name behind).
        let staged = tempfile::Builder::new()
            .prefix(".new-")
            .suffix(".lock")
            .tempfile_in(&tmp)
            .map_err(write_error)?;
        rustix::fs::flock(staged.as_file(), rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| write_error(errno.into()))?;
        let (file, staged_path) = staged.keep().map_err(|error| write_error(error.error))?;
        let name = staged_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lock_path = tmp.join(format!("work-{}", name.trim_start_matches(".new-")));
        fs::rename(&staged_path, &lock_path)
            .map_err(|source| Error::Write { path: lock_path.clone(), source })?;
        let dir = lock_path.with_extension("");
        fs::create_dir(&dir).map_err(|source| Error::Write { path: dir.clone(), source })?;
        Ok(Work { dir, lock_path, _lock: file, kept: false })
    }

    /// Removes work directories that no live build holds: what a killed build left behind.
    fn remove_stale_work(&self) {
        let tmp = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&tmp) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".new-") {
                continue;
            }
            if let Some(stem) = name.strip_suffix(".lock") {
                let Ok(file) = File::open(&path) else { continue };
                if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
                    remove_tree(&tmp.join(stem));
                    let _ = fs::remove_file(&path);
                }
            } else if entry.file_type().is_ok_and(|t| t.is_dir())
                && !tmp.join(format!("{name}.lock")).exists()
            {
                remove_tree(&path);
            }
        }
    }

    /// Takes the exclusive lock named `name`, waiting for another build holding it.
    pub fn lock(&self, name: &str) -> Result<EntryLock> {
        let path = self.root.join("locks").join(format!("{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| Error::Write { path: path.clone(), source })?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|errno| Error::Write { path, source: errno.into() })?;
        Ok(EntryLock { _file: file })
    }
}

/// A new `work-*.lock` in `tmp`, locked before it has its name; `None` where the file system has
/// no O_TMPFILE or `/proc/self/fd` is not there to link it by.
fn locked_in(tmp: &Path) -> Result<Option<(File, PathBuf)>> {
    use rustix::fs::{AtFlags, CWD, FlockOperation, Mode, OFlags};
    let write_error = |errno: rustix::io::Errno| Error::Write { path: tmp.to_owned(), source: errno.into() };
    let Ok(fd) =
        rustix::fs::open(tmp, OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::from_raw_mode(0o600))
    else {
        return Ok(None);
    };
    rustix::fs::flock(&fd, FlockOperation::LockExclusive).map_err(write_error)?;
    let unnamed = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    // Names from std's randomly keyed hasher; a taken one is skipped.
    let random = std::hash::RandomState::new();
    for attempt in 0..64u32 {
        let suffix = std::hash::BuildHasher::hash_one(&random, (std::process::id(), attempt));
        let lock_path = tmp.join(format!("work-{suffix:016x}.lock"));
        match rustix::fs::linkat(CWD, unnamed.as_str(), CWD, &lock_path, AtFlags::SYMLINK_FOLLOW) {
            Ok(()) => return Ok(Some((File::from(fd), lock_path))),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

fn default_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KILN_CACHE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir).join("kiln"));
    }
    std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|home| PathBuf::from(home).join(".cache/kiln"))
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};

    use super::Cache;

    #[test]
    fn a_work_lock_is_held_from_the_moment_it_has_a_name() {
        let root = std::env::temp_dir().join(format!("kiln-cache-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let cache = Cache::open(Some(root.clone())).unwrap();
        let work = cache.temp_dir().unwrap();
        let mut names: Vec<String> = fs::read_dir(root.join("tmp"))
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].starts_with("work-") && names[1] == format!("{}.lock", names[0]), "{names:?}");
        let lock = File::open(root.join("tmp").join(&names[1])).unwrap();
        let held = rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive);
        assert!(held.is_err(), "another build could take a live build's lock");
        // What a killed build leaves (a lock nobody holds, its directory) goes with the next
        // cache opened; a live build's stays.
        fs::write(root.join("tmp/work-dead.lock"), "").unwrap();
        fs::create_dir(root.join("tmp/work-dead")).unwrap();
        drop(Cache::open(Some(root.clone())).unwrap());
        assert!(!root.join("tmp/work-dead").exists() && !root.join("tmp/work-dead.lock").exists());
        assert!(work.path().is_dir());
        drop(work);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        fs::remove_dir_all(&root).unwrap();
    }
}
