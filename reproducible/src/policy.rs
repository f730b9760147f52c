//! Ownership, permission bits and modification times of archive entries.

use crate::Epoch;

/// What kind of file system object an archive entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file (including a hard link to one).
    File,
    /// A symbolic link.
    Symlink,
}

/// How permission bits are derived from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModePolicy {
    /// 0755 for directories and for files with any execute bit, 0644 for other files, 0777 for
    /// symlinks. setuid, setgid and sticky bits are dropped. Independent of the host's umask.
    #[default]
    Normalize,
    /// The host's permission bits including setuid, setgid and sticky. The output then depends
    /// on how the tree was created (umask, checkout tool); use it for trees made for the purpose.
    Preserve,
}

/// How modification times are derived from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtimePolicy {
    /// Every entry gets the epoch. Safe for trees from a VCS checkout, whose mtimes are the
    /// checkout time.
    #[default]
    Set,
    /// Entries newer than the epoch get the epoch; older ones keep their time
    /// (`tar --clamp-mtime`).
    Clamp,
}

/// Numeric owner of every entry. User and group names are never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// Numeric user id.
    pub uid: u32,
    /// Numeric group id.
    pub gid: u32,
}

/// Extended attributes an archive may carry; all others are dropped. File capabilities are
/// kept because binaries need them to work; SELinux labels, `trusted.*` and `user.*` attributes
/// describe the build host, not the image.
pub const XATTR_ALLOWLIST: &[&str] = &["security.capability"];

/// The complete normalisation policy for one archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// The build's timestamp.
    pub epoch: Epoch,
    /// How entry mtimes follow the epoch.
    pub mtime: MtimePolicy,
    /// Owner of every entry.
    pub owner: Owner,
    /// How permission bits are chosen.
    pub modes: ModePolicy,
}

impl Policy {
    /// A policy with default rules and the given epoch.
    pub fn with_epoch(epoch: Epoch) -> Self {
        Policy { epoch, ..Policy::default() }
    }

    /// The permission bits (including setuid/setgid/sticky where kept) for an entry whose
    /// host mode is `host_mode`.
    pub fn mode(&self, kind: EntryKind, host_mode: u32) -> u32 {
        match (self.modes, kind) {
            (_, EntryKind::Symlink) => 0o777,
            (ModePolicy::Normalize, EntryKind::Directory) => 0o755,
            (ModePolicy::Normalize, EntryKind::File) if host_mode & 0o111 != 0 => 0o755,
            (ModePolicy::Normalize, EntryKind::File) => 0o644,
            (ModePolicy::Preserve, _) => host_mode & 0o7777,
        }
    }

    /// Whether an extended attribute of this name is written ([`XATTR_ALLOWLIST`]).
    pub fn keeps_xattr(&self, name: &str) -> bool {
        XATTR_ALLOWLIST.contains(&name)
    }

    /// The modification time for an entry whose host mtime is `host_mtime` (seconds, possibly
    /// before 1970).
    pub fn mtime(&self, host_mtime: i64) -> u64 {
        match self.mtime {
            MtimePolicy::Set => self.epoch.as_secs(),
            MtimePolicy::Clamp => {
                let host = u64::try_from(host_mtime).unwrap_or(0);
                host.min(self.epoch.as_secs())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_modes_ignore_umask_and_special_bits() {
        let policy = Policy::default();
        for host in [0o700, 0o755, 0o775, 0o4755, 0o1777] {
            assert_eq!(policy.mode(EntryKind::Directory, host), 0o755);
        }
        assert_eq!(policy.mode(EntryKind::File, 0o600), 0o644);
        assert_eq!(policy.mode(EntryKind::File, 0o664), 0o644);
        assert_eq!(policy.mode(EntryKind::File, 0o700), 0o755);
        assert_eq!(policy.mode(EntryKind::File, 0o4750), 0o755);
        assert_eq!(policy.mode(EntryKind::Symlink, 0o755), 0o777);
    }

    #[test]
    fn preserved_modes_keep_special_bits() {
        let policy = Policy { modes: ModePolicy::Preserve, ..Policy::default() };
        assert_eq!(policy.mode(EntryKind::File, 0o104755), 0o4755);
        assert_eq!(policy.mode(EntryKind::Directory, 0o41777), 0o1777);
        assert_eq!(policy.mode(EntryKind::Symlink, 0o120755), 0o777);
    }

    #[test]
    fn mtimes_are_set_or_clamped() {
        let epoch = Epoch::from_secs(1000);
        let set = Policy::with_epoch(epoch);
        assert_eq!(set.mtime(5), 1000);
        assert_eq!(set.mtime(5000), 1000);
        let clamp = Policy { mtime: MtimePolicy::Clamp, ..set };
        assert_eq!(clamp.mtime(5), 5);
        assert_eq!(clamp.mtime(5000), 1000);
        assert_eq!(clamp.mtime(-20), 0);
    }
}
