//! The host's package database as dpkg keeps it: which installed package holds a file, at which
//! version, and the MD5 dpkg recorded for it.
//!
//! Read as `dpkg-query` reads it: the administrative directory is `$DPKG_ADMINDIR`, else
//! `/var/lib/dpkg`; `status` holds one deb822 paragraph per package (deb-status(5)), and
//! `info/PACKAGE.list` / `info/PACKAGE:ARCH.list` (the latter for `Multi-Arch: same` packages)
//! its files, `info/….md5sums` their MD5s as `dpkg --verify` checks them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use md5::{Digest as _, Md5};

use crate::deb::Control;

/// An installed package holding a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The package's name.
    pub package: String,
    /// Its installed version.
    pub version: String,
    /// Its architecture (`all`, `amd64`, …).
    pub architecture: String,
    /// The MD5 (hex) dpkg recorded for the file, when the package ships md5sums.
    pub md5: Option<String>,
}

/// Why the database does not vouch for a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database cannot be read.
    #[error("cannot read dpkg's database {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The package is not installed.
    #[error("package {package} is not installed (dpkg's database {})", admindir.display())]
    NotInstalled {
        /// The package.
        package: String,
        /// The database read.
        admindir: PathBuf,
    },
    /// The package is installed, but does not hold the file.
    #[error("package {package} {version} does not install {} (dpkg -L {package})", path.display())]
    NotHeld {
        /// The package.
        package: String,
        /// Its installed version.
        version: String,
        /// The file.
        path: PathBuf,
    },
    /// The file is not the one the package installed.
    #[error("{} is not the file package {package} {version} installed: its MD5 is {found}, dpkg recorded {recorded} (dpkg --verify {package})", path.display())]
    Modified {
        /// The package.
        package: String,
        /// Its installed version.
        version: String,
        /// The file.
        path: PathBuf,
        /// The MD5 dpkg recorded.
        recorded: String,
        /// The MD5 of the file.
        found: String,
    },
}

impl Error {
    /// Whether the recipe is wrong (it names a package that does not install the file), rather
    /// than the host (a package missing, a file changed, a database unreadable).
    pub fn is_input_error(&self) -> bool {
        matches!(self, Error::NotHeld { .. })
    }
}

impl Installed {
    /// Whether `copy` (the file, or a copy of it) has the MD5 dpkg recorded for `path`, as
    /// `dpkg --verify` checks it; a package without md5sums is taken at its word.
    pub fn verify(&self, path: &Path, copy: &Path) -> Result<(), Error> {
        let Some(recorded) = &self.md5 else {
            return Ok(());
        };
        let mut file =
            fs::File::open(copy).map_err(|source| Error::Read { path: copy.to_owned(), source })?;
        let mut md5 = Md5::default();
        io::copy(&mut file, &mut md5).map_err(|source| Error::Read { path: copy.to_owned(), source })?;
        let found = hex::encode(md5.finalize());
        if found == *recorded {
            return Ok(());
        }
        Err(Error::Modified {
            package: self.package.clone(),
            version: self.version.clone(),
            path: path.to_owned(),
            recorded: recorded.clone(),
            found,
        })
    }
}

/// The package database of this host.
#[derive(Debug, Clone)]
pub struct Database {
    admindir: PathBuf,
}

impl Database {
    /// The database dpkg-query would read: `$DPKG_ADMINDIR`, else `/var/lib/dpkg`.
    pub fn host() -> Database {
        let admindir = std::env::var_os("DPKG_ADMINDIR")
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from("/var/lib/dpkg"), PathBuf::from);
        Database { admindir }
    }

    /// The database in `admindir`.
    pub fn at(admindir: &Path) -> Database {
        Database { admindir: admindir.to_owned() }
    }

    /// The installed version of `package` (the first installed architecture, by the status
    /// file's order), or `None` when it is not installed.
    pub fn version(&self, package: &str) -> Result<Option<String>, Error> {
        Ok(self.installed(package)?.into_iter().next().map(|control| field(&control, "Version")))
    }

    /// The installed `package` that holds `path`, with the MD5 dpkg recorded for it.
    pub fn holding(&self, package: &str, path: &Path) -> Result<Installed, Error> {
        let installed = self.installed(package)?;
        if installed.is_empty() {
            return Err(Error::NotInstalled { package: package.to_owned(), admindir: self.admindir.clone() });
        }
        let wanted = path.to_string_lossy();
        for control in &installed {
            let architecture = field(control, "Architecture");
            let Some(list) = self.info_file(package, &architecture, "list")? else {
                continue;
            };
            if !list.lines().any(|line| line == wanted) {
                continue;
            }
            let relative = wanted.trim_start_matches('/');
            let md5 = self.info_file(package, &architecture, "md5sums")?.and_then(|sums| {
                sums.lines().find_map(|line| {
                    let (md5, file) = line.split_once("  ")?;
                    (file == relative).then(|| md5.to_owned())
                })
            });
            return Ok(Installed {
                package: package.to_owned(),
                version: field(control, "Version"),
                architecture,
                md5,
            });
        }
        Err(Error::NotHeld {
            package: package.to_owned(),
            version: field(&installed[0], "Version"),
            path: path.to_owned(),
        })
    }

    /// The status paragraphs of `package` whose state is "installed".
    fn installed(&self, package: &str) -> Result<Vec<Control>, Error> {
        let path = self.admindir.join("status");
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(source) if source.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(Error::Read { path, source }),
        };
        Ok(paragraphs(&text)
            .map(Control::parse)
            .filter(|control| control.get("Package") == Some(package))
            .filter(|control| {
                control
                    .get("Status")
                    .is_some_and(|status| status.split_whitespace().last() == Some("installed"))
            })
            .collect())
    }

    /// `info/PACKAGE:ARCH.SUFFIX`, else `info/PACKAGE.SUFFIX`, if either exists.
    fn info_file(&self, package: &str, architecture: &str, suffix: &str) -> Result<Option<String>, Error> {
        let info = self.admindir.join("info");
        for name in [format!("{package}:{architecture}.{suffix}"), format!("{package}.{suffix}")] {
            let path = info.join(name);
            match fs::read(&path) {
                Ok(bytes) => return Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(source) if source.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Read { path, source }),
            }
        }
        Ok(None)
    }
}

fn field(control: &Control, name: &str) -> String {
    control.get(name).unwrap_or_default().to_owned()
}

/// deb822 paragraphs: separated by lines that are empty or hold only white space.
fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(['\n', ' ', '\t', '\r']);
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len();
        let mut offset = 0;
        for line in rest.split_inclusive('\n') {
            if line.trim().is_empty() {
                end = offset;
                break;
            }
            offset += line.len();
        }
        let (paragraph, tail) = rest.split_at(end);
        rest = tail;
        Some(paragraph)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: linux-source-6.12
Status: install ok installed
Architecture: all
Version: 6.12.117-1~deb12u1
Description: Linux kernel source
 with Debian patches

Package: systemd-boot-efi
Status: deinstall ok config-files
Architecture: i386
Version: 252.1-1

Package: systemd-boot-efi
Status: install ok installed
Multi-Arch: same
Architecture: amd64
Version: 254.26-1~bpo12+1
";

    fn database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("info")).unwrap();
        fs::write(dir.path().join("status"), STATUS).unwrap();
        fs::write(
            dir.path().join("info/linux-source-6.12.list"),
            "/.\n/usr\n/usr/src\n/usr/src/linux-source-6.12.tar.xz\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("info/linux-source-6.12.md5sums"),
            "0123456789abcdef0123456789abcdef  usr/src/linux-source-6.12.tar.xz\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("info/systemd-boot-efi:amd64.list"),
            "/usr/lib/systemd/boot/efi/linuxx64.efi.stub\n",
        )
        .unwrap();
        let database = Database::at(dir.path());
        (dir, database)
    }

    #[test]
    fn finds_the_package_holding_a_file_with_its_md5() {
        let (_dir, database) = database();
        let installed =
            database.holding("linux-source-6.12", Path::new("/usr/src/linux-source-6.12.tar.xz")).unwrap();
        assert_eq!(installed.version, "6.12.117-1~deb12u1");
        assert_eq!(installed.architecture, "all");
        assert_eq!(installed.md5.as_deref(), Some("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn multi_arch_packages_list_their_files_under_the_architecture() {
        let (_dir, database) = database();
        let stub = Path::new("/usr/lib/systemd/boot/efi/linuxx64.efi.stub");
        let installed = database.holding("systemd-boot-efi", stub).unwrap();
        // The removed i386 paragraph (config files only) is not an installed version.
        assert_eq!(
            (installed.version.as_str(), installed.architecture.as_str()),
            ("254.26-1~bpo12+1", "amd64")
        );
        assert_eq!(installed.md5, None);
        assert_eq!(database.version("systemd-boot-efi").unwrap().as_deref(), Some("254.26-1~bpo12+1"));
    }

    #[test]
    fn a_file_the_package_does_not_hold_or_a_package_not_installed_is_named() {
        let (_dir, database) = database();
        let error = database.holding("linux-source-6.12", Path::new("/tmp/linux.tar.xz")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "package linux-source-6.12 6.12.117-1~deb12u1 does not install /tmp/linux.tar.xz (dpkg -L linux-source-6.12)"
        );
        let error = database.holding("linux-source-6.13", Path::new("/usr/src/x")).unwrap_err();
        assert!(matches!(error, Error::NotInstalled { .. }), "{error}");
        assert_eq!(database.version("linux-source-6.13").unwrap(), None);
        // No database at all (another distribution): nothing is installed.
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Database::at(empty.path()).holding("linux-source-6.12", Path::new("/usr/src/x")),
            Err(Error::NotInstalled { .. })
        ));
    }

    #[test]
    fn paragraphs_are_split_at_blank_lines_with_white_space() {
        let text = "A: 1\n \nB: 2\n\n\n\tC: 3\nD: 4";
        assert_eq!(paragraphs(text).collect::<Vec<_>>(), ["A: 1\n", "B: 2\n", "C: 3\nD: 4"]);
    }
}
