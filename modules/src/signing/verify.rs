//! Checking a module's signature against a certificate, as the kernel does when it loads the
//! module: the signer must be the certificate's, and the RSA PKCS#1 v1.5 signature must be the
//! certificate key's signature over the digest of the module's unsigned bytes.

use std::fmt;
use std::path::{Path, PathBuf};

use const_oid::db::rfc5912::{
    RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use rayon::prelude::*;

use super::appended::{self, Appended, SignatureFormatError};
use super::error::Error;
use super::hash::HashAlgorithm;
use super::key::Certificate;
use super::pkcs7::{self, SignerId};

/// Why a module's signature is not a valid one by the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The module carries no signature.
    Unsigned,
    /// The appended signature is malformed or truncated.
    Malformed(SignatureFormatError),
    /// The signature names another certificate.
    OtherSigner {
        /// The issuer common name it names.
        signer: String,
        /// The serial number (or key identifier) it names.
        key_id: Vec<u8>,
    },
    /// A signature kiln cannot check (not RSA, an unknown digest, signed attributes).
    Unsupported(String),
    /// The signature does not match the module's bytes: they changed after signing.
    Mismatch,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unsigned => f.write_str("not signed"),
            Reason::Malformed(error) => write!(f, "malformed signature: {error}"),
            Reason::OtherSigner { signer, key_id } => {
                let key_id: Vec<String> = key_id.iter().map(|b| format!("{b:02X}")).collect();
                write!(f, "signed by another key (signer {signer:?}, sig_key {})", key_id.join(":"))
            }
            Reason::Unsupported(what) => write!(f, "cannot check the signature: {what}"),
            Reason::Mismatch => f.write_str(
                "the signature does not match the contents: the module was modified after signing",
            ),
        }
    }
}

/// Checks module signatures against one certificate.
#[derive(Debug, Clone)]
pub struct Verifier {
    certificate: Certificate,
}

impl Verifier {
    /// A verifier for signatures by `certificate`'s key.
    pub fn new(certificate: Certificate) -> Self {
        Verifier { certificate }
    }

    /// Checks a module's bytes; on success, the digest it was signed with.
    pub fn verify_bytes(&self, module: &[u8]) -> Result<HashAlgorithm, Reason> {
        match appended::split(module) {
            Ok(Some(appended)) => self.check(&appended),
            Ok(None) => Err(Reason::Unsigned),
            Err(error) => Err(Reason::Malformed(error)),
        }
    }

    /// Reads and checks a module file. The outer error is for a file that cannot be read.
    pub fn verify_file(&self, path: &Path) -> Result<Result<HashAlgorithm, Reason>, Error> {
        let module = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        Ok(self.verify_bytes(&module))
    }

    /// [`Verifier::verify_file`] for many modules in parallel; results are in `paths`' order.
    pub fn verify_files(&self, paths: &[PathBuf]) -> Vec<Result<Result<HashAlgorithm, Reason>, Error>> {
        paths.par_iter().map(|path| self.verify_file(path)).collect()
    }

    /// Checks an appended signature against the module bytes it follows.
    pub(crate) fn check(&self, appended: &Appended<'_>) -> Result<HashAlgorithm, Reason> {
        let parsed = pkcs7::decode(appended.pkcs7).map_err(Reason::Malformed)?;
        match &parsed.signer {
            SignerId::IssuerSerial { issuer, issuer_cn, serial } => {
                if !self.certificate.is_named_by(issuer, serial) {
                    return Err(Reason::OtherSigner { signer: issuer_cn.clone(), key_id: serial.clone() });
                }
            }
            SignerId::KeyId(_) => {
                return Err(Reason::Unsupported("the signer is named by key identifier".into()));
            }
        }
        let rsa = [
            RSA_ENCRYPTION,
            SHA_256_WITH_RSA_ENCRYPTION,
            SHA_384_WITH_RSA_ENCRYPTION,
            SHA_512_WITH_RSA_ENCRYPTION,
        ];
        if !rsa.contains(&parsed.signature_algorithm) {
            return Err(Reason::Unsupported(format!(
                "signature algorithm {} is not RSA",
                parsed.signature_algorithm
            )));
        }
        if parsed.has_signed_attributes {
            return Err(Reason::Unsupported("the signature has signed attributes".into()));
        }
        let hash = HashAlgorithm::from_oid(&parsed.digest_algorithm).ok_or_else(|| {
            Reason::Unsupported(format!("digest {}", pkcs7::digest_name(&parsed.digest_algorithm)))
        })?;
        let digest = hash.digest(appended.unsigned);
        self.certificate
            .public_key
            .verify(hash.pkcs1v15(), &digest, &parsed.signature)
            .map_err(|_| Reason::Mismatch)?;
        Ok(hash)
    }
}
