//! Linux kernel configuration: the `.config` model and the Kconfig language.
//!
//! Owns: parsing `.config` files and fragments the way the kernel's `conf` reads them
//! ([`dotconfig`]); merging fragments with the semantics and messages of the kernel's
//! `scripts/kconfig/merge_config.sh` ([`merge`]); checking that requested values survived into
//! a final `.config`, with the same textual rule that script applies ([`check`]); symbol-level
//! differences between two configurations ([`diff`]); and the Kconfig language itself, with the
//! semantics of Linux 6.12's `scripts/kconfig`: a [`Tree`] parsed from a source tree with its
//! macros expanded in an [`Environment`] (whose `$(shell,…)` probes can be recorded and
//! replayed, [`Probes`]), evaluated against a `.config` as `make olddefconfig` does
//! ([`Evaluated`], byte-identical output), and [`Explanation`]s of why a symbol has its value.
//!
//! Must not: run `make` or build anything (the builder does, in its sandbox), read a running
//! system's `/proc/config.gz` or `/boot`, or print. It takes file contents and returns typed
//! results; errors name the file and line.

pub mod check;
pub mod diff;
pub mod dotconfig;
mod environment;
mod error;
mod evaluate;
mod explain;
mod expr;
mod lexer;
mod macros;
pub mod merge;
mod number;
mod olddefconfig;
mod parser;
mod text;
mod tree;

pub use dotconfig::{DotConfig, Error, Setting, Warning};
pub use environment::{Environment, Probes, Runner};
pub use error::LoadError;
pub use explain::{Explanation, Reason};
pub use expr::Tri;
pub use olddefconfig::Evaluated;
pub use tree::{Location, SymbolId, SymbolType, Tree};
