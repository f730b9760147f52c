//! Recipe model and build orchestration.
//!
//! Owns: the recipe (`kiln.toml`) and lock file (`kiln.lock`) model; sources (path, URL, Debian
//! `.deb`, OCI image) pinned by checksum and the content-addressed cache; the hermetic Linux
//! namespace sandbox every compile step runs in; the build steps (kernel, out-of-tree module,
//! C components, `.deb` unpack) and the step graph with input-keyed caching. It calls
//! `kconfig`, `modules`, `layers`, `registry` and `reproducible` and is the only crate that runs
//! external programs.
//!
//! Brief overview:
//! - [`recipe`] and [`lock`]: `kiln.toml` and `kiln.lock`.
//! - [`build`]: the steps in dependency order, each cached by a key over its inputs, then the
//!   images; [`cache`] is where entries live, [`tree`] the content digest of a tree.
//! - [`remote_cache`]: the step cache shared between machines through an OCI registry
//!   (`--cache-from`, `--cache-to`), every entry verified before use.
//! - [`beneath`]: paths and links resolved beneath a root, never through a link or out of it:
//!   how kiln reads every tree untrusted code made.
//! - [`source`]: fetching into the cache, checked against pins; [`dpkg`]: the host's package
//!   database, which vouches for a source a Debian package installs.
//! - [`extract`]: safe extraction of tar archives (gzip, xz, zstd, bzip2) and `.deb` packages
//!   ([`deb`]).
//! - [`extension`]: Talos system extensions assembled from steps' trees, validated and checked
//!   against the kernel; [`talos`]: the boot assets (initramfs with the extension layers, UKI,
//!   installer tree).
//! - [`rules`]: what Talos enforces when it boots (KSPP arguments and sysctls, the machine
//!   config's sysctls), checked by the Talos step and by [`check`], which finds in seconds
//!   what a build would refuse (schema, pins, the kernel's configuration, Talos's rules).
//! - [`machine_config`]: the Talos machine-config patch for the built installer; [`boot`]: a
//!   built image under QEMU (UEFI for a UKI), its console streamed.
//! - [`verify`]: rebuilds from clean caches in perturbed environments, compared digest by
//!   digest and explained down to the first differing bytes.
//! - [`attest`]: what fed each built image (sources and steps, from the step graph), and its
//!   [`sbom`] (SPDX 2.3 JSON) and [`provenance`] (in-toto Statement v1, SLSA provenance v1)
//!   attached to it in the layout as OCI artifacts and written beside the layout.
//! - [`sandbox`]: the hermetic sandbox ([`sandbox::Spec`], [`sandbox::Isolation`],
//!   [`sandbox::Namespaces`]) and [`sandbox::run_logged`], which streams a step's output to its
//!   log and a callback.
//!
//! Must not: write archive or image bytes itself (that is `layers`), choose timestamps or
//! ownership (that is `reproducible`), print (it reports progress through a trait), or reach the
//! network outside source fetching and the registry client.

pub mod attest;
pub mod beneath;
pub mod boot;
pub mod build;
pub mod cache;
pub mod check;
pub mod deb;
pub mod dpkg;
mod error;
pub mod extension;
pub mod extract;
pub mod kernel;
pub mod lock;
pub mod machine_config;
pub mod module;
mod probes;
pub mod provenance;
pub mod recipe;
pub mod remote_cache;
pub mod rules;
pub mod sandbox;
pub mod sbom;
mod signing;
pub mod source;
pub mod talos;
pub mod tree;
pub mod verify;

pub use error::{Error, Result};
