//! Linux kernel configuration: the `.config` model and the Kconfig language.
//!
//! Owns: parsing `.config` files and fragments the way the kernel's `conf` reads them
//! ([`dotconfig`]); merging fragments with the semantics and messages of the kernel's
//! `scripts/kconfig/merge_config.sh` ([`merge`]); checking that requested values survived into
//! a final `.config`, with the same textual rule that script applies ([`check`]); and
//! symbol-level differences between two configurations ([`diff`]). Parsing and evaluating the
//! Kconfig tree itself (`olddefconfig`, `explain`) will live here too.
//!
//! Must not: run `make` or build anything (the builder does, in its sandbox), read a running
//! system's `/proc/config.gz` or `/boot`, or print. It takes file contents and returns typed
//! results; errors name the file and line.

pub mod check;
pub mod diff;
pub mod dotconfig;
pub mod merge;
mod text;

pub use dotconfig::{DotConfig, Error, Setting, Warning};
