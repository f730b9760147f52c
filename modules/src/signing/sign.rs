//! Signing modules with one parsed key, byte-identical to the kernel's `scripts/sign-file`.
//!
//! A module that is already signed is never signed twice (which is what `sign-file` does: it
//! appends a second signature, and the first becomes part of the signed contents). If its
//! signature is a valid one by this key with this digest, the file is left as it is, since
//! signing again would produce the same bytes. Any other signature is an error, unless
//! [`SignOptions::replace`] is set: then the old signature is stripped and the module's
//! contents, as they are, are signed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use rayon::prelude::*;

use super::appended;
use super::error::Error;
use super::hash::HashAlgorithm;
use super::key::SigningKey;
use super::pkcs7;
use super::verify::{Reason, Verifier};
use super::write::write_atomic;

/// How modules are signed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignOptions {
    /// The digest (`CONFIG_MODULE_SIG_HASH`).
    pub hash: HashAlgorithm,
    /// Strip an existing signature that is not this key's and sign again.
    pub replace: bool,
}

/// What signing did to one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The module was unsigned and is now signed.
    Signed,
    /// The module already carried a valid signature by this key with this digest; unchanged.
    AlreadySigned,
    /// Another signature was stripped and the module signed (with [`SignOptions::replace`]).
    Replaced {
        /// The old signature, and why it was not kept.
        previous: String,
    },
}

/// Signs modules with one key.
#[derive(Debug, Clone)]
pub struct Signer {
    key: SigningKey,
    options: SignOptions,
    verifier: Verifier,
}

impl Signer {
    /// A signer with `key`.
    pub fn new(key: SigningKey, options: SignOptions) -> Self {
        let verifier = Verifier::new(key.certificate.clone());
        Signer { key, options, verifier }
    }

    /// The bytes `sign-file` appends to `unsigned` to sign it: the PKCS#7 `SignedData`, the
    /// `struct module_signature` and the marker.
    pub fn appendix(&self, unsigned: &[u8]) -> Result<Vec<u8>, Error> {
        let hash = self.options.hash;
        let digest = hash.digest(unsigned);
        // Blinding with a random factor guards the private key against timing; PKCS#1 v1.5
        // signatures are deterministic, so the bytes do not depend on it.
        let signature = self
            .key
            .key
            .sign_with_rng(&mut OsRng, hash.pkcs1v15(), &digest)
            .map_err(|e| Error::Sign { path: self.key.path.clone(), problem: e.to_string() })?;
        let certificate = &self.key.certificate;
        let der = pkcs7::encode(&certificate.issuer, &certificate.serial, hash, signature)
            .map_err(|e| Error::Sign { path: self.key.path.clone(), problem: e.to_string() })?;
        Ok(appended::appendix(&der))
    }

    /// Signs one module file in place (atomically, keeping its permission bits).
    pub fn sign_file(&self, path: &Path) -> Result<Outcome, Error> {
        let mut module =
            std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        if !module.starts_with(b"\x7fELF") {
            return Err(Error::NotElf { path: path.to_owned(), compression: compression(&module) });
        }
        let existing = appended::split(&module)
            .map_err(|source| Error::Module { path: path.to_owned(), source })?
            .map(|appended| (appended.unsigned.len(), self.existing(&appended)));
        let outcome = match existing {
            None => Outcome::Signed,
            Some((_, Ok(hash))) if hash == self.options.hash => return Ok(Outcome::AlreadySigned),
            Some((_, existing)) if !self.options.replace => {
                return Err(Error::AlreadySigned { path: path.to_owned(), existing: describe(existing) });
            }
            Some((unsigned_len, existing)) => {
                module.truncate(unsigned_len);
                Outcome::Replaced { previous: describe(existing) }
            }
        };
        let appendix = self.appendix(&module)?;
        module.extend_from_slice(&appendix);
        let mode = std::fs::metadata(path)
            .map_err(|source| Error::Read { path: path.to_owned(), source })?
            .permissions()
            .mode();
        write_atomic(path, &module, mode & 0o7777)?;
        Ok(outcome)
    }

    /// [`Signer::sign_file`] for many modules in parallel; results are in `paths`' order.
    pub fn sign_files(&self, paths: &[PathBuf]) -> Vec<Result<Outcome, Error>> {
        paths.par_iter().map(|path| self.sign_file(path)).collect()
    }

    fn existing(&self, appended: &appended::Appended<'_>) -> Result<HashAlgorithm, Reason> {
        self.verifier.check(appended)
    }
}

/// The compression a file's magic number shows.
fn compression(bytes: &[u8]) -> Option<&'static str> {
    [(&b"\xfd7zXZ\x00"[..], "xz"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b", "gzip")]
        .into_iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, name)| name)
}

/// An existing signature in words: by whom, and why it is not kept.
fn describe(existing: Result<HashAlgorithm, Reason>) -> String {
    match existing {
        Ok(hash) => format!("by this key, but with {hash}"),
        Err(reason) => reason.to_string(),
    }
}
