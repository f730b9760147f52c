//! Signing keys and certificates, read from the files `sign-file` takes: a PEM private key
//! (PKCS#8 or PKCS#1, possibly followed by the certificate, like the kernel's
//! `certs/signing_key.pem`) and a PEM or DER X.509 certificate.

use std::path::{Path, PathBuf};

use const_oid::db::rfc5912::RSA_ENCRYPTION;
use der::Decode;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, PrivateKeyInfo};
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use super::error::Error;
use super::pkcs7;

/// An X.509 certificate with an RSA public key: what a module signature names and is checked
/// against.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub(crate) path: PathBuf,
    pub(crate) issuer: Name,
    pub(crate) serial: SerialNumber,
    pub(crate) public_key: RsaPublicKey,
}

impl Certificate {
    /// Reads a certificate from a PEM (the first `CERTIFICATE` block) or DER file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = read(path)?;
        Self::from_file_bytes(&bytes, path)
    }

    /// Parses a certificate from a file's contents; `path` names it in errors.
    pub fn from_file_bytes(bytes: &[u8], path: &Path) -> Result<Self, Error> {
        let invalid = |problem: String| Error::Certificate { path: path.to_owned(), problem };
        let der = if is_pem(bytes) {
            pem_blocks(bytes)
                .map_err(invalid)?
                .into_iter()
                .find(|(label, _)| label == "CERTIFICATE")
                .map(|(_, der)| der)
                .ok_or_else(|| invalid("holds no PEM CERTIFICATE block".into()))?
        } else {
            bytes.to_vec()
        };
        let certificate = x509_cert::Certificate::from_der(&der)
            .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
        let tbs = certificate.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(invalid(format!(
                "its public key is of type {}; kiln signs and verifies with RSA keys only",
                spki.algorithm.oid
            )));
        }
        let public_key = RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes())
            .map_err(|e| invalid(format!("invalid RSA public key: {e}")))?;
        Ok(Certificate { path: path.to_owned(), issuer: tbs.issuer, serial: tbs.serial_number, public_key })
    }

    /// The file the certificate was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The issuer's common name, which module signatures show as `signer`.
    pub fn issuer_common_name(&self) -> String {
        pkcs7::common_name(&self.issuer)
    }

    /// The serial number's bytes, which module signatures show as `sig_key`.
    pub fn serial(&self) -> Vec<u8> {
        pkcs7::magnitude(self.serial.as_bytes())
    }

    /// Whether a signature naming `issuer` and `serial` names this certificate, as the kernel
    /// finds a module's key: by the whole issuer name and the serial number.
    pub(crate) fn is_named_by(&self, issuer: &Name, serial: &[u8]) -> bool {
        self.issuer == *issuer && self.serial() == serial
    }
}

/// An RSA private key with its certificate, ready to sign many modules.
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub(crate) path: PathBuf,
    pub(crate) key: RsaPrivateKey,
    pub(crate) certificate: Certificate,
}

impl SigningKey {
    /// Reads the private key from `key` and the certificate from `certificate`, or, without
    /// one, from the `CERTIFICATE` block that follows the key in the same PEM file. The key must
    /// be the certificate's.
    pub fn load(key: &Path, certificate: Option<&Path>) -> Result<Self, Error> {
        let bytes = read(key)?;
        let private_key = private_key(&bytes, key)?;
        let certificate = match certificate {
            Some(path) => Certificate::load(path)?,
            None if is_pem(&bytes) => {
                Certificate::from_file_bytes(&bytes, key).map_err(|_| Error::Certificate {
                    path: key.to_owned(),
                    problem: "holds no certificate after the key, and no certificate file was given".into(),
                })?
            }
            None => {
                return Err(Error::Certificate {
                    path: key.to_owned(),
                    problem: "is a DER key, which holds no certificate; a certificate file is needed".into(),
                });
            }
        };
        if RsaPublicKey::from(&private_key) != certificate.public_key {
            return Err(Error::KeyMismatch { key: key.to_owned(), certificate: certificate.path.clone() });
        }
        Ok(SigningKey { path: key.to_owned(), key: private_key, certificate })
    }

    /// The certificate signatures will name.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}

/// Parses the first private key in a PEM file (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE
/// KEY`), or a DER PKCS#8 or PKCS#1 key.
fn private_key(bytes: &[u8], path: &Path) -> Result<RsaPrivateKey, Error> {
    let invalid = |problem: String| Error::Key { path: path.to_owned(), problem };
    if !is_pem(bytes) {
        return pkcs8_key(bytes)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(bytes).map_err(|e| e.to_string()))
            .map_err(|e| {
                invalid(format!("not a PEM file, nor a DER PKCS#8 or PKCS#1 RSA private key: {e}"))
            });
    }
    for (label, der) in pem_blocks(bytes).map_err(invalid)? {
        match label.as_str() {
            "PRIVATE KEY" => return pkcs8_key(&der).map_err(invalid),
            "RSA PRIVATE KEY" => {
                return RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| invalid(format!("invalid PKCS#1 RSA private key: {e}")));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid(
                    "the private key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)".into(),
                ));
            }
            label if label.ends_with("PRIVATE KEY") => {
                return Err(invalid(format!("holds a {label}; kiln signs with RSA keys only")));
            }
            _ => {}
        }
    }
    Err(invalid("holds no PEM PRIVATE KEY or RSA PRIVATE KEY block".into()))
}

fn pkcs8_key(der: &[u8]) -> Result<RsaPrivateKey, String> {
    let info = PrivateKeyInfo::from_der(der).map_err(|e| format!("invalid PKCS#8 private key: {e}"))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(format!(
            "the private key is of type {}; kiln signs with RSA keys only",
            info.algorithm.oid
        ));
    }
    RsaPrivateKey::from_pkcs8_der(der).map_err(|e| format!("invalid RSA private key: {e}"))
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|window| window == b"-----BEGIN ")
}

/// Every `-----BEGIN …-----` … `-----END …-----` block of a PEM file, as label and DER; text
/// between blocks is ignored, as OpenSSL ignores it.
fn pem_blocks(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "a PEM file must be text".to_owned())?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let block = &rest[begin..];
        let end = block.find("-----END ").ok_or("a PEM block has no END line")?;
        let line_end = block[end..].find('\n').map_or(block.len(), |n| end + n + 1);
        let (label, der) = der::pem::decode_vec(&block.as_bytes()[..line_end])
            .map_err(|e| format!("invalid PEM block at byte {}: {e}", text.len() - rest.len() + begin))?;
        blocks.push((label.to_owned(), der));
        rest = &block[line_end..];
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_split_and_labelled() {
        let pem =
            "junk\n-----BEGIN A-----\nAAEC\n-----END A-----\n\n-----BEGIN B C-----\nAw==\n-----END B C-----";
        let blocks = pem_blocks(pem.as_bytes()).unwrap();
        assert_eq!(blocks, vec![("A".to_owned(), vec![0, 1, 2]), ("B C".to_owned(), vec![3])]);
    }

    #[test]
    fn malformed_pem_is_an_error() {
        assert!(pem_blocks(b"-----BEGIN A-----\nAAEC\n").unwrap_err().contains("END"));
        assert!(pem_blocks(b"-----BEGIN A-----\n!!\n-----END A-----\n").is_err());
    }
}
