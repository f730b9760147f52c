//! Command-line interface definitions (clap). No logic beyond argument types.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kiln_layers::compress::Compression;
use kiln_layers::oci::reference::Reference;

/// Builds Talos Linux OS images reproducibly, without a daemon.
///
/// Every timestamp kiln writes comes from SOURCE_DATE_EPOCH (default 0).
/// Exit codes: 0 ok, 1 differences found, 2 usage error, 3 bad input, 4 environment failure.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build a recipe's images into an OCI image layout; prints NAME:TAG and digest per image.
    ///
    /// Every step runs in the hermetic sandbox and is cached by its inputs: a step whose
    /// inputs did not change does not run again. Sources are fetched into the cache
    /// ($KILN_CACHE, default ~/.cache/kiln) and checked against their pins and kiln.lock;
    /// without a kiln.lock, the build writes one.
    ///
    /// A `[kernel]` is configured, checked (a requested option that does not stick fails the
    /// build before the compile, with the reason) and built; its modules are signed with the
    /// recipe's key and indexed. `[modules.NAME]` are built against it, signed and checked.
    /// `[extensions.NAME]` are assembled and checked against Talos's rules and the kernel;
    /// `[talos]` assembles the initramfs with the extension layers, the UKI and the installer
    /// tree.
    ///
    /// A source that cannot be had (offline, unreachable, or locked but not in kiln.lock) stops
    /// only the steps and images that need it: the rest is built, then the build fails naming
    /// each missing source and how to provide it.
    ///
    /// Every image gets an SBOM (SPDX 2.3 JSON: the image, each file with SHA-1 and SHA-256,
    /// kernels, kernel modules with their versions and signers, the sources that fed it) and a
    /// provenance statement (in-toto v1, SLSA provenance v1: the recipe's and kiln.lock's
    /// digests, the sources, the sandbox environment, build type `https://kiln.invalid/build/v1`).
    /// Both are attached to the image in the layout as OCI artifacts (artifactType
    /// application/spdx+json and application/vnd.in-toto+json, subject = the image's manifest,
    /// listed in index.json with the annotation dev.kiln.subject=NAME:TAG) and written to
    /// OUT.attestations/NAME_TAG.spdx.json and NAME_TAG.intoto.json. They are reproducible too:
    /// the same inputs give the same bytes.
    ///
    /// With --cache-from/--cache-to (or KILN_CACHE_FROM/KILN_CACHE_TO), steps are shared
    /// between machines through an OCI registry: a step missing from this machine's cache is
    /// pulled from the first location holding its key (tag step-KEY, an OCI artifact of type
    /// application/vnd.kiln.step.v1) instead of being built, after its blobs, key and extracted
    /// tree are verified; an entry that fails a check is reported and the step is built. Every
    /// step the --cache-to repository lacks is pushed there, with the same credentials as
    /// `kiln push`. A registry that cannot be used is reported once; the build goes on without it.
    Build(BuildArgs),
    /// Fetch every source of a recipe and write its kiln.lock.
    ///
    /// Sources with `locked = true` have no pin in the recipe: this resolves them (a URL's file,
    /// an image tag's manifest digest) and the lock pins them for every later build. Run it where
    /// the network reaches them and keep the kiln.lock it writes. A file a Debian package
    /// installs (`package = "…"`) is pinned with the package's version, once dpkg's database
    /// says the package installed those bytes. `--update NAME` re-locks that source only (after
    /// Debian updated its package, say) and keeps every other entry as it is.
    Lock(LockArgs),
    /// Check a recipe without building it: what a build would refuse, in seconds.
    ///
    /// The schema; the pins (kiln.lock agrees with the recipe, every source is pinned, and every
    /// source on this host, a file read where it is, a package's file or a cached download,
    /// matches its pin: nothing is fetched); the kernel's configuration (the kernel step's own configuration phase in its
    /// sandbox, no compile: every value the fragments request must stick after
    /// `make olddefconfig`, each one that does not explained); and for a `[talos]` recipe, what
    /// Talos v1.10.3 enforces at boot: the KSPP arguments (slab_nomerge, pti=on) and Talos's
    /// defaults on the UKI's command line, and a kernel option creating every KSPP sysctl and
    /// every `[machine-config]` sysctl. A check that cannot run here (a source not yet fetched)
    /// says so. Exits 0 when every check that ran holds, 1 when one does not.
    Check(CheckArgs),
    /// Pack a directory tree as a reproducible single-layer OCI image.
    Pack(PackArgs),
    /// Show the images in an OCI image layout or a registry: names, digests, layers, sizes.
    Inspect(InspectArgs),
    /// Push a layout's images (and indexes) to a registry; prints REPOSITORY@DIGEST per image.
    ///
    /// Image NAME:TAG in the layout goes to REGISTRY/PREFIX/NAME with tag TAG (and every
    /// --tag). Blobs the registry has are skipped; tags are set only after every blob and
    /// manifest is present. Credentials come from ~/.docker/config.json (credential helpers
    /// included) or containers auth.json.
    ///
    /// After each image, the layout's artifacts about it (the SBOM and provenance `kiln build`
    /// attached) are pushed by digest, untagged. Where the registry has no referrers API (OCI
    /// distribution 1.1), the referrers tag sha256-<hex of the image's digest> is kept up to
    /// date instead: an index listing them, merged with what the tag already lists.
    Push(PushArgs),
    /// Pull an image or index (all platforms) from a registry into a layout.
    Pull(PullArgs),
    /// Compare two images or layouts: manifest, config, layers, file entries.
    ///
    /// Exits 0 when identical, 1 when they differ.
    Diff(DiffArgs),
    /// Kernel configuration: merge fragments, check a final .config, diff two configs.
    #[command(subcommand)]
    Kconfig(KconfigCommand),
    /// Kernel modules: show what a module holds, index a module tree, check compatibility,
    /// sign and verify modules, make signing keys.
    #[command(subcommand)]
    Modules(ModulesCommand),
    /// Boot a built image under QEMU and stream its serial console (a smoke check).
    ///
    /// An installer image (holding usr/install/amd64/vmlinuz.efi) boots like an installed Talos
    /// node: OVMF, systemd-boot, the UKI with its own kernel arguments. A kernel image (holding
    /// boot/vmlinuz) boots directly with --initrd and --cmdline. The machine: q35, TCG (or --kvm),
    /// --cpus over --numa-nodes nodes sharing --memory, optionally an SR-IOV capable igb
    /// adapter; no network. Exits 0 when the guest powers off (or --until is seen), 1 when the
    /// timeout passes first.
    Boot(BootArgs),
    /// Rebuild a recipe from clean caches in perturbed environments and compare every digest.
    ///
    /// The first build (or --expect, a file of `NAME:TAG sha256:…` lines as `kiln build`
    /// prints them) gives the digests; each rebuild runs `kiln build` with an empty cache on a
    /// copy of the recipe made elsewhere in reverse order, under another umask, time zone, locale,
    /// compression thread count and environment noise. Rebuild 1 also runs under another host
    /// name, as user nobody and with kiln's clock a year ahead; rebuild 2 on one CPU (serial
    /// make) under another host name; rebuild 3 changes only the settings above; later ones
    /// cycle (what the host does not allow is reported). Exits 0 when every digest matches; 1 with the difference explained image →
    /// layer → file → first differing bytes, and the diffoscope commands, when one does not.
    Verify(VerifyArgs),
    /// Print the Talos machine-config patch for a built installer image (YAML).
    ///
    /// `machine.install.image` is pinned by digest where `kiln push` puts the image
    /// (REGISTRY/PREFIX/NAME:TAG@sha256:…); `[machine-config]` of the recipe adds kernel modules
    /// and sysctls; --install-disk and --machine-type set machine.install.disk and machine.type.
    /// Talos 1.10 ignores machine.install.extensions (extensions are in the image). The recipe's
    /// kernel arguments are in the UKI, which systemd-boot boots, and also written as
    /// machine.install.extraKernelArgs, from which GRUB (BIOS nodes, or nodes first installed
    /// with GRUB) builds its command line.
    MachineConfig(MachineConfigArgs),
    /// Run a shell script in the build sandbox, exactly as recipe steps run (to debug a step).
    ///
    /// The script runs with `/bin/sh -ec` in /build, with the host's toolchain (/usr) read-only,
    /// /build and /out writable, a private /tmp, no network but lo, the hostname `kiln`, uid 0
    /// (mapped to you), and only the fixed environment (PATH, LC_ALL=C, TZ=UTC, HOME=/build,
    /// SOURCE_DATE_EPOCH) plus --env. Its output is printed as it comes. Exits 1 when the
    /// script fails.
    Sandbox(SandboxArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Recipe directory (holding kiln.toml).
    #[arg(default_value = ".")]
    pub(crate) recipe: PathBuf,
    /// Use a local file or directory instead of a source, unchecked (repeatable).
    #[arg(long = "source", value_name = "NAME=PATH", value_parser = parse_override)]
    pub(crate) overrides: Vec<(String, PathBuf)>,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Recipe directory (holding kiln.toml).
    #[arg(default_value = ".")]
    pub(crate) recipe: PathBuf,
    /// OCI image layout to write the images into (SBOMs and provenance go to DIR.attestations).
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) sources: SourceArgs,
    /// Compression threads (default: all cores). The output is the same for any number.
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<NonZeroUsize>,
    /// Look steps up in this registry repository before building them (repeatable, or
    /// comma-separated in KILN_CACHE_FROM); http:// for a registry speaking plain HTTP.
    #[arg(
        long = "cache-from",
        value_name = "[http://]REGISTRY/REPOSITORY",
        env = "KILN_CACHE_FROM",
        value_delimiter = ','
    )]
    pub(crate) cache_from: Vec<kiln_builder::remote_cache::Location>,
    /// Push every step this registry repository lacks to it (it is also looked in).
    #[arg(long = "cache-to", value_name = "[http://]REGISTRY/REPOSITORY", env = "KILN_CACHE_TO")]
    pub(crate) cache_to: Option<kiln_builder::remote_cache::Location>,
    /// Trust this CA certificate (PEM) for the shared cache's registries.
    #[arg(long = "cache-ca-cert", value_name = "FILE", env = "KILN_CACHE_CA_CERT")]
    pub(crate) cache_ca_cert: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BootArgs {
    /// OCI image layout a build wrote.
    #[arg(default_value = "out")]
    pub(crate) out: PathBuf,
    /// The image to boot, NAME:TAG (default: the layout's installer image).
    #[arg(long, value_name = "NAME:TAG")]
    pub(crate) image: Option<String>,
    /// For a kernel image: the initramfs, a file or an image of the layout holding one file.
    #[arg(long, value_name = "FILE|NAME:TAG")]
    pub(crate) initrd: Option<String>,
    /// For a kernel image: the kernel command line.
    #[arg(long, default_value = "console=ttyS0 panic=-1")]
    pub(crate) cmdline: String,
    /// For an installer image: the systemd-boot entry to start (loader.conf's `default`). The
    /// UKI sits at EFI/Linux/kiln.efi, so a profile of it is `kiln.efi@PROFILE-ID`, e.g.
    /// `kiln.efi@reset-maintenance` (systemd-boot 257 or later lists profiles as entries).
    #[arg(long, value_name = "ID")]
    pub(crate) entry: Option<String>,
    /// Memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub(crate) memory: u32,
    /// CPUs.
    #[arg(long, default_value_t = 2)]
    pub(crate) cpus: u32,
    /// NUMA nodes the CPUs and memory are split across.
    #[arg(long, default_value_t = 2)]
    pub(crate) numa_nodes: u32,
    /// Add an igb network adapter with SR-IOV (virtual functions enabled from the guest).
    #[arg(long)]
    pub(crate) igb: bool,
    /// Run the guest with KVM instead of emulating it (TCG).
    #[arg(long)]
    pub(crate) kvm: bool,
    /// Stop the machine, successfully, once a console line contains this text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) until: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub(crate) timeout: u64,
    /// The QEMU program.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub(crate) qemu: PathBuf,
    /// OVMF code and variables images (default: Debian's, from the ovmf package).
    #[arg(long, num_args = 2, value_names = ["CODE", "VARS"])]
    pub(crate) firmware: Option<Vec<PathBuf>>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Recipe directory (holding kiln.toml).
    #[arg(default_value = ".")]
    pub(crate) recipe: PathBuf,
    /// Perturbed rebuilds.
    #[arg(long, default_value_t = 3)]
    pub(crate) rebuilds: usize,
    /// Compare with these digests (`NAME:TAG sha256:…` lines) instead of a first build.
    #[arg(long, value_name = "FILE")]
    pub(crate) expect: Option<PathBuf>,
    /// Where the builds go (default: a temporary directory, kept only when they differ).
    #[arg(long, value_name = "DIR")]
    pub(crate) work: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct MachineConfigArgs {
    /// Recipe directory (holding kiln.toml).
    #[arg(default_value = ".")]
    pub(crate) recipe: PathBuf,
    /// OCI image layout the recipe was built into.
    #[arg(long, default_value = "out", value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Where the images are pushed: REGISTRY/PREFIX, as given to `kiln push`.
    #[arg(long, value_name = "REGISTRY/PREFIX")]
    pub(crate) registry: String,
    /// The installer image, NAME:TAG (default: the recipe's only image based on the Talos step).
    #[arg(long, value_name = "NAME:TAG")]
    pub(crate) image: Option<String>,
    /// machine.install.disk: the disk Talos installs to (e.g. /dev/nvme0n1).
    #[arg(long, value_name = "DEVICE")]
    pub(crate) install_disk: Option<String>,
    /// machine.type: controlplane or worker.
    #[arg(long, value_name = "TYPE", value_parser = ["controlplane", "worker"])]
    pub(crate) machine_type: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LockArgs {
    /// Recipe directory (holding kiln.toml).
    #[arg(default_value = ".")]
    pub(crate) recipe: PathBuf,
    /// Re-lock only this source, keeping the rest of kiln.lock (repeatable).
    #[arg(long = "update", value_name = "NAME")]
    pub(crate) update: Vec<String>,
    #[command(flatten)]
    pub(crate) sources: SourceArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// Use no network: URL and image sources only from the cache (files on this host are read
    /// where they are); fail naming any that is missing.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Use a local file or directory instead of a source, unchecked (repeatable).
    #[arg(long = "source", value_name = "NAME=PATH", value_parser = parse_override)]
    pub(crate) overrides: Vec<(String, PathBuf)>,
}

fn parse_override(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            let path = std::fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
            Ok((name.to_owned(), path))
        }
        _ => Err("expected NAME=PATH".into()),
    }
}

#[derive(Debug, Args)]
pub(crate) struct SandboxArgs {
    /// Host directory mounted at /build (default: a new temporary directory, removed after).
    #[arg(long, value_name = "DIR")]
    pub(crate) build: Option<PathBuf>,
    /// Host directory mounted at /out (default: a new temporary directory, removed after).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Mount a host file or directory read-only at an absolute sandbox path (repeatable).
    #[arg(long = "input", value_name = "HOST:PATH", value_parser = parse_input)]
    pub(crate) inputs: Vec<(PathBuf, String)>,
    /// Set a variable in the sandbox (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_variable)]
    pub(crate) env: Vec<(String, String)>,
    /// Also append the output to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) log: Option<PathBuf>,
    /// The shell script to run.
    pub(crate) script: String,
}

fn parse_input(value: &str) -> Result<(PathBuf, String), String> {
    match value.rsplit_once(':') {
        Some((host, path)) if !host.is_empty() && path.starts_with('/') => {
            let host = std::fs::canonicalize(host).map_err(|e| format!("{host}: {e}"))?;
            Ok((host, path.to_owned()))
        }
        _ => Err("expected HOST:PATH with an absolute sandbox PATH".into()),
    }
}

fn parse_variable(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE".into()),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum KconfigCommand {
    /// Merge fragments onto a base config as the kernel's merge_config.sh does (later wins).
    ///
    /// Prints the script's messages on stderr and the merged config on stdout or to --out.
    Merge(KconfigMergeArgs),
    /// Check that every value BASE and FRAGMENTs request is in FINAL (merge_config.sh's rule).
    ///
    /// Exits 1 and lists each missing value when any did not stick.
    Check(KconfigCheckArgs),
    /// Symbol-level differences between two configs. Exits 1 when they differ.
    Diff(KconfigDiffArgs),
    /// Give every symbol of CONFIG its value as `make olddefconfig` would, without make.
    ///
    /// Parses the Kconfig tree of --srctree (running its $(shell,…) probes through /bin/sh,
    /// or replaying a --probes record) and rewrites CONFIG in place, atomically, or writes --out.
    Olddefconfig(KconfigOlddefconfigArgs),
    /// Explain a symbol's value after olddefconfig: what set it (with file:line) and, for a
    /// value CONFIG requests that did not stick, the chain of unmet dependencies.
    Explain(KconfigExplainArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KconfigTreeArgs {
    /// The Linux source tree.
    #[arg(long, value_name = "DIR")]
    pub(crate) srctree: PathBuf,
    /// ARCH as make sees it (x86 when make derives it on an x86_64 host).
    #[arg(long, default_value = "x86", value_name = "ARCH")]
    pub(crate) arch: String,
    /// Answer $(shell,…) probes from this record instead of running them.
    #[arg(long, value_name = "FILE")]
    pub(crate) probes: Option<PathBuf>,
    /// Record every probe's command and output in this file (JSON), for --probes.
    #[arg(long, value_name = "FILE")]
    pub(crate) record_probes: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KconfigOlddefconfigArgs {
    #[command(flatten)]
    pub(crate) tree: KconfigTreeArgs,
    /// The .config to complete.
    pub(crate) config: PathBuf,
    /// Write the result here (atomically) instead of replacing CONFIG.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KconfigExplainArgs {
    #[command(flatten)]
    pub(crate) tree: KconfigTreeArgs,
    /// The .config (the request: its values are compared with the result).
    pub(crate) config: PathBuf,
    /// Symbols to explain (with or without CONFIG_).
    #[arg(required = true)]
    pub(crate) symbols: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct KconfigMergeArgs {
    /// Base config.
    pub(crate) base: PathBuf,
    /// Fragments, applied in order.
    pub(crate) fragments: Vec<PathBuf>,
    /// Write the merged config here (atomically) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// A later `m` does not demote an earlier `y` (merge_config.sh -y).
    #[arg(short = 'y', long)]
    pub(crate) builtin_wins: bool,
    /// Fail if a fragment redefines any value (merge_config.sh -s).
    #[arg(short, long)]
    pub(crate) strict: bool,
    /// Report values set again unchanged (merge_config.sh -r).
    #[arg(short = 'r', long)]
    pub(crate) redundant: bool,
    /// No messages about overridden values (merge_config.sh -Q).
    #[arg(short = 'Q', long)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KconfigCheckArgs {
    /// The final .config, e.g. after `make olddefconfig`.
    pub(crate) final_config: PathBuf,
    /// Base config (or the already merged request).
    pub(crate) base: PathBuf,
    /// Fragments merged onto the base, in order.
    pub(crate) fragments: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct KconfigDiffArgs {
    /// Old config.
    pub(crate) old: PathBuf,
    /// New config.
    pub(crate) new: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct ModulesSignArgs {
    /// Private key PEM (PKCS#8 or PKCS#1), possibly followed by the certificate, like the
    /// kernel's certs/signing_key.pem.
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// X.509 certificate, PEM or DER (default: the certificate in --key).
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: Option<PathBuf>,
    /// Digest algorithm (CONFIG_MODULE_SIG_HASH).
    #[arg(long, value_enum, default_value_t = HashArg::Sha512)]
    pub(crate) hash: HashArg,
    /// Strip a signature by another key (or an invalid one) and sign again.
    #[arg(long)]
    pub(crate) replace: bool,
    /// The modules (.ko, uncompressed).
    #[arg(required = true, value_name = "FILE.ko")]
    pub(crate) modules: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum HashArg {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Args)]
pub(crate) struct ModulesVerifyArgs {
    /// X.509 certificate of the signing key, PEM or DER.
    #[arg(long, value_name = "FILE")]
    pub(crate) cert: PathBuf,
    /// The modules (.ko, uncompressed).
    #[arg(required = true, value_name = "FILE.ko")]
    pub(crate) modules: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ModulesKeygenArgs {
    /// Where to write the private key and certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    /// Also write the certificate here, in DER (like certs/signing_key.x509).
    #[arg(long, value_name = "FILE")]
    pub(crate) cert_out: Option<PathBuf>,
    /// Derive the key from this file's bytes (at least 32) instead of at random.
    #[arg(long, value_name = "FILE")]
    pub(crate) seed: Option<PathBuf>,
    /// RSA key size (2048 to 4096).
    #[arg(long, default_value_t = kiln_modules::signing::keygen::DEFAULT_BITS)]
    pub(crate) bits: usize,
    /// Certificate subject and issuer, an RFC 4514 name.
    #[arg(long, default_value = kiln_modules::signing::keygen::DEFAULT_SUBJECT, value_name = "NAME")]
    pub(crate) subject: String,
}

#[derive(Debug, Args)]
pub(crate) struct PackArgs {
    /// Directory to pack; becomes the root of the image.
    pub(crate) dir: PathBuf,
    /// Image name in the layout, NAME:TAG (e.g. kernel:custom-solana-v1.10.3).
    #[arg(long = "ref", value_name = "NAME:TAG")]
    pub(crate) reference: Reference,
    /// OCI image layout to write; created if missing, else the image is added or replaced.
    #[arg(long, value_name = "LAYOUT")]
    pub(crate) out: PathBuf,
    /// Layer compression: gzip, zstd or none, optionally with a level (gzip:9, zstd:19).
    #[arg(long, default_value = "gzip", value_name = "ALGORITHM[:LEVEL]")]
    pub(crate) compression: Compression,
    /// Compression threads (default: all cores). The output is the same for any number.
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<NonZeroUsize>,
    /// Platform recorded in the image, OS/ARCH.
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub(crate) platform: String,
    /// How file mtimes follow SOURCE_DATE_EPOCH: set every one to it, or clamp newer ones.
    #[arg(long, value_enum, default_value_t = MtimeArg::Set)]
    pub(crate) mtime: MtimeArg,
    /// Keep the tree's permission bits (including setuid/setgid/sticky) instead of
    /// normalising them to 0755/0644.
    #[arg(long)]
    pub(crate) preserve_modes: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MtimeArg {
    Set,
    Clamp,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// OCI image layout directory, or an image in a registry: REGISTRY/REPOSITORY:TAG or @DIGEST.
    pub(crate) target: String,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    /// Talk plain HTTP to the registry (loopback or lab registries).
    #[arg(long)]
    pub(crate) insecure_http: bool,
    /// Trust this CA certificate (PEM) for the registry's TLS certificate.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// OCI image layout to push from.
    pub(crate) layout: PathBuf,
    /// Destination: a registry host, optionally with a repository prefix (ghcr.io/org).
    #[arg(long, value_name = "REGISTRY/PREFIX")]
    pub(crate) to: kiln_registry::reference::Target,
    /// Also tag every pushed image with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Push only this image of the layout (repeatable; default: all named images).
    #[arg(long = "image", value_name = "NAME:TAG")]
    pub(crate) images: Vec<String>,
    /// Blob uploads in parallel.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) jobs: usize,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Image in a registry: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@DIGEST.
    pub(crate) image: kiln_registry::reference::ImageRef,
    /// Layout to write; created if missing.
    #[arg(long, value_name = "LAYOUT")]
    pub(crate) out: PathBuf,
    /// Name in the layout (default: REPOSITORY:TAG).
    #[arg(long, value_name = "NAME:TAG")]
    pub(crate) name: Option<Reference>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// First image: LAYOUT, or LAYOUT:NAME:TAG for one image in it.
    pub(crate) a: String,
    /// Second image, same forms.
    pub(crate) b: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModulesCommand {
    /// Show what module files hold: every .modinfo field in file order, the parsed vermagic,
    /// __versions CRCs, exported and needed symbols.
    ///
    /// Reads .ko, .ko.xz, .ko.zst and .ko.gz files, signed or not.
    Info(ModulesInfoArgs),
    /// Write the module indexes of a tree, as kmod's `depmod -b BASEDIR KVER` does.
    ///
    /// Modules are looked for in BASEDIR/lib/modules/KVER, or BASEDIR/usr/lib/modules/KVER when
    /// only that exists (or in --moduledir). Writes modules.dep, .alias, .softdep, .symbols,
    /// .devname and the .bin indexes kmod reads (dep, alias, symbols, builtin, builtin.alias),
    /// byte-identical to kmod 30's, each replaced atomically. No depmod.d configuration is read
    /// unless given with --config.
    Depmod(ModulesDepmodArgs),
    /// Check modules against a kernel: vermagic (release and .config flags), __versions CRCs
    /// against Module.symvers, and needed symbols no one provides.
    ///
    /// Prints one line per problem, naming the module and symbol; exits 1 when there is any.
    Check(ModulesCheckArgs),
    /// Sign modules in place, byte-identical to the kernel's scripts/sign-file.
    ///
    /// A module already validly signed by this key with this hash is left as it is; one
    /// carrying any other signature is an error (--replace strips it and signs again). Modules
    /// are signed in parallel; each is replaced atomically.
    Sign(ModulesSignArgs),
    /// Check module signatures against a certificate, as the kernel does when loading them.
    ///
    /// Exits 1 and lists each module that is unsigned, malformed, signed by another key or
    /// modified after signing, with the reason.
    Verify(ModulesVerifyArgs),
    /// Generate an RSA signing key and self-signed certificate (CONFIG_MODULE_SIG_KEY).
    ///
    /// Writes the PKCS#8 private key followed by the certificate as PEM (mode 0600). The
    /// certificate is valid from SOURCE_DATE_EPOCH (default 0) for 36500 days. With --seed
    /// the key and certificate are the same bytes for the same seed: the seed is then as
    /// secret as the key.
    Keygen(ModulesKeygenArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ModulesInfoArgs {
    /// Module files.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// Print JSON: an array with one object per file.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ModulesDepmodArgs {
    /// Root of the tree holding lib/modules/KVER (depmod -b).
    #[arg(short = 'b', long, value_name = "DIR")]
    pub(crate) basedir: PathBuf,
    /// Kernel release: the directory name under the modules directory.
    pub(crate) release: String,
    /// The modules directory inside BASEDIR (default: /lib/modules, else /usr/lib/modules).
    #[arg(long, value_name = "DIR")]
    pub(crate) moduledir: Option<PathBuf>,
    /// depmod.d configuration file or directory (repeatable; depmod -C).
    #[arg(short = 'C', long = "config", value_name = "FILE")]
    pub(crate) config: Vec<PathBuf>,
    /// The kernel's Module.symvers: warn about unknown symbols and CRC disagreements (depmod -e -E).
    #[arg(short = 'E', long, value_name = "FILE")]
    pub(crate) symvers: Option<PathBuf>,
    /// Write nothing; print modules.dep on stdout (kmod's -n prints every file, this only modules.dep).
    #[arg(short = 'n', long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ModulesCheckArgs {
    /// Module files to check.
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// The kernel release the modules must be built for.
    #[arg(long, value_name = "KVER")]
    pub(crate) release: String,
    /// The kernel's .config: check the vermagic flags (SMP, preempt, mod_unload, modversions).
    #[arg(long, value_name = "FILE")]
    pub(crate) kconfig: Option<PathBuf>,
    /// The kernel's Module.symvers: check __versions CRCs and which symbols the kernel exports.
    #[arg(long, value_name = "FILE")]
    pub(crate) symvers: Option<PathBuf>,
    /// A directory of modules (searched recursively) whose exports also count as provided.
    #[arg(long, value_name = "DIR")]
    pub(crate) tree: Option<PathBuf>,
    /// Print the problems as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
