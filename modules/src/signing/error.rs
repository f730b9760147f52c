//! Errors of signing, verifying and key generation. Each names the file it is about.

use std::io;
use std::path::PathBuf;

use super::appended::SignatureFormatError;

/// Everything that can go wrong while loading keys, signing modules or generating a key.
///
/// A module whose signature does not verify is not an error but a [`Reason`](super::Reason).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading an input file failed.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing an output file failed.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A private key file that holds no usable RSA private key.
    #[error("{}: {problem}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate file that holds no usable X.509 certificate with an RSA public key.
    #[error("{}: {problem}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The private key is not the one whose public half the certificate holds.
    #[error("the key in {} does not belong to the certificate in {}", key.display(), certificate.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        certificate: PathBuf,
    },
    /// A module whose appended signature is malformed.
    #[error("{}: malformed module signature", path.display())]
    Module {
        /// The module.
        path: PathBuf,
        /// What is malformed.
        #[source]
        source: SignatureFormatError,
    },
    /// A file to sign that is not an ELF module, e.g. a compressed one.
    #[error("{} is not an ELF module{}", path.display(), compression.map(|c| format!(" but {c}-compressed")).unwrap_or_default())]
    NotElf {
        /// The file.
        path: PathBuf,
        /// The compression its magic number shows (`xz`, `zstd`, `gzip`), if any.
        compression: Option<&'static str>,
    },
    /// A module that already carries a signature which is not a valid one by this key and hash.
    #[error("{} is already signed ({existing}); not signing it again", path.display())]
    AlreadySigned {
        /// The module.
        path: PathBuf,
        /// The existing signature: its signer and why it is not kept.
        existing: String,
    },
    /// The RSA operation failed (a key too small for the digest).
    #[error("{}: cannot sign: {problem}", path.display())]
    Sign {
        /// The key file.
        path: PathBuf,
        /// The library's reason.
        problem: String,
    },
    /// A seed file unfit to derive a key from.
    #[error("{}: {problem}", path.display())]
    Seed {
        /// The seed file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A certificate subject that is not an RFC 4514 distinguished name.
    #[error("invalid subject {subject:?}: {problem}")]
    Subject {
        /// The subject as given.
        subject: String,
        /// What is wrong with it.
        problem: String,
    },
    /// An RSA key size kiln does not generate.
    #[error("cannot generate a {bits}-bit RSA key: choose 2048 to 4096 bits, a multiple of 8")]
    Bits {
        /// The requested size.
        bits: usize,
    },
    /// Key generation or certificate encoding failed.
    #[error("cannot generate the key: {problem}")]
    Generate {
        /// The library's reason.
        problem: String,
    },
}

impl Error {
    /// Whether the user's input (a key, certificate, module, seed or option) is at fault, rather
    /// than the environment (writing outputs).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Error::Write { .. } | Error::Generate { .. })
    }

    /// A suggestion for the user, where there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::AlreadySigned { .. } => Some(
                "to strip the existing signature and sign the module's contents as they are, pass --replace"
                    .into(),
            ),
            Error::NotElf { compression: Some(_), .. } => {
                Some("sign modules before compressing them; the kernel checks the decompressed bytes".into())
            }
            Error::KeyMismatch { .. } => {
                Some("pass the certificate made with this key (--cert), or the PEM holding both".into())
            }
            Error::Read { source, .. } | Error::Write { source, .. }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                Some("check the permissions of that path for the user running kiln".into())
            }
            _ => None,
        }
    }
}
