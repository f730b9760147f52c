//! Module signatures as the kernel's `scripts/sign-file` writes them and the kernel and kmod read
//! them.
//!
//! A signed module is the module's bytes, then a detached PKCS#7 (CMS) `SignedData` in DER,
//! then the 12-byte `struct module_signature` (only `id_type` = PKCS#7 and the big-endian
//! length of the DER are set), then the marker `~Module signature appended~\n`.
//!
//! - [`appended`]: splitting a module into its unsigned bytes and its appended signature, and
//!   reading the signature's details as `modinfo` shows them ([`read_signature`]).
//! - [`SigningKey`] and [`Certificate`]: keys and certificates from PEM or DER files.
//! - [`Signer`]: signs modules with one parsed key, byte-identical to `sign-file` for RSA keys
//!   (PKCS#1 v1.5 is deterministic, and the `SignedData` carries no certificates and no signed
//!   attributes, so no signing time).
//! - [`Verifier`]: checks a module's signature against a certificate.
//! - [`keygen`]: an RSA key and self-signed certificate like the kernel's
//!   `certs/default_x509.genkey`, random or derived from a seed.

pub mod appended;
mod error;
mod hash;
mod key;
pub mod keygen;
mod pkcs7;
mod sign;
mod verify;
mod write;

pub use appended::{SignatureFormatError, SignatureInfo, read_signature};
pub use error::Error;
pub use hash::{HashAlgorithm, UnknownHash};
pub use key::{Certificate, SigningKey};
pub use sign::{Outcome, SignOptions, Signer};
pub use verify::{Reason, Verifier};
