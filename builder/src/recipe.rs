//! The recipe: `kiln.toml` in a recipe directory.
//!
//! ```toml
//! [recipe]
//! name = "smoke"
//! source-date-epoch = 1735689600      # SOURCE_DATE_EPOCH overrides it
//!
//! [sources.files]                     # a directory of the recipe, used as it is
//! path = "files"
//!
//! [sources.greeting]                  # a file, pinned by checksum
//! path = "src/greeting.tar.gz"        # relative to the recipe directory; or url = "https://…"
//! sha256 = "…"                        # or sha512
//! unpack = true                       # extract (tar.*, .deb) instead of using the file as is
//! strip-components = 1
//!
//! [sources.base]                      # an OCI image, pinned by its digest
//! image = "ghcr.io/org/base@sha256:…"
//! unpack = true                       # its layers applied in order, else the OCI layout
//!
//! [sources.release]                   # pinned by kiln.lock, not here: `kiln lock` resolves
//! url = "https://…/release.tar.gz"    # the URL (or an image's tag) where the network is
//! locked = true
//!
//! [sources.linux]                     # a file a Debian package installs on this host:
//! path = "/usr/src/linux-source-6.12.tar.xz"
//! package = "linux-source-6.12"       # kiln.lock pins it with the package's version; when
//! unpack = true                       # Debian updates it, `kiln lock --update linux`
//!
//! [steps.compile]                     # a shell script in the sandbox
//! inputs = ["greeting"]               # sources and steps, read-only at /inputs/<name>
//! env = { CFLAGS = "-O2" }
//! script = "cc $CFLAGS -o /out/greeting /inputs/greeting/greeting.c"
//!
//! [kernel]                            # Linux, built as the step "kernel"
//! source = "linux"                    # an unpacked source holding the tree
//! base-target = "tinyconfig"          # or base-config = "kernel/base.config", or
//!                                     # base-source = "talos-config" (a source's file)
//! fragments = ["kernel/extra.config"] # merged in order; each value must stick
//! localversion = "-custom"
//! signing-seed = "kernel/signing.seed" # module signing key derived from a secret seed, or
//!                                     # signing-key = "key.pem" (private key and certificate)
//! cmdline = "console=ttyS0 hugepages=64" # the kernel command line, in this order
//!
//! [modules.hello]                     # an out-of-tree module, built against the kernel
//! source = "hello-src"                # a source holding its Kbuild and C files
//!
//! [extensions.hello]                  # a Talos system extension, assembled as the step "hello"
//! version = "1.0.0"                   # manifest.yaml's metadata; name defaults to the key
//! author = "Example"
//! description = "Says hello"
//! talos-version = ">= v1.10.0"        # compatibility.talos.version
//! rootfs = ["compile", "hello"]       # sources and steps merged into rootfs/, in order
//!
//! [talos]                             # Talos boot assets, assembled as the step "talos"
//! version = "v1.10.3"                 # extensions are checked against it; .osrel names it
//! initramfs = "base/initramfs.xz"     # the base initramfs: a source or step, or a file in one
//! stub = "systemd-stub"               # systemd-stub (linuxx64.efi.stub): a file source
//! systemd-boot = "systemd-boot"       # systemd-bootx64.efi: a file source
//! extensions = ["hello"]              # in layer order
//! platform = "metal"                  # optional: Talos's own kernel arguments first
//! cmdline = "console=ttyS0"           # extra kernel arguments; default [kernel] cmdline
//! profiles = true                     # optional: UKI profiles (stub 257+); default: if it reads them
//!
//! [images."greeting:v1"]              # NAME:TAG in the output layout
//! from = "compile"                    # a step's /out, or dir = "extension" in the recipe
//! compression = "gzip"
//!
//! [images."installer:v1"]
//! from = "talos"
//! path = "installer"                  # the step's installer tree (usr/install/amd64/…)
//! base = "installer-base"             # layers and config of a base image: an image source,
//!                                     # or another image of this recipe
//! ```
//!
//! Names are checked (known inputs, no cycles) when the recipe is read; errors name the file
//! and, for syntax, the line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The recipe file's name in a recipe directory.
pub const FILE_NAME: &str = "kiln.toml";

/// A parsed and checked recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// The recipe directory.
    pub dir: PathBuf,
    /// `[recipe]`.
    pub meta: Meta,
    /// Sources by name.
    pub sources: BTreeMap<String, Source>,
    /// Steps by name.
    pub steps: BTreeMap<String, Step>,
    /// The kernel, built as the step named [`KERNEL`].
    pub kernel: Option<Kernel>,
    /// Out-of-tree kernel modules, each built as the step of its name.
    pub modules: BTreeMap<String, Module>,
    /// Talos system extensions, each assembled as the step of its name.
    pub extensions: BTreeMap<String, Extension>,
    /// Talos boot assets, assembled as the step named [`TALOS`].
    pub talos: Option<Talos>,
    /// `[machine-config]`: what `kiln machine-config` puts in the patch besides the image.
    pub machine_config: MachineConfig,
    /// Images by `NAME:TAG`.
    pub images: BTreeMap<String, Image>,
}

/// `[recipe]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Meta {
    /// The recipe's name.
    pub name: String,
    /// The build's time, unless `SOURCE_DATE_EPOCH` is set.
    #[serde(default)]
    pub source_date_epoch: Option<u64>,
}

/// Where a source comes from, and its pin.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Source {
    /// A local file, relative to the recipe directory or absolute.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// An `http://` or `https://` URL.
    #[serde(default)]
    pub url: Option<String>,
    /// An OCI image, `REGISTRY/REPOSITORY@sha256:…`: the digest is its pin.
    #[serde(default)]
    pub image: Option<String>,
    /// Talk plain HTTP to the image's registry (a lab or loopback registry).
    #[serde(default)]
    pub insecure_http: bool,
    /// Expected SHA-256 (hex).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Expected SHA-512 (hex).
    #[serde(default)]
    pub sha512: Option<String>,
    /// Pinned by `kiln.lock` instead of the recipe: `kiln lock`, on a machine that can reach
    /// it, records what the URL's file or the image tag resolved to; builds then hold it to that.
    #[serde(default)]
    pub locked: bool,
    /// The Debian package that installs `path` on the host. Such a file is pinned by
    /// `kiln.lock` (with the package's version), never in the recipe: a distribution replaces it
    /// with each update, and `kiln lock --update NAME` re-pins it on purpose.
    #[serde(default)]
    pub package: Option<String>,
    /// Extract the archive (tar, compressed or not, or `.deb`) for the steps.
    #[serde(default)]
    pub unpack: bool,
    /// Leading path components dropped when extracting.
    #[serde(default)]
    pub strip_components: usize,
}

impl Source {
    /// Whether `kiln.lock` pins it rather than the recipe (`locked = true`, or a package's file).
    pub fn pinned_by_lock(&self) -> bool {
        self.locked || self.package.is_some()
    }
}

/// A shell script run in the sandbox.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Step {
    /// Sources and steps it reads, mounted at `/inputs/<name>`.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Variables on top of the sandbox's fixed environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The script (`/bin/sh -ec`), run in `/build`; what it writes to `/out` is the output.
    pub script: String,
}

/// The name of the kernel's step: what other steps and images call it.
pub const KERNEL: &str = "kernel";

/// `[kernel]`: a Linux kernel built in the sandbox from a source tree and a configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Kernel {
    /// The source holding the kernel tree (unpacked, with its top directory stripped).
    pub source: String,
    /// A make target that writes the base configuration (`tinyconfig`, `x86_64_defconfig`)…
    #[serde(default)]
    pub base_target: Option<String>,
    /// …or a base configuration file of the recipe…
    #[serde(default)]
    pub base_config: Option<PathBuf>,
    /// …or one a source pins (`NAME`, a file source, or `NAME/PATH` in an unpacked one): a
    /// distribution's kernel configuration, fetched by its URL and checksum.
    #[serde(default)]
    pub base_source: Option<String>,
    /// Configuration fragments of the recipe, merged in order onto the base (later wins).
    #[serde(default)]
    pub fragments: Vec<PathBuf>,
    /// Appended to the kernel release (`LOCALVERSION`).
    #[serde(default)]
    pub localversion: String,
    /// A PEM file with the module signing key and its certificate…
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// …or a file of secret bytes the key and certificate are derived from, reproducibly.
    #[serde(default)]
    pub signing_seed: Option<PathBuf>,
    /// The kernel command line for images that boot it, arguments in the order given.
    #[serde(default)]
    pub cmdline: Option<String>,
}

/// `[modules.NAME]`: an out-of-tree kernel module, built against the recipe's kernel, signed
/// with its key and installed under `usr/lib/modules/<release>/extras/`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Module {
    /// The source holding the module's `Kbuild` (or `Makefile`) and C files.
    pub source: String,
}

/// `[extensions.NAME]`: a Talos system extension (`manifest.yaml` and `rootfs/`), assembled by
/// kiln from other steps' trees and checked against Talos's rules and the recipe's kernel.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Extension {
    /// `metadata.name`; the section's key when not given.
    #[serde(default)]
    pub name: Option<String>,
    /// `metadata.version`.
    pub version: String,
    /// `metadata.author`.
    pub author: String,
    /// `metadata.description`.
    pub description: String,
    /// `metadata.compatibility.talos.version`, a constraint such as `>= v1.10.0`.
    #[serde(default)]
    pub talos_version: Option<String>,
    /// Sources and steps (`NAME` or `NAME/PATH`) whose trees are merged into `rootfs/`, in order.
    pub rootfs: Vec<String>,
}

/// The name of the Talos assembly's step.
pub const TALOS: &str = "talos";

/// `[talos]`: the boot assets of a Talos node — the initramfs with the extensions appended, the
/// UKI and the installer tree — assembled by kiln as the step [`TALOS`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Talos {
    /// The Talos release (`v1.10.3`): extensions' constraints are checked against it.
    pub version: String,
    /// The base initramfs (`NAME` or `NAME/PATH` of a source or step), appended to unchanged.
    pub initramfs: String,
    /// systemd-stub, the UKI's EFI program.
    pub stub: String,
    /// systemd-boot, installed beside the UKI.
    pub systemd_boot: String,
    /// Extensions, in layer order (later ones on top).
    #[serde(default)]
    pub extensions: Vec<String>,
    /// A Talos platform (`metal`): its kernel arguments and Talos's defaults come first.
    #[serde(default)]
    pub platform: Option<String>,
    /// Kernel arguments, in this order; `[kernel] cmdline` when not given.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// The UKI's profiles as Talos 1.10 writes them (`main`, and `reset-maintenance`, whose
    /// command line adds Talos's wipe argument): `true` requires a stub that reads them
    /// (systemd-stub 257 or later), `false` writes none; when not given, they are written where
    /// the stub reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<bool>,
}

/// `[machine-config]`: settings of the Talos machine-config patch `kiln machine-config` writes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MachineConfig {
    /// Kernel modules Talos loads at boot (`machine.kernel.modules`).
    #[serde(default)]
    pub modules: Vec<String>,
    /// `machine.sysctls`, by key (`vm.max_map_count`).
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `machine.kubelet.extraConfig`: what a pinned validator pod needs of the kubelet.
    #[serde(default, skip_serializing_if = "Kubelet::is_empty")]
    pub kubelet: Kubelet,
}

/// `[machine-config.kubelet]`: kubelet settings for pods pinned to whole CPUs on one NUMA node
/// (KubeletConfiguration, kubelet.config.k8s.io/v1beta1), written as `machine.kubelet.extraConfig`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Kubelet {
    /// `cpuManagerPolicy`: `static` gives a Guaranteed pod's containers whole CPUs of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_manager_policy: Option<String>,
    /// `reservedSystemCPUs`: the CPUs (a cpuset, `0-1,64-65`) kept for the system and kubelet,
    /// which the static policy needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_system_cpus: Option<String>,
    /// `topologyManagerPolicy`: `single-numa-node` puts a pod's CPUs and devices on one node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_manager_policy: Option<String>,
    /// `topologyManagerScope`: `container` or `pod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_manager_scope: Option<String>,
}

impl Kubelet {
    /// Whether no setting is given.
    pub fn is_empty(&self) -> bool {
        *self == Kubelet::default()
    }

    /// The settings as `extraConfig` keys and values, in KubeletConfiguration's names.
    pub fn extra_config(&self) -> Vec<(&'static str, &str)> {
        [
            ("cpuManagerPolicy", &self.cpu_manager_policy),
            ("reservedSystemCPUs", &self.reserved_system_cpus),
            ("topologyManagerPolicy", &self.topology_manager_policy),
            ("topologyManagerScope", &self.topology_manager_scope),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|value| (key, value)))
        .collect()
    }

    /// Why the settings would not start a kubelet, if they would not.
    fn problem(&self) -> Option<String> {
        let allowed =
            |value: &Option<String>, values: &[&str]| value.as_deref().is_none_or(|v| values.contains(&v));
        if !allowed(&self.cpu_manager_policy, &["none", "static"]) {
            return Some("cpu-manager-policy is none or static".into());
        }
        if !allowed(&self.topology_manager_policy, &["none", "best-effort", "restricted", "single-numa-node"])
        {
            return Some(
                "topology-manager-policy is none, best-effort, restricted or single-numa-node".into(),
            );
        }
        if !allowed(&self.topology_manager_scope, &["container", "pod"]) {
            return Some("topology-manager-scope is container or pod".into());
        }
        if let Some(cpus) = &self.reserved_system_cpus {
            let range = |part: &str| {
                let (low, high) = part.split_once('-').unwrap_or((part, part));
                matches!((low.parse::<u32>(), high.parse::<u32>()), (Ok(low), Ok(high)) if low <= high)
            };
            if cpus.is_empty() || !cpus.split(',').all(range) {
                return Some(format!(
                    "reserved-system-cpus {cpus:?} is not a CPU list such as \"0-1,64-65\""
                ));
            }
        }
        // The kubelet refuses the static policy with nothing reserved (cpu_manager.go).
        if self.cpu_manager_policy.as_deref() == Some("static") && self.reserved_system_cpus.is_none() {
            return Some(
                "cpu-manager-policy = \"static\" needs reserved-system-cpus: the kubelet will not start \
                         the static policy with no CPU reserved"
                    .into(),
            );
        }
        None
    }
}

/// An image of the output layout.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Image {
    /// A step whose `/out` is the image's root.
    #[serde(default)]
    pub from: Option<String>,
    /// A directory inside the step's output to use as the root instead (`image` of the kernel).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A directory of the recipe that is the image's root.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Layer compression: `gzip`, `zstd` or `none`, optionally `:LEVEL`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// A base image whose layers and configuration come first: an `image` source, or another
    /// image of this recipe.
    #[serde(default)]
    pub base: Option<String>,
    /// The image's entrypoint (replacing the base's).
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
}

fn default_compression() -> String {
    "gzip".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    recipe: Meta,
    #[serde(default)]
    sources: BTreeMap<String, Source>,
    #[serde(default)]
    steps: BTreeMap<String, Step>,
    #[serde(default)]
    images: BTreeMap<String, Image>,
    #[serde(default)]
    kernel: Option<Kernel>,
    #[serde(default)]
    modules: BTreeMap<String, Module>,
    #[serde(default)]
    extensions: BTreeMap<String, Extension>,
    #[serde(default)]
    talos: Option<Talos>,
    #[serde(default, rename = "machine-config")]
    machine_config: MachineConfig,
}

impl Recipe {
    /// Reads `DIR/kiln.toml`.
    pub fn load(dir: &Path) -> Result<Recipe> {
        let path = dir.join(FILE_NAME);
        let text =
            std::fs::read_to_string(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        Recipe::parse(dir, &path, &text)
    }

    /// Parses recipe text; `path` names it in errors.
    pub fn parse(dir: &Path, path: &Path, text: &str) -> Result<Recipe> {
        let file: File = toml::from_str(text).map_err(|error| Error::Recipe {
            path: path.to_owned(),
            line: error.span().map(|span| line_of(text, span.start)),
            reason: error.message().to_owned(),
        })?;
        let recipe = Recipe {
            dir: dir.to_owned(),
            meta: file.recipe,
            sources: file.sources,
            steps: file.steps,
            images: file.images,
            kernel: file.kernel,
            modules: file.modules,
            extensions: file.extensions,
            talos: file.talos,
            machine_config: file.machine_config,
        };
        recipe.check(path)?;
        Ok(recipe)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let invalid = |reason: String| Error::Recipe { path: path.to_owned(), line: None, reason };
        for (name, source) in &self.sources {
            check_name(name).map_err(|r| invalid(format!("source {name:?}: {r}")))?;
            if self.steps.contains_key(name) {
                return Err(invalid(format!("{name:?} names both a source and a step")));
            }
            match (&source.path, &source.url, &source.image) {
                (Some(_), None, None) => {}
                (None, Some(url), None) if url.starts_with("http://") || url.starts_with("https://") => {}
                (None, Some(url), None) => {
                    return Err(invalid(format!("source {name:?}: url {url:?} is not http(s)")));
                }
                (None, None, Some(image)) if source.locked => {
                    let tagged = image
                        .parse::<kiln_registry::reference::ImageRef>()
                        .is_ok_and(|reference| reference.digest.is_none());
                    if !tagged || source.sha256.is_some() || source.sha512.is_some() {
                        return Err(invalid(format!(
                            "source {name:?}: a locked image is REGISTRY/REPOSITORY:TAG; kiln.lock holds its digest"
                        )));
                    }
                    continue;
                }
                (None, None, Some(image)) => {
                    let pinned = image
                        .parse::<kiln_registry::reference::ImageRef>()
                        .is_ok_and(|reference| reference.digest.is_some());
                    if !pinned {
                        return Err(invalid(format!(
                            "source {name:?}: image {image:?} is not REGISTRY/REPOSITORY@sha256:DIGEST \
                         (or a tag with locked = true)"
                        )));
                    }
                    if source.sha256.is_some() || source.sha512.is_some() {
                        return Err(invalid(format!(
                            "source {name:?}: an image is pinned by its digest alone"
                        )));
                    }
                    continue;
                }
                _ => {
                    return Err(invalid(format!("source {name:?}: give exactly one of path, url and image")));
                }
            }
            for (algorithm, value, length) in
                [("sha256", &source.sha256, 64), ("sha512", &source.sha512, 128)]
            {
                if let Some(value) = value
                    && (value.len() != length
                        || !value.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
                {
                    return Err(invalid(format!(
                        "source {name:?}: {algorithm} must be {length} lowercase hex digits"
                    )));
                }
            }
            let local_dir = source.path.as_ref().is_some_and(|p| self.dir.join(p).is_dir());
            let pinned = source.sha256.is_some() || source.sha512.is_some();
            if let Some(package) = &source.package {
                check_package(name, package, source, pinned)
                    .map_err(|reason| invalid(format!("source {name:?}: {reason}")))?;
                continue;
            }
            if source.locked && (pinned || source.url.is_none()) {
                return Err(invalid(format!(
                    "source {name:?}: locked = true is for a URL or image without a pin in the recipe"
                )));
            }
            if source.locked {
                continue;
            }
            if local_dir && (pinned || source.unpack) {
                return Err(invalid(format!(
                    "source {name:?} is a directory of the recipe: it is used as it is, without a pin or unpack"
                )));
            }
            if !local_dir && !pinned {
                return Err(invalid(format!(
                    "source {name:?} is not pinned: add sha256 = \"…\" or sha512 = \"…\" (or locked = true to pin it in kiln.lock)"
                )));
            }
        }
        if let Some(kernel) = &self.kernel {
            if self.steps.contains_key(KERNEL) || self.sources.contains_key(KERNEL) {
                return Err(invalid(format!(
                    "{KERNEL:?} is the kernel's step; name the source or step otherwise"
                )));
            }
            match self.sources.get(&kernel.source) {
                Some(source)
                    if source.unpack || source.path.as_ref().is_some_and(|p| self.dir.join(p).is_dir()) => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "kernel: source {:?} must be unpacked (unpack = true)",
                        kernel.source
                    )));
                }
                None => return Err(invalid(format!("kernel: no source {:?}", kernel.source))),
            }
            if !kernel
                .localversion
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'))
            {
                return Err(invalid(format!(
                    "kernel: localversion {:?} may use A-Z, a-z, 0-9, '-', '_', '.', '+'",
                    kernel.localversion
                )));
            }
            let bases =
                [kernel.base_target.is_some(), kernel.base_config.is_some(), kernel.base_source.is_some()];
            if bases.iter().filter(|given| **given).count() != 1 {
                return Err(invalid(
                    "kernel: give exactly one of base-target, base-config and base-source".into(),
                ));
            }
            if let Some(reference) = &kernel.base_source {
                let (name, _) = split_reference(reference);
                if !self.sources.contains_key(name) {
                    return Err(invalid(format!("kernel: base-source {reference:?} names no source")));
                }
                if name == kernel.source {
                    return Err(invalid(format!(
                        "kernel: base-source {reference:?} is in the kernel's own source: use base-config \
                         with a file of the recipe, or a source of its own"
                    )));
                }
            }
            if let Some(target) = &kernel.base_target
                && !(target.ends_with("config")
                    && target.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                return Err(invalid(format!("kernel: base-target {target:?} is not a make *config target")));
            }
            if kernel.signing_key.is_some() && kernel.signing_seed.is_some() {
                return Err(invalid("kernel: give at most one of signing-key and signing-seed".into()));
            }
            let files = kernel.base_config.iter().chain(&kernel.fragments);
            let files = files.chain(&kernel.signing_key).chain(&kernel.signing_seed);
            if let Some(missing) = files.map(|f| self.dir.join(f)).find(|f| !f.is_file()) {
                return Err(invalid(format!("kernel: {} is not a file", missing.display())));
            }
        }
        for (name, module) in &self.modules {
            check_name(name).map_err(|r| invalid(format!("module {name:?}: {r}")))?;
            if self.kernel.is_none() {
                return Err(invalid(format!("module {name:?}: a module needs the recipe's [kernel]")));
            }
            if self.steps.contains_key(name) || self.sources.contains_key(name) || name == KERNEL {
                return Err(invalid(format!("module {name:?}: the name is taken by a source or step")));
            }
            if !self.sources.contains_key(&module.source) {
                return Err(invalid(format!("module {name:?}: no source {:?}", module.source)));
            }
        }
        let taken = |name: &str| {
            self.steps.contains_key(name)
                || self.sources.contains_key(name)
                || self.modules.contains_key(name)
                || name == KERNEL
                || name == TALOS
        };
        for (name, extension) in &self.extensions {
            check_name(name).map_err(|r| invalid(format!("extension {name:?}: {r}")))?;
            if taken(name) {
                return Err(invalid(format!("extension {name:?}: the name is taken by a source or step")));
            }
            if extension.rootfs.is_empty() {
                return Err(invalid(format!("extension {name:?}: rootfs lists no source or step")));
            }
            for input in &extension.rootfs {
                self.check_reference(input).map_err(|r| invalid(format!("extension {name:?}: {r}")))?;
            }
        }
        if let Some(talos) = &self.talos {
            if self.steps.contains_key(TALOS)
                || self.sources.contains_key(TALOS)
                || self.modules.contains_key(TALOS)
                || self.extensions.contains_key(TALOS)
            {
                return Err(invalid(format!(
                    "{TALOS:?} is the Talos assembly's step; name the source or step otherwise"
                )));
            }
            if self.kernel.is_none() {
                return Err(invalid("talos: the assembly needs the recipe's [kernel]".into()));
            }
            for (what, input) in [
                ("initramfs", &talos.initramfs),
                ("stub", &talos.stub),
                ("systemd-boot", &talos.systemd_boot),
            ] {
                self.check_reference(input).map_err(|r| invalid(format!("talos: {what}: {r}")))?;
            }
            for extension in &talos.extensions {
                if !self.extensions.contains_key(extension) {
                    return Err(invalid(format!("talos: no [extensions.{extension}]")));
                }
            }
            if talos.cmdline.is_none() && self.kernel.as_ref().is_some_and(|k| k.cmdline.is_none()) {
                return Err(invalid("talos: no kernel arguments: set cmdline here or in [kernel]".into()));
            }
        }
        for key in self.machine_config.sysctls.keys() {
            let plain = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
            if !plain {
                return Err(invalid(format!("machine-config: sysctl {key:?} is not a sysctl name")));
            }
        }
        for module in &self.machine_config.modules {
            check_name(module).map_err(|r| invalid(format!("machine-config: module {module:?}: {r}")))?;
        }
        if let Some(problem) = self.machine_config.kubelet.problem() {
            return Err(invalid(format!("machine-config.kubelet: {problem}")));
        }
        for (name, step) in &self.steps {
            check_name(name).map_err(|r| invalid(format!("step {name:?}: {r}")))?;
            for input in &step.inputs {
                if !self.sources.contains_key(input) && !self.is_step(input) {
                    return Err(invalid(format!(
                        "step {name:?}: input {input:?} is neither a source nor a step"
                    )));
                }
            }
        }
        self.order().map_err(invalid)?;
        for (name, image) in &self.images {
            name.parse::<kiln_layers::oci::reference::Reference>()
                .map_err(|e| invalid(format!("image {name:?}: {e}")))?;
            image
                .compression
                .parse::<kiln_layers::compress::Compression>()
                .map_err(|e| invalid(format!("image {name:?}: {e}")))?;
            if let Some(base) = &image.base {
                let source = self.sources.get(base).filter(|s| s.image.is_some() && !s.unpack);
                if source.is_none() && !self.images.contains_key(base) {
                    return Err(invalid(format!(
                        "image {name:?}: base {base:?} is neither an image source (image = …, not unpacked) \
                         nor an image of this recipe"
                    )));
                }
                let mut chain = vec![name.as_str()];
                let mut next = Some(base.as_str());
                while let Some(current) = next {
                    if chain.contains(&current) {
                        chain.push(current);
                        return Err(invalid(format!("images are each other's base: {}", chain.join(" → "))));
                    }
                    chain.push(current);
                    next = self.images.get(current).and_then(|image| image.base.as_deref());
                }
            }
            if let Some(path) = &image.path
                && crate::beneath::relative(Path::new(""), path).is_err()
            {
                return Err(invalid(format!(
                    "image {name:?}: path {:?} is not a relative path inside the step's output (no `..`, not absolute)",
                    path.display().to_string()
                )));
            }
            match (&image.from, &image.dir) {
                (Some(step), None) if self.is_step(step) => {}
                (Some(step), None) => return Err(invalid(format!("image {name:?}: no step {step:?}"))),
                (None, Some(_)) if image.path.is_none() => {}
                _ => {
                    return Err(invalid(format!(
                        "image {name:?}: give exactly one of from (with path) and dir"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether `name` is the kernel's step.
    pub fn is_kernel(&self, name: &str) -> bool {
        self.kernel.is_some() && name == KERNEL
    }

    /// Whether `name` is the Talos assembly's step.
    pub fn is_talos(&self, name: &str) -> bool {
        self.talos.is_some() && name == TALOS
    }

    /// Whether `name` is a step: the kernel's, a module's, an extension's, the Talos assembly's
    /// or a script's.
    pub fn is_step(&self, name: &str) -> bool {
        self.is_kernel(name)
            || self.is_talos(name)
            || self.modules.contains_key(name)
            || self.extensions.contains_key(name)
            || self.steps.contains_key(name)
    }

    /// Checks a `NAME` or `NAME/PATH` reference to a source or step.
    fn check_reference(&self, reference: &str) -> std::result::Result<(), String> {
        let (name, path) = split_reference(reference);
        if !self.sources.contains_key(name) && !self.is_step(name) {
            return Err(format!("{name:?} is neither a source nor a step"));
        }
        if path.is_some_and(|p| p.is_empty() || p.split('/').any(|c| c.is_empty() || c == "." || c == "..")) {
            return Err(format!("{reference:?}: the path after the name must be relative and plain"));
        }
        Ok(())
    }

    /// The inputs of a step: the sources and steps it reads.
    pub fn inputs(&self, name: &str) -> Vec<String> {
        if self.is_kernel(name) {
            let Some(kernel) = &self.kernel else { return Vec::new() };
            let base = kernel.base_source.as_deref().map(|reference| split_reference(reference).0.to_owned());
            std::iter::once(kernel.source.clone()).chain(base).collect()
        } else if let (Some(module), Some(kernel)) = (self.modules.get(name), &self.kernel) {
            vec![kernel.source.clone(), KERNEL.to_owned(), module.source.clone()]
        } else if let Some(extension) = self.extensions.get(name) {
            let mut inputs: Vec<String> =
                extension.rootfs.iter().map(|r| split_reference(r).0.to_owned()).collect();
            // Modules are checked against the kernel.
            inputs.extend(self.kernel.iter().map(|_| KERNEL.to_owned()));
            dedup_in_order(inputs)
        } else if let (true, Some(talos)) = (self.is_talos(name), &self.talos) {
            let mut inputs = vec![KERNEL.to_owned()];
            for reference in [&talos.initramfs, &talos.stub, &talos.systemd_boot] {
                inputs.push(split_reference(reference).0.to_owned());
            }
            inputs.extend(talos.extensions.iter().cloned());
            dedup_in_order(inputs)
        } else {
            self.steps.get(name).map(|step| step.inputs.clone()).unwrap_or_default()
        }
    }

    /// Steps in an order where every step comes after its inputs (by name among equals); the
    /// kernel's step, which reads only a source, comes first.
    pub fn order(&self) -> std::result::Result<Vec<String>, String> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut order = Vec::new();
        if self.kernel.is_some() {
            done.insert(KERNEL);
            order.push(KERNEL.to_owned());
        }
        let names: BTreeSet<&str> = self
            .modules
            .keys()
            .chain(self.steps.keys())
            .chain(self.extensions.keys())
            .map(String::as_str)
            .chain(self.talos.iter().map(|_| TALOS))
            .collect();
        let total = order.len() + names.len();
        while order.len() < total {
            let ready = names.iter().find(|name| {
                !done.contains(*name)
                    && self
                        .inputs(name)
                        .iter()
                        .all(|i| self.sources.contains_key(i) || done.contains(i.as_str()))
            });
            let Some(name) = ready else {
                let stuck: Vec<&str> = names.iter().copied().filter(|s| !done.contains(s)).collect();
                return Err(format!("steps depend on each other in a cycle: {}", stuck.join(", ")));
            };
            done.insert(name);
            order.push((*name).to_owned());
        }
        Ok(order)
    }

    /// A source's file path, for a `path` source.
    pub fn source_path(&self, source: &Source) -> Option<PathBuf> {
        source.path.as_ref().map(|p| self.dir.join(p))
    }
}

/// Splits `NAME/PATH` into the source or step's name and the path inside it.
pub fn split_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('/') {
        Some((name, path)) => (name, Some(path)),
        None => (reference, None),
    }
}

fn dedup_in_order(names: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names.into_iter().filter(|name| seen.insert(name.clone())).collect()
}

/// A package's file: an absolute path (where the package installs it), pinned only by the lock.
fn check_package(
    name: &str,
    package: &str,
    source: &Source,
    pinned: bool,
) -> std::result::Result<(), String> {
    // Debian policy 5.6.1: lowercase letters, digits, `+ - .`, at least two characters,
    // starting with a letter or digit.
    let valid = package.len() >= 2
        && package.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && package.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !valid {
        return Err(format!("package {package:?} is not a Debian package name"));
    }
    if !source.path.as_ref().is_some_and(|path| path.is_absolute()) {
        return Err(format!(
            "package = {package:?} names where a file comes from: give its absolute path = \"…\" as the package installs it"
        ));
    }
    if pinned {
        return Err(format!(
            "a file of package {package} is pinned by kiln.lock, with the package's version, not in \
             the recipe: drop sha256/sha512 and run `kiln lock --update {name}`"
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if ok { Ok(()) } else { Err("names use a-z, 0-9, '-', '_' and '.', not first") }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::Recipe;

    const SOURCES: &str = "[sources.linux]\nurl = \"https://example.org/linux.tar.xz\"\nsha256 = \"\
        0000000000000000000000000000000000000000000000000000000000000000\"\nunpack = true\n\
        [sources.base]\nurl = \"https://example.org/config-amd64\"\nsha256 = \"\
        1111111111111111111111111111111111111111111111111111111111111111\"\n";

    fn parse(kernel: &str) -> Result<Recipe, String> {
        let text = format!("[recipe]\nname = \"r\"\n{SOURCES}[kernel]\nsource = \"linux\"\n{kernel}");
        Recipe::parse(Path::new("/nonexistent"), Path::new("/nonexistent/kiln.toml"), &text)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn kubelet_settings_are_ones_the_kubelet_starts_with() {
        let parse = |kubelet: &str| {
            let text = format!("[recipe]\nname = \"r\"\n[machine-config.kubelet]\n{kubelet}");
            Recipe::parse(Path::new("/nonexistent"), Path::new("/nonexistent/kiln.toml"), &text)
                .map_err(|error| error.to_string())
        };
        let recipe =
            parse("cpu-manager-policy = \"static\"\nreserved-system-cpus = \"0-1,64-65\"\n").unwrap();
        assert_eq!(
            recipe.machine_config.kubelet.extra_config(),
            [("cpuManagerPolicy", "static"), ("reservedSystemCPUs", "0-1,64-65")]
        );
        for (kubelet, reason) in [
            ("cpu-manager-policy = \"static\"\n", "needs reserved-system-cpus"),
            ("cpu-manager-policy = \"pinned\"\n", "none or static"),
            ("topology-manager-policy = \"numa\"\n", "single-numa-node"),
            ("topology-manager-scope = \"node\"\n", "container or pod"),
            ("reserved-system-cpus = \"1-0\"\n", "not a CPU list"),
            ("reserved-system-cpus = \"0;1\"\n", "not a CPU list"),
            ("reserved-system-cpus = \"\"\n", "not a CPU list"),
            ("reserved-cpus = \"0\"\n", "unknown field"),
        ] {
            let error = parse(kubelet).unwrap_err();
            assert!(error.contains(reason), "{kubelet:?}: {error}");
        }
    }

    #[test]
    fn a_kernel_base_is_one_target_file_or_source() {
        let recipe = parse("base-source = \"base\"\n").unwrap();
        assert_eq!(recipe.inputs(super::KERNEL), ["linux", "base"]);
        let recipe = parse("base-source = \"base/config\"\n").unwrap();
        assert_eq!(recipe.inputs(super::KERNEL), ["linux", "base"]);
        for (kernel, reason) in [
            ("base-source = \"missing\"\n", "base-source \"missing\" names no source"),
            ("base-source = \"linux/arch/x86/configs/x86_64_defconfig\"\n", "is in the kernel's own source"),
            ("base-source = \"base\"\nbase-target = \"tinyconfig\"\n", "exactly one of base-target"),
            ("", "exactly one of base-target, base-config and base-source"),
        ] {
            let error = parse(kernel).unwrap_err();
            assert!(error.contains(reason), "{kernel:?}: {error}");
        }
    }
}
