//! `kiln build` and `kiln lock`: the smoke recipe end to end, the step cache, sources over HTTP,
//! and builds killed at random points.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

/// A copy of recipes/smoke in `dir` without its kernel (tests/cli/kernel.rs builds that once),
/// so the test may change it and build it from a cold cache quickly.
fn smoke_copy(dir: &Path) -> PathBuf {
    let recipe = support::smoke_recipe_copy(dir);
    let toml = recipe.join("kiln.toml");
    let text = fs::read_to_string(&toml).unwrap();
    let (without_kernel, _) =
        text.split_once(support::SMOKE_KERNEL_PART).expect("the smoke recipe's kernel part");
    fs::write(&toml, without_kernel).unwrap();
    // The lock names the kernel's source; the first build writes one for what is left.
    fs::remove_file(recipe.join("kiln.lock")).unwrap();
    recipe
}

/// `kiln build RECIPE --out OUT` with its own cache.
fn build(recipe: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Output {
    support::run(
        support::kiln()
            .env("KILN_CACHE", cache)
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .arg(recipe)
            .arg("--out")
            .arg(out)
            .args(extra),
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn built_ok(recipe: &Path, out: &Path, cache: &Path) -> (String, String) {
    let output = build(recipe, out, cache, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    (stdout(&output), stderr(&output))
}

#[test]
fn the_smoke_recipe_builds_and_an_unchanged_rebuild_runs_nothing() {
    if !support::require_tool("musl-gcc") {
        return;
    }
    let work = support::tempdir();
    let recipe = smoke_copy(work.path());
    let (cache, out) = (work.path().join("cache"), work.path().join("out"));
    let (first, log) = built_ok(&recipe, &out, &cache);
    assert!(first.starts_with("kiln-smoke:dev sha256:"), "{first}");
    assert!(log.contains("built  greet") && log.contains("built  kiln-smoke"), "{log}");

    let started = Instant::now();
    let (second, log) = built_ok(&recipe, &out, &cache);
    let noop = started.elapsed();
    assert_eq!(first, second);
    assert!(
        log.contains("cached greet") && log.contains("cached kiln-smoke") && !log.contains("built"),
        "{log}"
    );
    support::eprintln_skip(&format!("(figure) no-op rebuild of the smoke recipe: {noop:?}"));

    // A damaged cache entry is noticed by its digest and built again, to the same image.
    let json: Value = serde_json::from_str(&stdout(&build(&recipe, &out, &cache, &["--json"]))).unwrap();
    let key = json["steps"][0]["key"].as_str().unwrap().to_owned();
    let program = cache.join("steps").join(&key).join("out/usr/local/bin/kiln-greet");
    fs::write(&program, b"not a program").unwrap();
    let (repaired, log) = built_ok(&recipe, &out, &cache);
    assert!(log.contains("built  greet"), "{log}");
    assert_eq!(repaired, first);
    assert_ne!(fs::read(&program).unwrap(), b"not a program");

    // The image holds the musl-static program the recipe compiled; it runs.
    let bundle = work.path().join("bundle");
    if support::require_tool("umoci") {
        support::ok(
            Command::new("umoci")
                .args(["unpack", "--rootless", "--image"])
                .arg(format!("{}:kiln-smoke:dev", out.display()))
                .arg(&bundle),
        );
        let greet = bundle.join("rootfs/rootfs/usr/local/bin/kiln-greet");
        assert_eq!(support::ok(Command::new(greet).arg("CI")), "hello, CI, from a kiln-built library\n");
        assert!(bundle.join("rootfs/manifest.yaml").is_file());
    }

    // JSON names every step and image.
    let json: Value = serde_json::from_str(&stdout(&build(&recipe, &out, &cache, &["--json"]))).unwrap();
    let steps: Vec<(&str, bool)> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["cached"].as_bool().unwrap()))
        .collect();
    assert_eq!(steps, [("greet", true), ("io-uring-nop", true), ("kiln-smoke", true)]);
    assert_eq!(format!("kiln-smoke:dev {}\n", json["images"][0]["digest"].as_str().unwrap()), first);
}

#[test]
fn a_changed_input_reruns_only_the_steps_that_depend_on_it() {
    if !support::require_tool("musl-gcc") {
        return;
    }
    let work = support::tempdir();
    let recipe = smoke_copy(work.path());
    let (cache, out) = (work.path().join("cache"), work.path().join("out"));
    let (first, _) = built_ok(&recipe, &out, &cache);

    // The extension's files feed only the `kiln-smoke` extension's step.
    let readme = recipe.join("extension/usr/local/share/kiln-smoke/README");
    let text = fs::read_to_string(&readme).unwrap();
    fs::write(&readme, format!("{text}One more line.\n")).unwrap();
    let (second, log) = built_ok(&recipe, &out, &cache);
    assert!(log.contains("cached greet") && log.contains("built  kiln-smoke"), "{log}");
    assert_ne!(first, second);

    // A change to `greet` that does not change what it makes leaves `kiln-smoke` cached.
    let toml = recipe.join("kiln.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, text.replace("make -C src\n", "make -C src  # the same build\n")).unwrap();
    let (third, log) = built_ok(&recipe, &out, &cache);
    assert!(log.contains("built  greet") && log.contains("cached kiln-smoke"), "{log}");
    assert_eq!(second, third);

    // --source replaces a source with a local tree for development, unpinned.
    let local = work.path().join("libgreet");
    fs::create_dir(&local).unwrap();
    support::ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(recipe.join("sources/libgreet-1.0.tar.gz"))
            .args(["--strip-components=1", "-C"])
            .arg(&local),
    );
    let greet = local.join("greet.c");
    fs::write(&greet, fs::read_to_string(&greet).unwrap().replace("hello", "hi")).unwrap();
    let source = format!("libgreet={}", local.display());
    let output = build(&recipe, &out, &cache, &["--source", &source]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("built  greet") && stderr(&output).contains("built  kiln-smoke"));
    assert_ne!(stdout(&output), third);
    let (back, log) = built_ok(&recipe, &out, &cache);
    assert_eq!(back, third, "without the override, the pinned source again");
    assert!(log.contains("cached greet"), "{log}");

    // SOURCE_DATE_EPOCH is an input of every step.
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", &cache)
            .env("SOURCE_DATE_EPOCH", "1")
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(&out),
    );
    assert!(stderr(&output).contains("built  greet") && stderr(&output).contains("built  kiln-smoke"));
}

#[test]
fn builds_killed_at_random_points_leave_nothing_corrupt() {
    if !support::require_tool("musl-gcc") {
        return;
    }
    let work = support::tempdir();
    let recipe = smoke_copy(work.path());
    let out = work.path().join("out");
    let started = Instant::now();
    let (reference, _) = built_ok(&recipe, &out, &work.path().join("reference-cache"));
    let cold = started.elapsed();
    // Kill points spread over a cold build (fetch, both steps, packing), each with a cold cache
    // and the same output layout; a pseudo-random jitter varies them from run to run.
    let rounds = 8u32;
    let jitter = u64::from(std::process::id() % 97);
    for round in 0..rounds {
        let cache = work.path().join(format!("cache-{round}"));
        let delay = cold.mul_f64(f64::from(round) / f64::from(rounds))
            + Duration::from_millis(jitter % 7 * round as u64);
        let mut child = support::kiln()
            .env("KILN_CACHE", &cache)
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        let (after, _) = built_ok(&recipe, &out, &cache);
        assert_eq!(after, reference, "round {round}, killed after {delay:?}");
        let left: Vec<_> =
            fs::read_dir(cache.join("tmp")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "round {round}: work the killed build left is cleared: {left:?}");
        // The layout is whole: skopeo reads every blob of the image.
        if support::require_tool("skopeo") {
            support::ok(
                Command::new("skopeo").arg("inspect").arg(format!("oci:{}:kiln-smoke:dev", out.display())),
            );
        }
    }
}

/// Serves `files` (path → bytes) over HTTP on loopback, one request per connection, until the
/// process ends. Returns `http://127.0.0.1:PORT`.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let response = match files.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    address
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A one-step recipe copying source `src` (from `url`, pinned `sha256`) to /out.
fn url_recipe(dir: &Path, url: &str, sha256: &str, unpack: bool) -> PathBuf {
    let recipe = dir.join("recipe");
    fs::create_dir_all(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        format!(
            "[recipe]\nname = \"url\"\n\n[sources.src]\nurl = \"{url}\"\nsha256 = \"{sha256}\"\nunpack = {unpack}\n\n\
             [steps.copy]\ninputs = [\"src\"]\nscript = \"cp -R /inputs/src /out/src\"\n\n\
             [images.\"copied:v1\"]\nfrom = \"copy\"\n"
        ),
    )
    .unwrap();
    recipe
}

#[test]
fn url_sources_are_pinned_cached_and_offline_says_what_is_missing() {
    let tarball = support::release_tarball();
    let server = serve(vec![("/release.tar.gz", tarball.clone())]);
    let url = format!("{server}/release.tar.gz");
    let work = support::tempdir();
    let (cache, out) = (work.path().join("cache"), work.path().join("out"));

    // A wrong pin: refused, both digests shown, nothing cached.
    let wrong = "0".repeat(64);
    let recipe = url_recipe(&work.path().join("wrong"), &url, &wrong, true);
    let output = build(&recipe, &out, &cache, &[]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(
        message.contains(&wrong) && message.contains(&sha256_hex(&tarball)) && message.contains(&url),
        "{message}"
    );
    assert_eq!(fs::read_dir(cache.join("sources/sha256")).unwrap().count(), 0);
    assert!(!recipe.join("kiln.lock").exists());

    // The right pin builds and writes the lock; offline, the warm cache is enough.
    let recipe = url_recipe(&work.path().join("right"), &url, &sha256_hex(&tarball), true);
    built_ok(&recipe, &out, &cache);
    let lock = fs::read_to_string(recipe.join("kiln.lock")).unwrap();
    assert!(lock.contains(&url) && lock.contains(&format!("size = {}", tarball.len())), "{lock}");
    assert!(build(&recipe, &out, &cache, &["--offline"]).status.success());

    // Offline with a cold cache: the source, where it comes from and what to do.
    let output = build(&recipe, &out, &work.path().join("cold"), &["--offline"]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{message}");
    assert!(
        message.contains("source \"src\"") && message.contains(&url) && message.contains("hint:"),
        "{message}"
    );

    // Pinned by SHA-512 alone, the same file is found in the cache, offline too.
    let sha512 = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha512::digest(&tarball))
    };
    let by_sha512 = work.path().join("sha512/recipe");
    fs::create_dir_all(&by_sha512).unwrap();
    let text = fs::read_to_string(recipe.join("kiln.toml")).unwrap();
    fs::write(
        by_sha512.join("kiln.toml"),
        text.replace(&format!("sha256 = \"{}\"", sha256_hex(&tarball)), &format!("sha512 = \"{sha512}\"")),
    )
    .unwrap();
    let cold = work.path().join("sha512/cache");
    built_ok(&by_sha512, &out, &cold);
    // Without the step's entry, the offline build must find the source itself.
    fs::remove_dir_all(cold.join("steps")).unwrap();
    fs::remove_dir_all(cold.join("unpacked")).unwrap();
    let output = build(&by_sha512, &out, &cold, &["--offline"]);
    assert!(output.status.success() && stderr(&output).contains("built  copy"), "{}", stderr(&output));
    let lock = fs::read_to_string(by_sha512.join("kiln.lock")).unwrap();
    assert!(lock.contains(&sha512) && lock.contains(&sha256_hex(&tarball)), "{lock}");

    // A damaged cache entry is fetched again.
    let cached = cache.join("sources/sha256").join(sha256_hex(&tarball));
    fs::write(&cached, b"damaged").unwrap();
    fs::remove_dir_all(cache.join("steps")).unwrap();
    fs::create_dir(cache.join("steps")).unwrap();
    fs::remove_dir_all(cache.join("unpacked")).unwrap();
    fs::create_dir(cache.join("unpacked")).unwrap();
    built_ok(&recipe, &out, &cache);
    assert_eq!(fs::read(&cached).unwrap(), tarball);

    // So is a damaged extracted tree.
    let unpacked = cache.join("unpacked").join(format!("{}-strip0", sha256_hex(&tarball)));
    fs::write(unpacked.join("planted"), b"not from the tarball").unwrap();
    fs::remove_dir_all(cache.join("steps")).unwrap();
    let (_, log) = built_ok(&recipe, &out, &cache);
    assert!(log.contains("built  copy"), "{log}");
    assert!(!unpacked.join("planted").exists(), "the tree was extracted again");

    // The recipe changed against its lock: refused until `kiln lock`.
    let toml = recipe.join("kiln.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, text.replace(&url, &format!("{url}?mirror"))).unwrap();
    let output = build(&recipe, &out, &cache, &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("does not match kiln.lock") && message.contains("kiln lock"), "{message}");
}

/// A gzip tarball with one hostile member, made by Python's tarfile (GNU tar will not write
/// some of these): `file NAME`, `symlink NAME TARGET` or `hardlink NAME TARGET`.
fn hostile_tarball(kind: &str, name: &str, target: &str) -> Vec<u8> {
    let script = r#"
import io, sys, tarfile
kind, name, target = sys.argv[1:4]
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w:gz") as tar:
    tar.addfile(tarfile.TarInfo("ok"), io.BytesIO(b""))
    info = tarfile.TarInfo(name)
    data = b""
    if kind == "file":
        data = b"escaped"
        info.size = len(data)
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, target
    else:
        info.type, info.linkname = tarfile.LNKTYPE, target
    tar.addfile(info, io.BytesIO(data))
sys.stdout.buffer.write(out.getvalue())
"#;
    support::ok_bytes(Command::new("python3").args(["-c", script, kind, name, target]))
}

#[test]
fn a_hostile_source_tarball_is_refused_without_writing_outside() {
    if !support::require_tool("python3") {
        return;
    }
    let work = support::tempdir();
    let cases = [
        (hostile_tarball("file", "../../x", ""), "'..'"),
        (hostile_tarball("symlink", "etc", "/etc"), "absolute path \"/etc\""),
        (hostile_tarball("hardlink", "passwd", "/etc/passwd"), "absolute path \"/etc/passwd\""),
    ];
    for (i, (tarball, reason)) in cases.into_iter().enumerate() {
        let server = serve(vec![("/evil.tar.gz", tarball.clone())]);
        let dir = work.path().join(format!("case{i}"));
        let recipe =
            url_recipe(&dir.join("deep/er"), &format!("{server}/evil.tar.gz"), &sha256_hex(&tarball), true);
        let output = build(&recipe, &dir.join("out"), &dir.join("cache"), &[]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "case {i}: {message}");
        assert!(message.contains("refusing entry") && message.contains(reason), "case {i}: {message}");
        assert!(fs::read_dir(dir.join("cache/unpacked")).unwrap().next().is_none(), "case {i}");
        assert!(!dir.join("deep/x").exists() && !dir.join("x").exists(), "case {i}");
    }
}

#[test]
fn a_failing_step_shows_its_last_lines_and_keeps_its_log() {
    let work = support::tempdir();
    let recipe = work.path().join("recipe");
    fs::create_dir_all(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        "[recipe]\nname = \"fails\"\n\n[steps.broken]\nscript = \"\"\"\necho compiling\necho 'error: no such thing' >&2\nexit 2\n\"\"\"\n",
    )
    .unwrap();
    let cache = work.path().join("cache");
    let output = build(&recipe, &work.path().join("out"), &cache, &[]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{message}");
    assert!(message.contains("exit code 2") && message.contains("| error: no such thing"), "{message}");
    let log = cache.join("logs/fails-broken.log");
    assert!(message.contains(&log.display().to_string()), "{message}");
    assert_eq!(fs::read_to_string(log).unwrap(), "compiling\nerror: no such thing\n");

    // A recipe error names the file and line.
    fs::write(recipe.join("kiln.toml"), "[recipe]\nname = \"x\"\n\n[steps.a]\nscript = 3\n").unwrap();
    let output = build(&recipe, &work.path().join("out"), &cache, &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("kiln.toml:5"), "{}", stderr(&output));

    // So does a bad image name or compression, before any step runs.
    for (image, bad) in [
        ("[images.\"No Tag\"]\ndir = \".\"\n", "No Tag"),
        ("[images.\"a:b\"]\ndir = \".\"\ncompression = \"lz4\"\n", "lz4"),
    ] {
        fs::write(recipe.join("kiln.toml"), format!("[recipe]\nname = \"x\"\n\n{image}")).unwrap();
        let output = build(&recipe, &work.path().join("out"), &cache, &[]);
        assert_eq!(output.status.code(), Some(3));
        assert!(
            stderr(&output).contains("kiln.toml") && stderr(&output).contains(bad),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn an_image_source_is_pulled_by_digest_and_unpacked() {
    let Some(registry) = support::Registry::start() else { return };
    let (work, tree) = support::fixture();
    let layout = work.path().join("layout");
    let digest = support::pack(&tree, &layout, "base:v1", &[]);
    let to = format!("{}/lab", registry.address);
    support::ok(support::kiln().arg("push").arg(&layout).args(["--to", &to, "--insecure-http"]));

    let recipe_for = |dir: &Path, digest: &str| -> PathBuf {
        let recipe = dir.join("recipe");
        fs::create_dir_all(&recipe).unwrap();
        fs::write(
            recipe.join("kiln.toml"),
            format!(
                "[recipe]\nname = \"image\"\n\n[sources.base]\nimage = \"{to}/base@{digest}\"\ninsecure-http = true\n\
                 unpack = true\n\n[steps.list]\ninputs = [\"base\"]\n\
                 script = \"cd /inputs/base && find . -mindepth 1 | LC_ALL=C sort >/out/listing\"\n\n\
                 [images.\"listed:v1\"]\nfrom = \"list\"\n"
            ),
        )
        .unwrap();
        recipe
    };
    let recipe = recipe_for(&work.path().join("good"), &digest);
    let (cache, out) = (work.path().join("cache"), work.path().join("out"));
    built_ok(&recipe, &out, &cache);
    let key = {
        let json: Value = serde_json::from_str(&stdout(&build(&recipe, &out, &cache, &["--json"]))).unwrap();
        json["steps"][0]["key"].as_str().unwrap().to_owned()
    };
    let listing = fs::read(cache.join("steps").join(key).join("out/listing")).unwrap();
    let expected = support::ok_bytes(
        Command::new("sh").arg("-c").arg("find . -mindepth 1 | LC_ALL=C sort").current_dir(&tree),
    );
    assert_eq!(listing, expected, "the unpacked image holds the packed tree");
    let lock = fs::read_to_string(recipe.join("kiln.lock")).unwrap();
    assert!(lock.contains(&format!("sha256 = \"{}\"", digest.trim_start_matches("sha256:"))), "{lock}");

    // Offline, the cached image is enough; a cold cache names what is missing.
    assert!(build(&recipe, &out, &cache, &["--offline"]).status.success());
    let output = build(&recipe, &out, &work.path().join("cold"), &["--offline"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("source \"base\"") && stderr(&output).contains(&to),
        "{}",
        stderr(&output)
    );

    // A digest the registry does not have: the error names the source and the registry's answer.
    let missing = format!("sha256:{}", "1".repeat(64));
    let recipe = recipe_for(&work.path().join("missing"), &missing);
    let output = build(&recipe, &out, &cache, &[]);
    let message = stderr(&output);
    assert_ne!(output.status.code(), Some(0));
    assert!(message.contains("source \"base\"") && message.contains("404"), "{message}");

    // A tag is not a pin.
    let recipe = work.path().join("tagged");
    fs::create_dir_all(&recipe).unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        format!("[recipe]\nname = \"t\"\n\n[sources.base]\nimage = \"{to}/base:v1\"\n"),
    )
    .unwrap();
    let output = build(&recipe, &out, &cache, &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("REGISTRY/REPOSITORY@sha256:DIGEST"), "{}", stderr(&output));
}

#[test]
fn concurrent_builds_share_one_cache() {
    if !support::require_tool("musl-gcc") {
        return;
    }
    let work = support::tempdir();
    let recipe = smoke_copy(work.path());
    let cache = work.path().join("cache");
    let children: Vec<_> = (0..3)
        .map(|i| {
            support::kiln()
                .env("KILN_CACHE", &cache)
                .arg("build")
                .arg(&recipe)
                .arg("--out")
                .arg(work.path().join(format!("out-{i}")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for output in &outputs {
        assert!(output.status.success(), "{}", stderr(output));
        assert_eq!(stdout(output), stdout(&outputs[0]));
    }
    // Each step ran once; the builds that waited for it found it made.
    let log: String = outputs.iter().map(stderr).collect();
    assert_eq!(log.matches("built  greet").count(), 1, "{log}");
    assert_eq!(log.matches("built  kiln-smoke").count(), 1, "{log}");
}

#[test]
fn a_checkout_made_under_another_umask_has_the_same_inputs() {
    if !support::require_tool("musl-gcc") {
        return;
    }
    let work = support::tempdir();
    fs::create_dir(work.path().join("a")).unwrap();
    fs::create_dir(work.path().join("b")).unwrap();
    let first = smoke_copy(&work.path().join("a"));
    let second = smoke_copy(&work.path().join("b"));
    // What `umask 077` before `git clone` gives: no bits for group and others.
    support::ok(Command::new("chmod").args(["-R", "go-rwx"]).arg(&second));
    let cache = work.path().join("cache");
    let (digests, _) = built_ok(&first, &work.path().join("out-a"), &cache);
    let (again, log) = built_ok(&second, &work.path().join("out-b"), &cache);
    assert_eq!(digests, again);
    assert!(!log.contains("built"), "the same inputs, so every step is cached: {log}");
}

#[test]
fn a_locked_source_is_pinned_by_kiln_lock_and_a_missing_one_blocks_only_what_needs_it() {
    let tarball = support::release_tarball();
    let server = serve(vec![("/release.tar.gz", tarball.clone())]);
    let work = support::tempdir();
    let recipe = work.path().join("recipe");
    fs::create_dir_all(recipe.join("files")).unwrap();
    fs::write(recipe.join("files/hello"), "hello\n").unwrap();
    fs::write(
        recipe.join("kiln.toml"),
        format!(
            "[recipe]\nname = \"locked\"\n\n[sources.files]\npath = \"files\"\n\n\
             [sources.release]\nurl = \"{server}/release.tar.gz\"\nlocked = true\nunpack = true\n\n\
             [steps.local]\ninputs = [\"files\"]\nscript = \"cp /inputs/files/hello /out/\"\n\n\
             [steps.remote]\ninputs = [\"release\"]\nscript = \"cp -R /inputs/release/. /out/\"\n\n\
             [images.\"local:v1\"]\nfrom = \"local\"\n\n[images.\"remote:v1\"]\nfrom = \"remote\"\n"
        ),
    )
    .unwrap();
    // A lock without the locked source (as committed before anyone could fetch it).
    fs::write(
        recipe.join("kiln.lock"),
        format!(
            "version = 1\nkiln = \"{}\"\n\n[compression]\n{}\n",
            env!("CARGO_PKG_VERSION"),
            "gzip = \"zlib-rs deflate in independent 128 KiB blocks with a 32 KiB dictionary\"\n\
             zstd = \"libzstd 1.5.7 in worker mode\""
        ),
    )
    .unwrap();
    let (cache, out) = (work.path().join("cache"), work.path().join("out"));

    // The step that does not need it is built and its image written; the build then names the
    // missing source, what needs it, and what to do.
    let output = build(&recipe, &out, &cache, &[]);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(4), "{message}");
    assert!(message.contains("built  local"), "{message}");
    assert!(
        message.contains("source \"release\"")
            && message.contains(&format!(
                "kiln.lock does not pin it yet: run `kiln lock {}` first",
                recipe.display()
            )),
        "{message}"
    );
    assert!(message.contains("step remote") && message.contains("image remote:v1"), "{message}");
    assert!(message.contains("--source NAME=PATH") && message.contains("kiln lock"), "{message}");
    assert!(support::index(&out)["manifests"].as_array().unwrap().len() == 1, "local:v1 is written");

    // Given as a local file, a source the recipe unpacks is unpacked the same way.
    let local = work.path().join("release.tar.gz");
    fs::write(&local, &tarball).unwrap();
    let output = build(&recipe, &out, &cache, &["--source", &format!("release={}", local.display())]);
    assert!(output.status.success() && stderr(&output).contains("built  remote"), "{}", stderr(&output));

    // `kiln lock` resolves it; the build then holds it to the lock.
    support::ok(support::kiln().env("KILN_CACHE", &cache).arg("lock").arg(&recipe));
    let lock = fs::read_to_string(recipe.join("kiln.lock")).unwrap();
    assert!(lock.contains(&format!("sha256 = \"{}\"", sha256_hex(&tarball))), "{lock}");
    let (first, log) = built_ok(&recipe, &out, &cache);
    assert!(log.contains("built  remote") && first.contains("remote:v1 sha256:"), "{log}");
    let (_, log) = built_ok(&recipe, &out, &cache);
    assert!(log.contains("cached remote"), "{log}");

    // Another file behind the URL is refused against the lock.
    let lock = lock.replace(&sha256_hex(&tarball), &"1".repeat(64));
    fs::write(recipe.join("kiln.lock"), lock).unwrap();
    let output = build(&recipe, &out, &work.path().join("cold"), &[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains(&sha256_hex(&tarball)), "{}", stderr(&output));
}
