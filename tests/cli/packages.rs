//! Sources a Debian package installs (`package = "…"`): pinned by kiln.lock with the package's
//! version, a build that stops naming both versions when Debian replaced the file, and
//! `kiln lock --update NAME`, which re-locks that source only. Debian's update is played by a
//! package database of the test's own (`DPKG_ADMINDIR`, which dpkg-query reads too) and a changed
//! file at the pinned path's place.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support;

/// A dpkg administrative directory: `status` and `info/PACKAGE.list`/`.md5sums`.
struct Dpkg {
    dir: PathBuf,
    paragraphs: Vec<String>,
}

impl Dpkg {
    fn new(dir: &Path) -> Dpkg {
        fs::create_dir_all(dir.join("info")).unwrap();
        let dpkg = Dpkg { dir: dir.to_owned(), paragraphs: Vec::new() };
        dpkg.write_status();
        dpkg
    }

    /// Records `package` as installed at `version`, holding `files` with their MD5s as they are
    /// now (what dpkg writes when it unpacks them).
    fn install(&mut self, package: &str, version: &str, architecture: &str, files: &[&Path]) {
        self.remove(package);
        self.paragraphs.push(format!(
            "Package: {package}\nStatus: install ok installed\nArchitecture: {architecture}\nVersion: {version}\n"
        ));
        self.write_status();
        let list: String = files.iter().map(|file| format!("{}\n", file.display())).collect();
        fs::write(self.dir.join(format!("info/{package}.list")), list).unwrap();
        let md5sums: String = files
            .iter()
            .map(|file| {
                let sum = support::ok(Command::new("md5sum").arg(file));
                let md5 = sum.split_whitespace().next().unwrap().to_owned();
                format!("{md5}  {}\n", file.display().to_string().trim_start_matches('/'))
            })
            .collect();
        fs::write(self.dir.join(format!("info/{package}.md5sums")), md5sums).unwrap();
    }

    /// Forgets `package`, as `dpkg --purge` does.
    fn remove(&mut self, package: &str) {
        let header = format!("Package: {package}\n");
        self.paragraphs.retain(|paragraph| !paragraph.starts_with(&header));
        self.write_status();
        for suffix in ["list", "md5sums"] {
            let _ = fs::remove_file(self.dir.join(format!("info/{package}.{suffix}")));
        }
    }

    fn write_status(&self) {
        fs::write(self.dir.join("status"), self.paragraphs.join("\n")).unwrap();
    }
}

/// `kiln ARGS…` against the test's package database and cache.
fn kiln(dpkg: &Dpkg, cache: &Path) -> Command {
    let mut command = support::kiln();
    command.env("DPKG_ADMINDIR", &dpkg.dir).env("KILN_CACHE", cache);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `[sources.NAME]` table of a kiln.lock, as text.
fn lock_entry(lock: &str, name: &str) -> String {
    let start = lock.find(&format!("[sources.{name}]")).unwrap_or_else(|| panic!("{name} in {lock}"));
    let rest = &lock[start..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |end| end + 1);
    rest[..end].to_owned()
}

/// A field of a kiln.lock entry.
fn lock_field(entry: &str, field: &str) -> String {
    entry
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field} = \"")))
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{field} in {entry}"))
        .to_owned()
}

/// A recipe whose source `data` is a file the package `kiln-test-data` installs, next to a
/// file pinned in the recipe by checksum.
struct Small {
    work: tempfile::TempDir,
    recipe: PathBuf,
    data: PathBuf,
    dpkg: Dpkg,
}

impl Small {
    fn new() -> Small {
        let work = support::tempdir();
        let data = work.path().join("usr/share/kiln-test/data.txt");
        fs::create_dir_all(data.parent().unwrap()).unwrap();
        fs::write(&data, "one\n").unwrap();
        let recipe = work.path().join("recipe");
        fs::create_dir_all(&recipe).unwrap();
        fs::write(recipe.join("other.txt"), "other\n").unwrap();
        fs::write(
            recipe.join("kiln.toml"),
            format!(
                r#"[recipe]
name = "packages"
source-date-epoch = 1735689600

[sources.data]
path = "{}"
package = "kiln-test-data"

[sources.other]
path = "other.txt"
sha256 = "{}"

[steps.show]
inputs = ["data", "other"]
script = "cat /inputs/data /inputs/other >/out/shown"

[images."shown:v1"]
from = "show"
"#,
                data.display(),
                support::sha256_file(&recipe.join("other.txt")).trim_start_matches("sha256:"),
            ),
        )
        .unwrap();
        let mut dpkg = Dpkg::new(&work.path().join("dpkg"));
        dpkg.install("kiln-test-data", "1.0-1", "all", &[&data]);
        Small { recipe, data, dpkg, work }
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn lock_text(&self) -> String {
        fs::read_to_string(self.recipe.join("kiln.lock")).unwrap()
    }

    fn lock(&self, cache: &str, extra: &[&str]) -> Output {
        support::run(kiln(&self.dpkg, &self.cache(cache)).arg("lock").arg(&self.recipe).args(extra))
    }

    fn build(&self, cache: &str, out: &str) -> Output {
        support::run(
            kiln(&self.dpkg, &self.cache(cache))
                .arg("build")
                .arg(&self.recipe)
                .arg("--out")
                .arg(self.work.path().join(out)),
        )
    }

    /// Debian's update: the package's new version puts other bytes at the same path.
    fn update_package(&mut self, version: &str, content: &str) {
        fs::write(&self.data, content).unwrap();
        let data = self.data.clone();
        self.dpkg.install("kiln-test-data", version, "all", &[&data]);
    }
}

fn digest(output: &Output) -> String {
    assert!(output.status.success(), "{}", stderr(output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout.split_whitespace().nth(1).unwrap_or_else(|| panic!("a digest in {stdout}")).to_owned()
}

#[test]
fn a_package_file_is_locked_with_its_version_and_an_update_stops_the_build_until_relocked() {
    let mut small = Small::new();
    let output = small.lock("cache", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lock = small.lock_text();
    let data = lock_entry(&lock, "data");
    assert_eq!(lock_field(&data, "package"), "kiln-test-data");
    assert_eq!(lock_field(&data, "version"), "1.0-1");
    assert_eq!(lock_field(&data, "architecture"), "all");
    assert_eq!(lock_field(&data, "origin"), small.data.display().to_string());
    assert!(!lock_entry(&lock, "other").contains("package"), "{lock}");
    let first = digest(&small.build("cache", "out"));

    small.update_package("1.1-1", "two\n");
    // Where kiln's cache holds the locked bytes, nothing needs the host's file: the same image.
    assert_eq!(digest(&small.build("cache", "out-cached")), first);

    // A fresh machine has only the host's new file: the build stops, naming the package and both
    // versions, with the command that re-locks; it writes nothing and never re-locks by itself.
    let output = small.build("fresh", "out-fresh");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "source \"data\": {} is not the file kiln.lock pins: Debian package kiln-test-data is 1.1-1 on \
             this host, kiln.lock has 1.0-1",
            small.data.display()
        )),
        "{message}"
    );
    assert!(message.contains(&format!("`kiln lock --update data {}`", small.recipe.display())), "{message}");
    assert!(message.contains("apt-get install kiln-test-data=1.0-1"), "{message}");
    assert_eq!(small.lock_text(), lock, "the build must not touch kiln.lock");
    assert!(!small.work.path().join("out-fresh").exists());

    // Re-locking that one source: it says what changed, and keeps every other entry.
    let output = small.lock("fresh", &["--update", "data"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = stderr(&output);
    let relocked = small.lock_text();
    let old_sha = lock_field(&data, "sha256");
    let new_sha = lock_field(&lock_entry(&relocked, "data"), "sha256");
    assert!(
        report.contains(&format!(
            "data: kiln-test-data 1.0-1 (sha256 {}) → kiln-test-data 1.1-1 (sha256 {})",
            &old_sha[..12],
            &new_sha[..12]
        )),
        "{report}"
    );
    assert_eq!(lock_field(&lock_entry(&relocked, "data"), "version"), "1.1-1");
    assert_eq!(lock_entry(&relocked, "other"), lock_entry(&lock, "other"));
    assert_eq!(relocked.replace(&lock_entry(&relocked, "data"), ""), lock.replace(&data, ""));

    let output = small.build("fresh", "out-relocked");
    let second = digest(&output);
    assert_ne!(second, first, "the new package's bytes make another image");
    // The SBOM and provenance name the package and the version the lock pins.
    let attestations = small.work.path().join("out-relocked.attestations");
    let sbom: Value =
        serde_json::from_slice(&fs::read(attestations.join("shown_v1.spdx.json")).unwrap()).unwrap();
    let source =
        sbom["packages"].as_array().unwrap().iter().find(|p| p["name"] == "data").expect("the source");
    assert_eq!(source["versionInfo"], "1.1-1");
    assert_eq!(source["externalRefs"][0]["referenceLocator"], "pkg:deb/debian/kiln-test-data@1.1-1?arch=all");
    let provenance: Value =
        serde_json::from_slice(&fs::read(attestations.join("shown_v1.intoto.json")).unwrap()).unwrap();
    let dependency = provenance["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "data")
        .expect("the source");
    assert_eq!(dependency["annotations"]["purl"], "pkg:deb/debian/kiln-test-data@1.1-1?arch=all");
    assert_eq!(dependency["digest"]["sha256"], new_sha.as_str());

    // Nothing changed since: re-locking says so and leaves the file as it was.
    let output = small.lock("fresh", &["--update", "data"]);
    assert!(stderr(&output).contains("data: unchanged, kiln-test-data 1.1-1"), "{}", stderr(&output));
    assert_eq!(small.lock_text(), relocked);
}

#[test]
fn a_package_file_changed_or_removed_after_dpkg_installed_it_is_named_and_never_locked() {
    let mut small = Small::new();
    assert!(small.lock("cache", &[]).status.success());
    let lock = small.lock_text();

    // Same version, other bytes: the file was edited after dpkg installed it.
    fs::write(&small.data, "edited\n").unwrap();
    let output = small.build("fresh", "out");
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains(
            "Debian package kiln-test-data is 1.0-1 as kiln.lock has, but its file was changed since \
             (dpkg --verify kiln-test-data)"
        ),
        "{}",
        stderr(&output)
    );
    // Locking it would pin bytes the package never had: dpkg's MD5 refuses them.
    let output = small.lock("fresh", &["--update", "data"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(stderr(&output).contains("is not the file package kiln-test-data 1.0-1 installed: its MD5 is"));
    assert_eq!(small.lock_text(), lock);

    // The package removed: the file is gone and so is the package.
    fs::remove_file(&small.data).unwrap();
    small.dpkg.remove("kiln-test-data");
    let output = small.build("fresh", "out");
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains(&format!(
            "source \"data\": {} is missing: Debian package kiln-test-data is not installed here; kiln.lock has 1.0-1",
            small.data.display()
        )),
        "{}",
        stderr(&output)
    );
    let output = small.lock("fresh", &["--update", "data"]);
    assert!(!output.status.success());
    assert_eq!(small.lock_text(), lock);

    // Installed, but without that file (another package provides it now).
    fs::write(&small.data, "one\n").unwrap();
    small.dpkg.install("kiln-test-data", "2.0-1", "all", &[&small.recipe.join("other.txt")]);
    let output = small.lock("fresh", &["--update", "data"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "package kiln-test-data 2.0-1 does not install {} (dpkg -L kiln-test-data)",
            small.data.display()
        )),
        "{}",
        stderr(&output)
    );
    assert_eq!(small.lock_text(), lock);
}

#[test]
fn package_sources_and_updates_are_checked_before_anything_is_fetched() {
    let small = Small::new();
    let toml = small.recipe.join("kiln.toml");
    let text = fs::read_to_string(&toml).unwrap();
    let data_path = small.data.display().to_string();
    let cases = [
        (
            text.replace(
                "package = \"kiln-test-data\"",
                &format!("package = \"kiln-test-data\"\nsha256 = \"{}\"", "0".repeat(64)),
            ),
            "pinned by kiln.lock, with the package's version, not in the recipe: drop sha256/sha512 and run \
             `kiln lock --update data`",
        ),
        (text.replace(&data_path, "usr/share/kiln-test/data.txt"), "give its absolute path"),
        (
            text.replace("package = \"kiln-test-data\"", "package = \"Kiln\""),
            "\"Kiln\" is not a Debian package name",
        ),
        (
            text.replace("package = \"kiln-test-data\"", "package = \"k\""),
            "\"k\" is not a Debian package name",
        ),
        (
            text.replace("package = \"kiln-test-data\"", "package = \"-kiln\""),
            "\"-kiln\" is not a Debian package name",
        ),
    ];
    for (recipe, expected) in cases {
        fs::write(&toml, &recipe).unwrap();
        let output = small.lock("cache", &[]);
        assert_eq!(output.status.code(), Some(3), "{recipe}");
        assert!(stderr(&output).contains(expected), "{expected}: {}", stderr(&output));
    }
    fs::write(&toml, &text).unwrap();

    let output = small.lock("cache", &["--update", "data"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("there is no kiln.lock to update: `kiln lock"), "{}", stderr(&output));
    assert!(small.lock("cache", &[]).status.success());
    let output = small.lock("cache", &["--update", "data", "--update", "nope"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("--update nope: the recipe has no source \"nope\" that kiln.lock pins (those it pins: data, other)"),
        "{}",
        stderr(&output)
    );
    // A lock that names another package, or none, for the file is stale.
    let lock = small.lock_text();
    fs::write(
        small.recipe.join("kiln.lock"),
        lock.replace("package = \"kiln-test-data\"", "package = \"other\""),
    )
    .unwrap();
    let output = small.build("cache", "out");
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("the recipe says package kiln-test-data installs it, kiln.lock other"),
        "{}",
        stderr(&output)
    );
}

/// Replaces `from` by `to` in a recipe's kiln.toml and kiln.lock: a source moved elsewhere.
fn move_source(recipe: &Path, from: &str, to: &Path) {
    for file in ["kiln.toml", "kiln.lock"] {
        let path = recipe.join(file);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} in {}", path.display());
        fs::write(&path, text.replace(from, &to.display().to_string())).unwrap();
    }
}

/// A release recipe built from Debian's kernel source (recipes/solana with Debian's
/// linux-source-6.12 in place of the kernel.org tarball, locked here) when Debian publishes the
/// next revision: a kernel tarball with other bytes at the pinned path's place stops the build
/// with the package's two versions and the command that re-locks; nothing re-locks it.
#[test]
fn a_release_recipe_stops_when_debian_replaces_its_kernel_source() {
    const TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
    if !support::require_file(TARBALL) {
        return;
    }
    let work = support::tempdir();
    let recipe = support::solana_recipe_copy(work.path());
    let manifest = recipe.join("kiln.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let upstream = "url = \"https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.28.tar.xz\"\n\
                    sha256 = \"e8a099182562aecff781de72ce769461e706d97af42d740dff20eb450dd5771e\"\n";
    assert!(text.contains(upstream), "{text}");
    let debian = format!("path = \"{TARBALL}\"\npackage = \"linux-source-6.12\"\n");
    fs::write(&manifest, text.replace(upstream, &debian)).unwrap();
    // Locked on a machine of its own: the build's cache does not hold the locked bytes (a cache
    // that does builds them, addressed by content, whatever Debian installed since).
    support::ok(
        support::kiln()
            .env("KILN_CACHE", work.path().join("lock-cache"))
            .arg("lock")
            .arg(&recipe)
            .args(["--update", "linux"]),
    );
    // Debian's next revision: another tarball where the package installs it.
    let replaced = work.path().join("usr/src/linux-source-6.12.tar.xz");
    fs::create_dir_all(replaced.parent().unwrap()).unwrap();
    fs::copy(TARBALL, &replaced).unwrap();
    fs::OpenOptions::new().append(true).open(&replaced).unwrap().write_all(b"\0").unwrap();
    move_source(&recipe, TARBALL, &replaced);
    let mut dpkg = Dpkg::new(&work.path().join("dpkg"));
    dpkg.install("linux-source-6.12", "6.12.999-1~deb12u1", "all", &[&replaced]);
    let lock = fs::read_to_string(recipe.join("kiln.lock")).unwrap();
    let locked_version = lock_field(&lock_entry(&lock, "linux"), "version");

    let output = support::run(
        kiln(&dpkg, &work.path().join("cache"))
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(work.path().join("out"))
            .arg("--offline"),
    );
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "source \"linux\": {} is not the file kiln.lock pins: Debian package linux-source-6.12 is \
             6.12.999-1~deb12u1 on this host, kiln.lock has {locked_version}",
            replaced.display()
        )),
        "{message}"
    );
    assert!(message.contains(&format!("`kiln lock --update linux {}`", recipe.display())), "{message}");
    assert_eq!(
        fs::read_to_string(recipe.join("kiln.lock")).unwrap(),
        lock,
        "a release never re-locks by itself"
    );
    assert!(!work.path().join("out").exists());
}

/// scripts/smoke's path when Debian has replaced systemd-boot-efi since the lock was written:
/// the smoke recipe's build stops like any other, naming the version installed (as the real
/// `dpkg-query` reports it), `kiln lock --update` re-locks the stub alone, and the recipe builds
/// with it (its kernel from the shared cache).
#[test]
fn the_smoke_recipe_relocks_a_replaced_package_and_builds() {
    const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
    if !support::require_file(STUB)
        || !support::require_tool("musl-gcc")
        || !support::require_tool("dpkg-query")
    {
        return;
    }
    let installed =
        support::ok(Command::new("dpkg-query").args(["-W", "-f", "${Version}", "systemd-boot-efi"]));
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    // The lock made stale: it pins an earlier revision's stub, which no cache holds.
    let lock_path = recipe.join("kiln.lock");
    let fresh = fs::read_to_string(&lock_path).unwrap();
    let entry = lock_entry(&fresh, "systemd-stub");
    let stale_sha = hex_sha256(b"systemd-stub of systemd-boot-efi 254.20-1~bpo12+1");
    let stale_entry = entry
        .replace(&lock_field(&entry, "sha256"), &stale_sha)
        .replace(&lock_field(&entry, "version"), "254.20-1~bpo12+1");
    let lock = fresh.replace(&entry, &stale_entry);
    fs::write(&lock_path, &lock).unwrap();
    let cache = support::shared_cache();
    let build = |out: &str| {
        support::run(
            support::kiln()
                .env("KILN_CACHE", &cache)
                .arg("build")
                .arg(&recipe)
                .arg("--out")
                .arg(work.path().join(out))
                .arg("--json"),
        )
    };

    let output = build("stale");
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "source \"systemd-stub\": {STUB} is not the file kiln.lock pins: Debian package systemd-boot-efi is \
             {installed} on this host, kiln.lock has 254.20-1~bpo12+1"
        )),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read_to_string(&lock_path).unwrap(), lock);

    let output = support::run(
        support::kiln().env("KILN_CACHE", &cache).arg("lock").arg(&recipe).args(["--update", "systemd-stub"]),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "systemd-stub: systemd-boot-efi 254.20-1~bpo12+1 (sha256 {}) → systemd-boot-efi {installed} (sha256 ",
            &stale_sha[..12]
        )),
        "{}",
        stderr(&output)
    );
    let relocked = fs::read_to_string(&lock_path).unwrap();
    assert_eq!(relocked, fresh, "re-locking restores what this host's package installs, nothing else");

    let output = build("relocked");
    assert!(output.status.success(), "{}", stderr(&output));
    let built: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        built["images"].as_array().unwrap().iter().any(|image| image["name"] == "installer:smoke"),
        "{built}"
    );
    let sbom: Value = serde_json::from_slice(
        &fs::read(work.path().join("relocked.attestations/installer_smoke.spdx.json")).unwrap(),
    )
    .unwrap();
    let source =
        sbom["packages"].as_array().unwrap().iter().find(|p| p["name"] == "systemd-stub").expect("the stub");
    assert_eq!(source["versionInfo"], installed.as_str());
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
