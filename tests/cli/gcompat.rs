//! gcompat as it will really run: the product recipe's gcompat step, verbatim, built from
//! gcompat 1.1.0's source (the fixture, through `--source`), packed into the smoke recipe's
//! validator extension in place of its own compatibility layer, and booted: on the guest's
//! glibc-free root (musl's loader only, as Talos's), glibc-linked programs — PIE and not, with
//! threads, `dlopen` of a glibc-linked library, `getaddrinfo` and `__printf_chk` — and Debian's
//! glibc-linked node_exporter (a cgo Go program) run through gcompat's loader.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support;
use crate::talos;

/// Debian's node_exporter package, downloaded (not installed) by scripts/install-deps.
const NODE_EXPORTER_DEB: &str = "/var/cache/kiln-fixtures/prometheus-node-exporter.deb";

/// What each probe build checks, one line each; `__printf_chk` is every printf of a fortified
/// build.
const PROBE_C: &str = r#"/* Probes of what a glibc-linked program needs of gcompat. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

static void *twice(void *arg)
{
	int *n = arg;
	*n *= 2;
	return NULL;
}

int main(int argc, char *argv[])
{
	const char *kind = argc > 1 ? argv[1] : "?";
	pthread_t threads[4];
	int values[4] = { 1, 2, 3, 4 }, sum = 0, i, rc;
	struct addrinfo hints = { 0 }, *found;
	struct sockaddr_in *address;
	char host[INET_ADDRSTRLEN];
	const char *(*hello)(void);
	void *plugin;

	printf("%s printf: %d %s\n", kind, 42, "fortified");
	for (i = 0; i < 4; i++)
		if (pthread_create(&threads[i], NULL, twice, &values[i])) {
			printf("%s threads: pthread_create failed\n", kind);
			return 1;
		}
	for (i = 0; i < 4; i++) {
		pthread_join(threads[i], NULL);
		sum += values[i];
	}
	printf("%s threads: 4 joined, sum %d\n", kind, sum);

	plugin = dlopen("/usr/local/lib/kiln-probe/libkiln-plugin.so", RTLD_NOW);
	hello = plugin ? (const char *(*)(void))dlsym(plugin, "kiln_plugin_hello") : NULL;
	printf("%s dlopen: %s\n", kind, hello ? hello() : dlerror());

	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo("127.0.0.1", "9100", &hints, &found);
	if (rc) {
		printf("%s getaddrinfo: %s\n", kind, gai_strerror(rc));
		return 1;
	}
	address = (struct sockaddr_in *)found->ai_addr;
	inet_ntop(AF_INET, &address->sin_addr, host, sizeof host);
	printf("%s getaddrinfo: %s port %d%s\n", kind, host, ntohs(address->sin_port),
	       found->ai_family == AF_INET ? " AF_INET" : "");
	freeaddrinfo(found);
	return 0;
}
"#;

/// A glibc-linked library for `dlopen`, itself calling into the C library.
const PLUGIN_C: &str = r#"#include <stdio.h>
#include <unistd.h>

const char *kiln_plugin_hello(void)
{
	static char text[64];
	snprintf(text, sizeof text, "hello from a glibc-linked plugin, pid %d", (int)getpid());
	return text;
}
"#;

/// The step that compiles the probes with Debian's gcc against glibc and takes node_exporter
/// from Debian's package; the guest runs what lands in /usr/local/libexec/kiln-smoke.
const PROBES_STEP: &str = r#"
[sources.probe-src]
path = "probe"

[steps.glibc-probes]
inputs = ["probe-src", "debian-node-exporter"]
script = """
mkdir -p /out/usr/local/bin /out/usr/local/lib/kiln-probe /out/usr/local/libexec/kiln-smoke
flags="-O2 -D_FORTIFY_SOURCE=2 -ffile-prefix-map=/inputs=."
gcc $flags -fPIE -pie -o /out/usr/local/bin/glibc-probe-pie /inputs/probe-src/probe.c
gcc $flags -fno-pie -no-pie -o /out/usr/local/bin/glibc-probe-nopie /inputs/probe-src/probe.c
gcc $flags -fPIC -shared -o /out/usr/local/lib/kiln-probe/libkiln-plugin.so /inputs/probe-src/plugin.c
readelf -h /out/usr/local/bin/glibc-probe-pie | grep -q 'DYN'
readelf -h /out/usr/local/bin/glibc-probe-nopie | grep -q 'EXEC'
for probe in pie nopie; do
  readelf -l /out/usr/local/bin/glibc-probe-$probe | grep -q 'interpreter: /lib64/ld-linux-x86-64.so.2'
  nm -D /out/usr/local/bin/glibc-probe-$probe | grep -q ' __printf_chk'
done
install -m 0755 /inputs/probe-src/glibc-probes /inputs/probe-src/node-exporter /out/usr/local/libexec/kiln-smoke/
install -m 0755 /inputs/debian-node-exporter/usr/bin/prometheus-node-exporter /out/usr/local/bin/
"""
"#;

/// The `[sources.gcompat-src]` and `[steps.gcompat]` tables of recipes/solana/kiln.toml, as they
/// are there.
fn product_gcompat() -> String {
    let text =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/solana/kiln.toml")).unwrap();
    let start = text.find("[sources.gcompat-src]").unwrap();
    let step = text[start..].find("[steps.gcompat]").unwrap() + start;
    let end = text[step..].find("\"\"\"\n\n").unwrap() + step + 4;
    text[start..end].to_owned()
}

#[test]
fn gcompat_1_1_0_runs_glibc_programs_and_debians_node_exporter_on_a_glibc_free_root() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/gcompat-1.1.0.tar.gz");
    if !talos::can_build()
        || !support::require_file(&fixture.to_string_lossy())
        || !support::require_file(NODE_EXPORTER_DEB)
        || !support::require_tool("qemu-system-x86_64")
    {
        return;
    }
    let work = support::tempdir();
    let recipe = support::smoke_recipe_copy(work.path());
    let probe = recipe.join("probe");
    fs::create_dir(&probe).unwrap();
    fs::write(probe.join("probe.c"), PROBE_C).unwrap();
    fs::write(probe.join("plugin.c"), PLUGIN_C).unwrap();
    fs::write(
        probe.join("glibc-probes"),
        "#!/bin/sh\nfor kind in pie nopie; do\n  /usr/local/bin/glibc-probe-$kind $kind || exit\ndone\n",
    )
    .unwrap();
    fs::write(
        probe.join("node-exporter"),
        "#!/bin/sh\nexec /usr/local/bin/prometheus-node-exporter --version\n",
    )
    .unwrap();
    let sum = support::sha256_file(Path::new(NODE_EXPORTER_DEB));
    let manifest = recipe.join("kiln.toml");
    let rootfs = r#"rootfs = ["solana-optimizer", "compat", "hello-glibc", "glibc-service"]"#;
    let text = fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(rootfs), "the smoke recipe's validator extension changed");
    let text = format!(
        "{}\n{}\n[sources.debian-node-exporter]\npath = \"{NODE_EXPORTER_DEB}\"\nsha256 = \"{}\"\nunpack = true\n{PROBES_STEP}",
        text.replace(
            rootfs,
            r#"rootfs = ["solana-optimizer", "gcompat", "hello-glibc", "glibc-service", "glibc-probes"]"#
        ),
        product_gcompat(),
        &sum["sha256:".len()..],
    );
    fs::write(&manifest, text).unwrap();

    let out = work.path().join("out");
    let output = support::run(
        support::kiln()
            .env("KILN_CACHE", support::shared_cache())
            .arg("build")
            .arg(&recipe)
            .arg("--out")
            .arg(&out)
            .arg("--source")
            .arg(format!("gcompat-src={}", fixture.display())),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let output = support::run(support::kiln().arg("boot").arg(&out).args([
        "--image",
        "installer:smoke",
        "--timeout",
        "300",
        "--until",
        "kiln-smoke: done:",
    ]));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let reported: Vec<&str> =
        text.lines().filter_map(|l| l.split_once("kiln-smoke: ").map(|(_, r)| r)).collect();
    // The version of the package install-deps downloaded (Debian's revision after the '-').
    let version = String::from_utf8(support::ok_bytes(Command::new("dpkg-deb").args([
        "--field",
        NODE_EXPORTER_DEB,
        "Version",
    ])))
    .unwrap();
    let upstream = version.trim().rsplit_once('-').map_or(version.trim(), |(upstream, _)| upstream);
    let mut expected = vec![
        "glibc: hello from glibc, 2 argument(s), argv[0] /usr/local/bin/hello-glibc".to_owned(),
        "run glibc-probes: exit 0".to_owned(),
        format!("run node-exporter: node_exporter, version {upstream} "),
        "run node-exporter: exit 0".to_owned(),
        "done: ok".to_owned(),
    ];
    for kind in ["pie", "nopie"] {
        expected.extend([
            format!("run glibc-probes: {kind} printf: 42 fortified"),
            format!("run glibc-probes: {kind} threads: 4 joined, sum 20"),
            format!("run glibc-probes: {kind} dlopen: hello from a glibc-linked plugin, pid "),
            format!("run glibc-probes: {kind} getaddrinfo: 127.0.0.1 port 9100 AF_INET"),
        ]);
    }
    for line in &expected {
        assert!(support::guest_reported(&reported, line), "the guest did not report {line:?}:\n{text}");
    }
}
