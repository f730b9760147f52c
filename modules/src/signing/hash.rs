//! The digest algorithms modules are signed with.

use std::fmt;
use std::str::FromStr;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_SHA_256, ID_SHA_384, ID_SHA_512};
use rsa::Pkcs1v15Sign;
use sha2::{Digest, Sha256, Sha384, Sha512};

/// A digest algorithm for module signatures (`CONFIG_MODULE_SIG_HASH`).
///
/// The kernel also knows SHA-1 and SHA-3; kiln signs with the SHA-2 family only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512, the kernel's default.
    #[default]
    Sha512,
}

impl HashAlgorithm {
    /// Every algorithm, in the order the kernel's Kconfig lists them.
    pub const ALL: [HashAlgorithm; 3] = [HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512];

    /// The name `sign-file` takes and `modinfo` prints (`sha512`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    pub(crate) fn oid(self) -> ObjectIdentifier {
        match self {
            HashAlgorithm::Sha256 => ID_SHA_256,
            HashAlgorithm::Sha384 => ID_SHA_384,
            HashAlgorithm::Sha512 => ID_SHA_512,
        }
    }

    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        Self::ALL.into_iter().find(|hash| hash.oid() == *oid)
    }

    pub(crate) fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha256 => Sha256::digest(data).to_vec(),
            HashAlgorithm::Sha384 => Sha384::digest(data).to_vec(),
            HashAlgorithm::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// The RSA PKCS#1 v1.5 scheme over this digest (its `DigestInfo` prefix).
    pub(crate) fn pkcs1v15(self) -> Pkcs1v15Sign {
        match self {
            HashAlgorithm::Sha256 => Pkcs1v15Sign::new::<Sha256>(),
            HashAlgorithm::Sha384 => Pkcs1v15Sign::new::<Sha384>(),
            HashAlgorithm::Sha512 => Pkcs1v15Sign::new::<Sha512>(),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest name kiln does not sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported hash algorithm {0:?} (expected sha256, sha384 or sha512)")]
pub struct UnknownHash(pub String);

impl FromStr for HashAlgorithm {
    type Err = UnknownHash;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|hash| hash.name() == name).ok_or_else(|| UnknownHash(name.to_owned()))
    }
}
