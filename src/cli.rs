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
    /// Pack a directory tree as a reproducible single-layer OCI image.
    Pack(PackArgs),
    /// Show the images in an OCI image layout: names, digests, layers, sizes.
    Inspect(InspectArgs),
    /// Compare two images or layouts: manifest, config, layers, file entries.
    ///
    /// Exits 0 when identical, 1 when they differ.
    Diff(DiffArgs),
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
    /// OCI image layout directory.
    pub(crate) layout: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
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
