//! `kiln modules`: against kmod 30 (`depmod`, `modinfo`, `modprobe`) on Debian's real 6.12
//! module tree, on a small tree with a depmod.d configuration, and the compatibility checks.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{eprintln_skip, kiln, ok, ok_bytes, require_tool, run, tempdir, tempdir_in};

const DEB: &str = "/var/cache/kiln-fixtures/linux-image-6.12-amd64.deb";

/// Files depmod writes, in kmod's order.
const OUTPUTS: [&str; 10] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// Debian's linux-image-6.12-amd64, unpacked once per build directory (shared by every test
/// of this run, under a lock); returns the root and the kernel release.
fn debian_tree() -> Option<(PathBuf, String)> {
    if !Path::new(DEB).exists() {
        let message = format!("{DEB} is missing; run scripts/install-deps");
        assert!(std::env::var_os("CI").is_none(), "CI requires it: {message}");
        eprintln_skip(&message);
        return None;
    }
    if !require_tool("depmod") || !require_tool("modinfo") || !require_tool("modprobe") {
        return None;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = cache.join("linux-image-6.12-amd64");
    fs::create_dir_all(cache).unwrap();
    let lock = File::create(cache.join("linux-image-6.12-amd64.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !root.join("lib/modules").exists() {
        let staging = tempfile::Builder::new().prefix(".deb-").tempdir_in(cache).unwrap();
        ok(Command::new("dpkg-deb").arg("-x").arg(DEB).arg(staging.path()));
        let staged = staging.keep();
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&staged, &root).unwrap();
    }
    let release = fs::read_dir(root.join("lib/modules")).unwrap().next().unwrap().unwrap().file_name();
    Some((root, release.to_string_lossy().into_owned()))
}

/// A copy of the tree's lib/modules (hard links: depmod replaces files, it never edits them).
fn linked_copy(root: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    ok(Command::new("cp").arg("-al").arg(root.join("lib")).arg(into));
}

fn empty_config(work: &Path) -> PathBuf {
    let dir = work.join("depmod.d");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn module_dir(base: &Path, release: &str) -> PathBuf {
    base.join("lib/modules").join(release)
}

fn assert_same_outputs(ours: &Path, kmods: &Path) {
    for name in OUTPUTS {
        let a = fs::read(ours.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = fs::read(kmods.join(name)).unwrap();
        assert!(a == b, "{name} differs from kmod's ({} vs {} bytes)", a.len(), b.len());
    }
}

/// `modprobe --show-depends` for many names in one process, paths made relative to `base`.
fn show_depends(base: &Path, release: &str, names: &[String]) -> String {
    let mut command = Command::new("modprobe");
    command.arg("-d").arg(base).args(["-S", release, "-C", "/dev/null", "-a", "--show-depends"]).args(names);
    let output = run(&mut command);
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    text.replace(&base.display().to_string(), "BASE")
}

#[test]
fn depmod_matches_kmod_on_debian_tree() {
    let Some((root, release)) = debian_tree() else { return };
    // Beside the unpacked tree, so that hard links work.
    let work = tempdir_in(root.parent().unwrap());
    let (ours, theirs) = (work.path().join("ours"), work.path().join("kmod"));
    linked_copy(&root, &ours);
    linked_copy(&root, &theirs);
    ok(Command::new("depmod").arg("-b").arg(&theirs).arg("-C").arg(empty_config(work.path())).arg(&release));
    ok(kiln().args(["modules", "depmod", "--basedir"]).arg(&ours).arg(&release));
    assert_same_outputs(&module_dir(&ours, &release), &module_dir(&theirs, &release));

    // modprobe resolves every module, and aliases, the same way with our indexes as with kmod's.
    let dep = fs::read_to_string(module_dir(&ours, &release).join("modules.dep")).unwrap();
    let mut names: Vec<String> = dep
        .lines()
        .map(|line| {
            let path = line.split(':').next().unwrap();
            kiln_modules::module::module_name(Path::new(path))
        })
        .collect();
    assert!(names.len() > 4000, "{} modules", names.len());
    let builtin = fs::read_to_string(module_dir(&ours, &release).join("modules.builtin")).unwrap();
    names.extend(builtin.lines().map(|l| kiln_modules::module::module_name(Path::new(l))));
    let ours_text = show_depends(&ours, &release, &names);
    assert_eq!(ours_text, show_depends(&theirs, &release, &names));
    assert!(ours_text.matches("insmod ").count() >= names.len() - builtin.lines().count());

    let alias = fs::read_to_string(module_dir(&ours, &release).join("modules.alias")).unwrap();
    let mut aliases: Vec<String> =
        alias.lines().skip(1).step_by(37).map(|l| l.split(' ').nth(1).unwrap().to_owned()).collect();
    aliases.extend(
        ["fs-ext4", "crypto-crc32c", "symbol:stp_proto_register", "char-major-10-229", "net-pf-7"]
            .map(String::from),
    );
    assert!(aliases.iter().filter(|a| a.contains('*')).count() > 100);
    assert_eq!(show_depends(&ours, &release, &aliases), show_depends(&theirs, &release, &aliases));
}

/// modinfo's rendering of `parm`/`parmtype` pairs: one `name:desc (type)` per name, in
/// reverse order of first appearance.
fn modinfo_parms(fields: &[(String, String)]) -> Vec<String> {
    let mut params: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for (key, value) in fields.iter().filter(|(k, _)| k == "parm" || k == "parmtype") {
        let Some((name, rest)) = value.split_once(':') else { continue };
        let at = match params.iter().position(|(n, _, _)| n == name) {
            Some(at) => at,
            None => {
                params.insert(0, (name.to_owned(), None, None));
                0
            }
        };
        if key == "parm" {
            params[at].1 = Some(rest.to_owned());
        } else {
            params[at].2 = Some(rest.to_owned());
        }
    }
    params
        .into_iter()
        .map(|(name, param, kind)| match (param, kind) {
            (None, Some(kind)) => format!("{name}:{kind}"),
            (Some(param), Some(kind)) => format!("{name}:{param} ({kind})"),
            (Some(param), None) => format!("{name}:{param}"),
            (None, None) => unreachable!(),
        })
        .collect()
}

const SIGNATURE_KEYS: [&str; 5] = ["sig_id", "signer", "sig_key", "sig_hashalgo", "signature"];

#[test]
fn info_agrees_with_modinfo_on_every_module() {
    let Some((root, _)) = debian_tree() else { return };
    let mut files = Vec::new();
    let mut stack = vec![root.join("lib/modules")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".ko.xz") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 4000);

    // modinfo -0: NUL-separated entries; each module starts with `filename:`.
    let output = ok_bytes(Command::new("modinfo").arg("-0").args(&files));
    let mut theirs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = String::new();
    for entry in output.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry).into_owned();
        if let Some(path) = entry.strip_prefix("filename:") {
            current = path.trim_start().to_owned();
            theirs.entry(current.clone()).or_default();
        } else if let Some(parm) = entry.strip_prefix("parm:") {
            theirs.get_mut(&current).unwrap().push(("parm".into(), parm.trim_start().to_owned()));
        } else {
            let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
            theirs.get_mut(&current).unwrap().push((key.to_owned(), value.to_owned()));
        }
    }
    assert_eq!(theirs.len(), files.len());

    let json: Value =
        serde_json::from_str(&ok(kiln().args(["modules", "info", "--json"]).args(&files))).unwrap();
    let modules = json.as_array().unwrap();
    assert_eq!(modules.len(), files.len());
    let mut signed = 0;
    for module in modules {
        let path = module["path"].as_str().unwrap();
        let fields: Vec<(String, String)> = module["modinfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["key"].as_str().unwrap().to_owned(), f["value"].as_str().unwrap().to_owned()))
            .collect();
        let expected = &theirs[path];
        let plain = |fields: &[(String, String)]| -> Vec<(String, String)> {
            fields
                .iter()
                .filter(|(k, _)| k != "parm" && k != "parmtype" && !SIGNATURE_KEYS.contains(&k.as_str()))
                .cloned()
                .collect()
        };
        assert_eq!(plain(&fields), plain(expected), "{path}: fields differ from modinfo");
        let their_parms: Vec<String> =
            expected.iter().filter(|(k, _)| k == "parm").map(|(_, v)| v.clone()).collect();
        assert_eq!(modinfo_parms(&fields), their_parms, "{path}: parameters differ");
        let has_signature = expected.iter().any(|(k, _)| k == "sig_id");
        assert_eq!(module["signature"].is_object(), has_signature, "{path}: signature");
        // The signature's details as modinfo shows them (the signature bytes themselves are
        // compared in modules_sign.rs, where modinfo's line wrapping is known).
        let details = |fields: Vec<(String, String)>| -> Vec<(String, String)> {
            fields.into_iter().filter(|(k, _)| SIGNATURE_KEYS[..4].contains(&k.as_str())).collect()
        };
        let ours: Vec<(String, String)> = module["signature"]["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| (f["key"].as_str().unwrap().to_owned(), f["value"].as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(details(ours), details(expected.clone()), "{path}: signature details differ from modinfo");
        signed += usize::from(has_signature);
        // The parsed vermagic is the modinfo string's.
        let vermagic = expected.iter().find(|(k, _)| k == "vermagic").map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(module["vermagic"]["release"].as_str().unwrap(), vermagic.split(' ').next().unwrap());
        assert_eq!(module["vermagic"]["modversions"], Value::Bool(vermagic.contains(" modversions ")));
    }
    assert_eq!(signed, files.len(), "Debian signs every module");
}

#[test]
fn info_versions_agree_with_modprobe_dump_modversions() {
    let Some((root, _)) = debian_tree() else { return };
    let dep = fs::read_to_string(
        root.join("lib/modules").read_dir().unwrap().next().unwrap().unwrap().path().join("modules.order"),
    )
    .unwrap();
    let dir = root.join("lib/modules").read_dir().unwrap().next().unwrap().unwrap().path();
    for line in dep.lines().step_by(97) {
        let path = dir.join(format!("{line}.xz"));
        let theirs = ok(Command::new("modprobe").arg("--dump-modversions").arg(&path));
        let json: Value =
            serde_json::from_str(&ok(kiln().args(["modules", "info", "--json"]).arg(&path))).unwrap();
        let ours: String = json[0]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("0x{:08x}\t{}\n", v["crc"].as_u64().unwrap(), v["symbol"].as_str().unwrap()))
            .collect();
        assert_eq!(ours, theirs, "{}", path.display());
    }
}

#[test]
fn info_reads_every_compression_and_text_output() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let source = module_dir(&root, &release).join("kernel/net/bridge/bridge.ko.xz");
    let plain = work.path().join("bridge.ko");
    fs::write(&plain, ok_bytes(Command::new("xz").arg("-dc").arg(&source))).unwrap();
    let zst = work.path().join("bridge.ko.zst");
    ok(Command::new("zstd").arg("-q").arg(&plain).arg("-o").arg(&zst));
    let gz = work.path().join("bridge.ko.gz");
    fs::write(&gz, ok_bytes(Command::new("gzip").arg("-c").arg(&plain))).unwrap();
    let info = |path: &Path| -> Value {
        let mut value: Value =
            serde_json::from_str(&ok(kiln().args(["modules", "info", "--json"]).arg(path))).unwrap();
        value[0]["path"] = Value::Null;
        value[0]["compression"] = Value::Null;
        value
    };
    let reference = info(&source);
    for path in [&plain, &zst, &gz] {
        assert_eq!(info(path), reference, "{}", path.display());
    }
    let module = &reference[0];
    assert_eq!(module["name"], "bridge");
    let exports: Vec<&str> =
        module["exports"].as_array().unwrap().iter().map(|e| e["symbol"].as_str().unwrap()).collect();
    assert!(exports.contains(&"br_vlan_enabled"), "{exports:?}");
    assert!(module["exports"][0]["crc"].is_u64());
    let needed: Vec<&str> =
        module["needed"].as_array().unwrap().iter().map(|e| e["symbol"].as_str().unwrap()).collect();
    assert!(needed.contains(&"stp_proto_register") && needed.contains(&"module_layout"), "{needed:?}");

    let text = ok(kiln().args(["modules", "info"]).arg(&source));
    assert!(text.starts_with(&format!("filename:       {}\n", source.display())), "{text}");
    assert!(text.contains("\nalias:          rtnl-link-bridge\n"), "{text}");
    assert!(text.contains("vermagic parsed: release 6.12"), "{text}");
    assert!(text.contains("  0x") && text.contains(" stp_proto_register\n"), "{text}");
}

#[test]
fn info_rejects_broken_modules_with_the_path() {
    let work = tempdir();
    let cases: [(&str, &[u8]); 4] = [
        ("empty.ko", b""),
        ("text.ko", b"not an ELF file at all, just text\n"),
        ("short.ko", b"\x7fELF\x02\x01\x01"),
        ("bad.ko.xz", b"\xfd7zXZ\0 truncated"),
    ];
    for (name, bytes) in cases {
        let path = work.path().join(name);
        fs::write(&path, bytes).unwrap();
        let output = run(kiln().args(["modules", "info"]).arg(&path));
        assert_eq!(output.status.code(), Some(3), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let output = run(kiln().args(["modules", "info"]).arg(work.path().join("missing.ko")));
    assert_eq!(output.status.code(), Some(3));
}

/// A small tree of real modules: bridge → stp → llc, with a newer stp in `updates/`, an llc
/// chosen by `override` from `extra/`, modules outside modules.order (one in an external-like
/// custom directory), an excluded directory, and a `search` list with `built-in`.
fn small_tree(root: &Path, release: &str, into: &Path) {
    let from = module_dir(root, release);
    let to = module_dir(into, release);
    let place = |src: &str, dst: &str| {
        let dst = to.join(dst);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(from.join(src), dst).unwrap();
    };
    for path in [
        "kernel/net/bridge/bridge.ko.xz",
        "kernel/net/802/stp.ko.xz",
        "kernel/net/llc/llc.ko.xz",
        "kernel/net/llc/llc2.ko.xz",
    ] {
        place(path, path);
    }
    place("kernel/net/802/stp.ko.xz", "updates/stp.ko.xz");
    place("kernel/net/llc/llc.ko.xz", "extra/llc.ko.xz");
    place("kernel/net/llc/llc.ko.xz", "third/llc.ko.xz");
    place("kernel/drivers/net/dummy.ko.xz", "kernel/drivers/net/dummy.ko.xz");
    place("kernel/drivers/net/veth.ko.xz", "custom/veth.ko.xz");
    place("kernel/sound/drivers/snd-dummy.ko.xz", "custom/snd-dummy.ko.xz");
    for dep in [
        "kernel/sound/core/snd-pcm.ko.xz",
        "kernel/sound/core/snd-timer.ko.xz",
        "kernel/sound/core/snd.ko.xz",
        "kernel/sound/soundcore.ko.xz",
    ] {
        place(dep, dep);
    }
    // Broken files: kmod lists them without dependencies and says why; so does kiln.
    fs::write(to.join("custom/broken.ko"), b"not an ELF object\n").unwrap();
    let xz = fs::read(from.join("kernel/drivers/net/dummy.ko.xz")).unwrap();
    fs::write(to.join("custom/cut.ko.xz"), &xz[..xz.len() / 2]).unwrap();
    place("kernel/drivers/net/macvlan.ko.xz", "skipme/macvlan.ko.xz");
    place("kernel/drivers/net/macvlan.ko.xz", "build/macvlan.ko.xz");
    // modules.order lists the kernel/ modules only (and one that is not there).
    fs::write(
        to.join("modules.order"),
        "kernel/net/llc/llc.ko\nkernel/net/802/stp.ko\nkernel/net/bridge/bridge.ko\nkernel/net/llc/llc2.ko\nkernel/gone.ko\n",
    )
    .unwrap();
    fs::copy(from.join("modules.builtin"), to.join("modules.builtin")).unwrap();
    fs::copy(from.join("modules.builtin.modinfo"), to.join("modules.builtin.modinfo")).unwrap();
}

#[test]
fn depmod_config_search_override_exclude_and_unlisted_modules_match_kmod() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let (ours, theirs) = (work.path().join("ours"), work.path().join("kmod"));
    small_tree(&root, &release, &ours);
    small_tree(&root, &release, &theirs);
    let config = work.path().join("depmod.d");
    fs::create_dir_all(&config).unwrap();
    fs::write(config.join("10-search.conf"), "# kiln test\nsearch updates built-in third\nexclude skipme\n")
        .unwrap();
    fs::write(config.join("20-override.conf"), "override llc * extra\noverride stp 5\\..* kernel/net/802\n")
        .unwrap();
    fs::write(config.join("ignored.txt"), "search nowhere\n").unwrap();
    ok(Command::new("depmod").arg("-b").arg(&theirs).arg("-C").arg(&config).arg(&release));
    let output =
        run(kiln().args(["modules", "depmod", "-b"]).arg(&ours).arg("--config").arg(&config).arg(&release));
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("custom/broken.ko is not a valid kernel module")
            && stderr.contains("custom/cut.ko.xz"),
        "{stderr}"
    );
    assert_same_outputs(&module_dir(&ours, &release), &module_dir(&theirs, &release));
    let dep = fs::read_to_string(module_dir(&ours, &release).join("modules.dep")).unwrap();
    assert!(dep.contains("\nupdates/stp.ko.xz: extra/llc.ko.xz\n"), "{dep}");
    assert!(dep.contains("custom/veth.ko.xz:\n") && !dep.contains("macvlan"), "{dep}");
    // Listed modules come first, in modules.order's order.
    // (modules.order names kernel/ paths: the replacements in updates/ and extra/ are not in it.)
    assert!(
        dep.starts_with(
            "kernel/net/bridge/bridge.ko.xz: updates/stp.ko.xz extra/llc.ko.xz\nkernel/net/llc/llc2.ko.xz: extra/llc.ko.xz\n"
        ),
        "{dep}"
    );
}

#[test]
fn depmod_finds_usr_lib_modules_and_reports_missing_directories() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let ours = work.path().join("ours");
    small_tree(&root, &release, &ours);
    fs::create_dir_all(ours.join("usr/lib")).unwrap();
    fs::rename(ours.join("lib/modules"), ours.join("usr/lib/modules")).unwrap();
    ok(kiln().args(["modules", "depmod", "-b"]).arg(&ours).arg(&release));
    let dir = ours.join("usr/lib/modules").join(&release);
    assert!(
        fs::read_to_string(dir.join("modules.dep")).unwrap().contains("kernel/net/bridge/bridge.ko.xz: ")
    );
    let output = run(kiln().args(["modules", "depmod", "-b"]).arg(&ours).arg("6.0.0-none"));
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lib/modules/6.0.0-none does not exist") && stderr.contains("hint: "),
        "{stderr}"
    );
    // --moduledir names the directory explicitly.
    ok(kiln()
        .args(["modules", "depmod", "-b"])
        .arg(&ours)
        .args(["--moduledir", "/usr/lib/modules"])
        .arg(&release));
}

#[test]
fn depmod_output_does_not_depend_on_directory_order() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    small_tree(&root, &release, &a);
    // The same files created in another order (tmpfs and ext4 return other readdir orders).
    let to = module_dir(&b, &release);
    let from = module_dir(&a, &release);
    let mut files = Vec::new();
    let mut stack = vec![from.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { stack.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    files.reverse();
    for file in files {
        let dst = to.join(file.strip_prefix(&from).unwrap());
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(&file, dst).unwrap();
    }
    fs::remove_file(module_dir(&a, &release).join("modules.order")).unwrap();
    fs::remove_file(to.join("modules.order")).unwrap();
    ok(kiln().args(["modules", "depmod", "-b"]).arg(&a).arg(&release));
    ok(kiln().args(["modules", "depmod", "-b"]).arg(&b).arg(&release));
    for name in OUTPUTS {
        assert_eq!(
            fs::read(module_dir(&a, &release).join(name)).unwrap(),
            fs::read(to.join(name)).unwrap(),
            "{name}"
        );
    }
    // Without modules.order kmod orders by its name hash: compare with kmod too.
    let theirs = work.path().join("kmod");
    small_tree(&root, &release, &theirs);
    fs::remove_file(module_dir(&theirs, &release).join("modules.order")).unwrap();
    ok(Command::new("depmod").arg("-b").arg(&theirs).arg("-C").arg(empty_config(work.path())).arg(&release));
    assert_same_outputs(&module_dir(&a, &release), &module_dir(&theirs, &release));
}

/// Module.symvers for the kernel: every `__versions` symbol of `module` that the given
/// modules do not export, at the module's CRC, as `vmlinux` exports.
fn symvers_for(module: &Path, providers: &[PathBuf]) -> String {
    let info = |paths: &[&Path]| -> Value {
        serde_json::from_str(&ok(kiln().args(["modules", "info", "--json"]).args(paths))).unwrap()
    };
    let provider_paths: Vec<&Path> = providers.iter().map(PathBuf::as_path).collect();
    let provided: Vec<String> = info(&provider_paths)
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["exports"].as_array().unwrap().iter().map(|e| e["symbol"].as_str().unwrap().to_owned())
        })
        .collect();
    info(&[module])[0]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !provided.iter().any(|p| p == v["symbol"].as_str().unwrap()))
        .map(|v| {
            format!(
                "0x{:08x}\t{}\tvmlinux\tEXPORT_SYMBOL\t\n",
                v["crc"].as_u64().unwrap(),
                v["symbol"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn check_reports_vermagic_crc_and_missing_dependency_problems() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let dir = module_dir(&root, &release);
    let bridge = dir.join("kernel/net/bridge/bridge.ko.xz");
    let (stp, llc) = (dir.join("kernel/net/802/stp.ko.xz"), dir.join("kernel/net/llc/llc.ko.xz"));
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    for module in [&stp, &llc] {
        fs::copy(module, tree.join(module.file_name().unwrap())).unwrap();
    }
    let symvers = work.path().join("Module.symvers");
    fs::write(&symvers, symvers_for(&bridge, &[stp.clone(), llc.clone()])).unwrap();
    let kconfig = work.path().join("config");
    fs::write(
        &kconfig,
        ok_bytes(Command::new("xz").arg("-dc").arg("/usr/src/linux-config-6.12/config.amd64_none_amd64.xz")),
    )
    .unwrap();
    let check = |release: &str, kconfig: &Path, symvers: &Path, tree: &Path| {
        run(kiln()
            .args(["modules", "check", "--release", release, "--kconfig"])
            .arg(kconfig)
            .arg("--symvers")
            .arg(symvers)
            .arg("--tree")
            .arg(tree)
            .arg(&bridge))
    };

    // Everything matches: exit 0, nothing printed.
    let output = check(&release, &kconfig, &symvers, &tree);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
    assert!(output.stdout.is_empty());

    // A kernel built without preemption (PREEMPT_BUILD unset): the preempt flag differs.
    let none = work.path().join("config-none");
    let text = fs::read_to_string(&kconfig).unwrap();
    assert!(text.contains("\nCONFIG_PREEMPT_BUILD=y\n"));
    fs::write(&none, text.replace("\nCONFIG_PREEMPT_BUILD=y\n", "\n# CONFIG_PREEMPT_BUILD is not set\n"))
        .unwrap();
    let output = check(&release, &none, &symvers, &tree);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "bridge: vermagic preempt is preempt, the kernel has none\n"
    );

    // One CRC edited in Module.symvers.
    let original = fs::read_to_string(&symvers).unwrap();
    let edited_symbol =
        original.lines().map(|l| l.split('\t').nth(1).unwrap()).find(|s| *s != "module_layout").unwrap();
    let text: String = original
        .lines()
        .map(|line| {
            let (crc, rest) = line.split_once('\t').unwrap();
            let crc = u64::from_str_radix(&crc[2..], 16).unwrap();
            let crc = if rest.starts_with(&format!("{edited_symbol}\t")) { crc ^ 0x8000_0001 } else { crc };
            format!("0x{crc:08x}\t{rest}\n")
        })
        .collect();
    let edited = work.path().join("Module.symvers.edited");
    fs::write(&edited, text).unwrap();
    let output = check(&release, &kconfig, &edited, &tree);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with(&format!("bridge: symbol {edited_symbol} has CRC 0x")), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // stp missing from the tree: its symbols are needed and no one provides them.
    fs::remove_file(tree.join("stp.ko.xz")).unwrap();
    let output = check(&release, &kconfig, &symvers, &tree);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "bridge: needs symbol stp_proto_register, which neither the kernel nor any module provides\n"
        ),
        "{stdout}"
    );
    assert!(stdout.lines().all(|l| l.starts_with("bridge: needs symbol stp_")), "{stdout}");

    // JSON names the module and symbol.
    let json = ok_json(
        kiln()
            .args(["modules", "check", "--json", "--release", &release, "--symvers"])
            .arg(&symvers)
            .arg("--tree")
            .arg(&tree)
            .arg(&bridge),
    );
    assert_eq!(json[0]["kind"], "missing_symbol");
    assert_eq!(json[0]["module"], "bridge");
}

fn ok_json(command: &mut Command) -> Value {
    let output = run(command);
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

#[test]
fn check_compares_the_release_of_modules_without_crcs() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let source = module_dir(&root, &release).join("kernel/drivers/net/dummy.ko.xz");
    let mut bytes = ok_bytes(Command::new("xz").arg("-dc").arg(&source));
    // Rename __versions to __versionz in the section-name table: no CRCs any more.
    // (The last occurrence: .shstrtab comes after .strtab.)
    let at = bytes.windows(11).rposition(|w| w == b"__versions\0").unwrap();
    bytes[at + 9] = b'z';
    let module = work.path().join("dummy.ko");
    fs::write(&module, &bytes).unwrap();
    let output = run(kiln().args(["modules", "check", "--release", "6.12.0-other"]).arg(&module));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("dummy: built for kernel {release}, not 6.12.0-other\n")
    );
    // With CRCs, the kernel does not compare the release (same_magic).
    let output = run(kiln().args(["modules", "check", "--release", "6.12.0-other"]).arg(&source));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
}

#[test]
fn depmod_external_directories_are_inside_the_base_directory() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let ours = work.path().join("ours");
    small_tree(&root, &release, &ours);
    let external = ours.join("opt/extmods");
    fs::create_dir_all(&external).unwrap();
    let from = module_dir(&root, &release);
    fs::copy(from.join("kernel/net/llc/llc.ko.xz"), external.join("llc.ko.xz")).unwrap();
    fs::copy(from.join("kernel/net/802/psnap.ko.xz"), external.join("psnap.ko.xz")).unwrap();
    let config = work.path().join("external.conf");
    fs::write(&config, "search external updates built-in\nexternal 6.12.* /opt/extmods\n").unwrap();
    ok(kiln().args(["modules", "depmod", "-b"]).arg(&ours).arg("--config").arg(&config).arg(&release));
    let dep = fs::read_to_string(module_dir(&ours, &release).join("modules.dep")).unwrap();
    // `external` is searched first: its llc wins over kernel/ and extra/; paths are absolute
    // inside the base directory, as modprobe on the image will see them.
    assert!(dep.contains("\nupdates/stp.ko.xz: /opt/extmods/llc.ko.xz\n"), "{dep}");
    assert!(dep.contains("\n/opt/extmods/psnap.ko.xz: /opt/extmods/llc.ko.xz\n"), "{dep}");
    assert!(!dep.contains(&ours.display().to_string()), "{dep}");
}

#[test]
fn depmod_with_symvers_reports_unknown_symbols_and_crc_disagreements() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let ours = work.path().join("ours");
    small_tree(&root, &release, &ours);
    let dir = module_dir(&ours, &release);
    let stp = dir.join("updates/stp.ko.xz");
    let llc = dir.join("extra/llc.ko.xz");
    // The kernel's exports as stp needs them, one CRC changed and one symbol left out.
    let text = symvers_for(&stp, &[llc]);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let dropped = lines.remove(0);
    let dropped = dropped.split('\t').nth(1).unwrap().to_owned();
    let changed = lines[0].split('\t').nth(1).unwrap().to_owned();
    let (crc, rest) = lines[0].split_once('\t').unwrap();
    lines[0] = format!("0x{:08x}\t{rest}", u64::from_str_radix(&crc[2..], 16).unwrap() ^ 0x8000_0001);
    let symvers = work.path().join("Module.symvers");
    fs::write(&symvers, lines.join("\n") + "\n").unwrap();
    let output =
        run(kiln().args(["modules", "depmod", "-b"]).arg(&ours).arg("-E").arg(&symvers).arg(&release));
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("updates/stp.ko.xz needs unknown symbol {dropped}\n")), "{stderr}");
    assert!(
        stderr.contains(&format!("updates/stp.ko.xz disagrees about version of symbol {changed}\n")),
        "{stderr}"
    );
}

#[test]
fn depmod_tree_without_order_or_builtin_files_matches_kmod() {
    let Some((root, release)) = debian_tree() else { return };
    let work = tempdir();
    let source = module_dir(&root, &release).join("kernel/drivers/net/dummy.ko.xz");
    for base in ["ours", "kmod"] {
        let dir = module_dir(&work.path().join(base), "9.9-test").join("kernel");
        fs::create_dir_all(&dir).unwrap();
        fs::copy(&source, dir.join("dummy.ko.xz")).unwrap();
    }
    ok(Command::new("depmod")
        .arg("-b")
        .arg(work.path().join("kmod"))
        .arg("-C")
        .arg(empty_config(work.path()))
        .arg("9.9-test"));
    ok(kiln().args(["modules", "depmod", "-b"]).arg(work.path().join("ours")).arg("9.9-test"));
    let ours = module_dir(&work.path().join("ours"), "9.9-test");
    assert_same_outputs(&ours, &module_dir(&work.path().join("kmod"), "9.9-test"));
    // kmod writes the builtin indexes and modules.devname empty rather than not at all.
    for name in ["modules.builtin.bin", "modules.builtin.alias.bin", "modules.devname"] {
        assert_eq!(fs::metadata(ours.join(name)).unwrap().len(), 0, "{name}");
    }
    assert_eq!(fs::metadata(ours.join("modules.dep")).unwrap().permissions().mode() & 0o777, 0o644);
}
