//! Deterministic archives, compression and OCI image layouts.
//!
//! This crate owns the bytes of every image kiln writes: the tar stream of a layer, its
//! compression, the OCI documents that describe it and the layout they are stored in. It
//! follows the policy of [`kiln_reproducible`] and adds none of its own: the same tree and the
//! same policy give the same digests on any machine, for any thread count.
//!
//! Brief overview:
//! - [`walk::Walk`]: a tree in deterministic order, nothing followed.
//! - [`pack::write_layer`] / [`pack::pack`]: tree → tar → diff_id → compression → digest, in one
//!   streaming pass into a layout.
//! - [`compress::Compression`]: gzip (block-parallel, thread-count independent), zstd, none.
//! - [`oci`]: descriptors, manifests, indexes, configs, `NAME:TAG` references,
//!   [`oci::layout`] reading (regular files beneath the layout, no link followed, never past a
//!   descriptor's size) and atomic writing, and [`oci::limits`], the bounds on what kiln reads
//!   of an image (document size, index depth, documents per operation).
//! - [`cpio`]: deterministic newc archives (initramfs) from a tree, and a bounds-checked reader.
//! - [`uki`]: Unified Kernel Images, systemd-stub plus sections, assembled natively.
//! - [`inspect`] and [`diff`]: what a layout holds, and how two differ down to a file entry.
//! - [`talos`]: Talos system extensions: `manifest.yaml`, validation of an extension
//!   directory, service specs, compatibility ranges and `/extensions.yaml`.
//! - [`squashfs::write`]: a tree → a deterministic squashfs 4.0 image (zstd), as Talos system
//!   extensions are shipped.
//!
//! This crate must not read the clock, the host's user database or the network, and never
//! prints; progress goes through [`pack::Reporter`].

pub mod compress;
pub mod cpio;
pub mod diff;
pub mod digest;
mod error;
pub mod inspect;
pub mod oci;
pub mod pack;
pub mod squashfs;
pub mod talos;
mod tar;
pub mod uki;
pub mod walk;

pub use error::{Error, Result};
