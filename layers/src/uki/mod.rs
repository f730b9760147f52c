//! Unified Kernel Images: systemd-stub with the kernel, initrd, command line and friends
//! appended as PE sections, assembled natively (no objcopy, no ukify).
//!
//! This module owns the bytes of a UKI. [`assemble`] follows the layout of Talos's
//! `AssembleNative`:
//! - the stub's 0x40-byte DOS header with `e_lfanew = 0x80`, zeros, then `PE\0\0`;
//! - the COFF file header with the new section count and `TimeDateStamp` = the timestamp given;
//! - the PE32+ optional header as in the stub, except linker version and checksum 0 and
//!   `SizeOfCode`, `SizeOfInitializedData`, `SizeOfImage` and `SizeOfHeaders` recomputed;
//!   the two sizes are sums of section `VirtualSize`s, as the stub's own linker computes them,
//!   so a stub assembled with no sections keeps its values;
//! - the stub's sections, unchanged but for their `PointerToRawData`, then the new ones in the
//!   order given, starting at the first `SectionAlignment` boundary after the stub's image,
//!   each with `VirtualSize` = its length, `SizeOfRawData` = the length rounded up to
//!   `FileAlignment` and characteristics `CNT_INITIALIZED_DATA | MEM_READ`;
//! - raw data contiguous after the headers, zero padded. Every `PointerToRawData` is
//!   recomputed, so the layout stays valid when the new headers outgrow the stub's.
//!
//! The stub must be an unsigned PE32+ x86-64 EFI application without COFF symbols, line
//! numbers or relocations by file offset, and without a debug directory (its entries hold file
//! offsets that moving sections would break); a certificate table means the stub is signed,
//! and a signed stub cannot be extended.
//!
//! What systemd-stub 254 needs from the result: it finds its sections by name through the
//! section table of the image as loaded in memory, so only the names matter, not their order
//! or file layout; names are at most 8 bytes because the stub does not read the COFF string
//! table. Every section starts on a `SectionAlignment` boundary (4096 bytes for the Debian
//! stub), which keeps `.linux` page aligned. No `.sbat` needs to be added: the stub carries
//! its own, and only Secure Boot with shim looks at it.
//!
//! [`sections`], [`section`] and [`kernel_release`] read images back: the section table, one
//! section's bytes, and the release string of an x86 bzImage for `.uname`; [`stub_version`]
//! tells which systemd-stub a stub is, and so whether it reads `.profile` sections.

mod assemble;
mod bzimage;
mod pe;
mod stub;

pub use assemble::assemble;
pub use bzimage::kernel_release;
pub use pe::{SectionInfo, section, sections};
pub use stub::{PROFILES_SINCE, StubVersion, stub_version};

/// A section to append to the stub.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// Its name, at most 8 bytes, e.g. `.osrel`.
    pub name: &'a str,
    /// Its contents.
    pub data: &'a [u8],
}

/// Everything that can go wrong while assembling or reading a PE image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The image ends before a structure it announces.
    #[error("PE image truncated: {what} at offset {offset:#x} needs {len} bytes")]
    Truncated {
        /// The structure ("DOS header", "section table", "section .text", …).
        what: String,
        /// Its file offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// Not a PE image at all.
    #[error("not a PE image: {reason}")]
    NotPe {
        /// What was found instead.
        reason: String,
    },
    /// A PE image that cannot serve as a UKI stub.
    #[error("unsupported stub: {reason}")]
    UnsupportedStub {
        /// Why.
        reason: String,
    },
    /// A section name that does not fit the section table.
    #[error("invalid section name {name:?}: {reason}")]
    InvalidSectionName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The image would exceed the 32-bit sizes and addresses of the format.
    #[error("the image is too large: {what} exceeds 4 GiB")]
    TooLarge {
        /// The quantity that overflowed.
        what: &'static str,
    },
}

#[cfg(test)]
mod tests;
