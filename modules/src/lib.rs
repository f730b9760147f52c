//! Linux kernel modules: reading, indexing and signing `.ko` files.
//!
//! Owns: ELF reading of modules (`.modinfo`, vermagic, `__versions` CRCs, exported and needed
//! symbols); `depmod` output (text and the binary indexes kmod reads); module signatures
//! (PKCS#7 appended signatures byte-identical to the kernel's `sign-file`, verification, and
//! signing keys); compatibility checks of a module against a kernel.
//!
//! Must not: load modules, read `/lib/modules` or `/proc` of the running system (it takes a
//! base directory), or print.
//!
//! Brief overview: [`Module::read`] reads one file (compressed or not, signed or not);
//! [`depmod::depmod`] indexes a tree as kmod 30's `depmod -b` does; [`check`] compares modules
//! with a kernel. Nothing here panics on malformed input: every failure is an [`Error`] naming
//! the file.

pub mod check;
pub mod depmod;
mod elf;
mod error;
pub mod index;
mod kmodhash;
pub mod module;
pub mod signing;
pub mod symvers;
pub mod vermagic;
mod xz;

pub use error::{Error, Result};
pub use module::Module;
