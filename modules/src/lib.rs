//! Linux kernel modules: reading, indexing and signing `.ko` files.
//!
//! Owns: ELF reading of modules (`.modinfo`, vermagic, `__versions` CRCs, exported and needed
//! symbols); `depmod` output (text and the binary indexes kmod reads); module signatures
//! (PKCS#7 appended signatures byte-identical to the kernel's `sign-file`, verification, and
//! signing keys); compatibility checks of a module against a kernel.
//!
//! Must not: load modules, read `/lib/modules` or `/proc` of the running system (it takes a
//! base directory), or print.

pub mod signing;
