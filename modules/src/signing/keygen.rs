//! A module signing key: an RSA key and a self-signed X.509 certificate with the extensions of
//! the kernel's `certs/default_x509.genkey` (basicConstraints CA:FALSE, critical; keyUsage
//! digitalSignature; subject and authority key identifiers), valid from `SOURCE_DATE_EPOCH` for
//! 36500 days, written as the PEM the kernel's build takes as `CONFIG_MODULE_SIG_KEY`: the
//! PKCS#8 private key followed by the certificate.
//!
//! From a [`Seed`] the key and certificate are deterministic: the same seed and options give
//! the same bytes, so the seed is as secret as the key. The RSA primes come from a ChaCha20
//! stream keyed by the seed's SHA-256, searched by the `rsa` crate pinned in `Cargo.lock`; a
//! different version of that search would derive another key from the same seed.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use const_oid::AssociatedOid;
use const_oid::db::rfc5912::SHA_512_WITH_RSA_ENCRYPTION;
use der::asn1::{BitString, GeneralizedTime, OctetString, UtcTime};
use der::pem::LineEnding;
use der::{Any, Decode, Encode};
use kiln_reproducible::Epoch;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRngCore, OsRng, SeedableRng};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use super::error::Error;
use super::write::write_atomic;

/// kiln's default certificate subject.
pub const DEFAULT_SUBJECT: &str = "CN=kiln module signing key";

/// The default RSA key size, as in the kernel's `certs/default_x509.genkey`.
pub const DEFAULT_BITS: usize = 4096;

/// How long the certificate is valid, as the kernel's build makes it (`-days 36500`).
pub const VALIDITY_DAYS: u64 = 36500;

/// The shortest seed kiln derives a key from.
pub const MIN_SEED_LEN: usize = 32;

/// The secret a deterministic key is derived from.
pub struct Seed([u8; 32]);

impl Seed {
    /// Reads a seed file: any bytes, at least [`MIN_SEED_LEN`] of them (e.g. from
    /// `head -c 32 /dev/urandom`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        if bytes.len() < MIN_SEED_LEN {
            return Err(Error::Seed {
                path: path.to_owned(),
                problem: format!(
                    "{} bytes is too short a seed; use at least {MIN_SEED_LEN} random bytes",
                    bytes.len()
                ),
            });
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// A seed from secret bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"kiln module signing key\0");
        hasher.update(bytes);
        Seed(hasher.finalize().into())
    }
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// What key to generate.
#[derive(Debug)]
pub struct KeygenOptions {
    /// RSA modulus size in bits: 2048 to 4096, a multiple of 8.
    pub bits: usize,
    /// The certificate's subject (and issuer), an RFC 4514 name such as `CN=…,O=…`.
    pub subject: String,
    /// The start of the certificate's validity.
    pub not_before: Epoch,
    /// Derive the key from this seed; `None` for a random key.
    pub seed: Option<Seed>,
}

/// A generated key and certificate.
pub struct Generated {
    /// The PKCS#8 private key then the certificate, both PEM.
    pub pem: der::zeroize::Zeroizing<String>,
    /// The certificate in DER (what the kernel embeds as `certs/signing_key.x509`).
    pub certificate_der: Vec<u8>,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated")
            .field("certificate_der", &self.certificate_der.len())
            .finish_non_exhaustive()
    }
}

impl Generated {
    /// Writes the key PEM to `key` (mode 0600) and, if asked, the DER certificate to
    /// `certificate` (mode 0644), each atomically.
    pub fn write(&self, key: &Path, certificate: Option<&Path>) -> Result<(), Error> {
        write_atomic(key, self.pem.as_bytes(), 0o600)?;
        if let Some(path) = certificate {
            write_atomic(path, &self.certificate_der, 0o644)?;
        }
        Ok(())
    }
}

/// Generates a key and its self-signed certificate.
pub fn generate(options: &KeygenOptions) -> Result<Generated, Error> {
    if !(2048..=4096).contains(&options.bits) || !options.bits.is_multiple_of(8) {
        return Err(Error::Bits { bits: options.bits });
    }
    let subject = Name::from_str(&options.subject)
        .map_err(|e| Error::Subject { subject: options.subject.clone(), problem: e.to_string() })?;
    if subject.0.is_empty() {
        return Err(Error::Subject { subject: options.subject.clone(), problem: "it is empty".into() });
    }
    let generate_error = |problem: String| Error::Generate { problem };
    let key = match &options.seed {
        Some(seed) => new_key(&mut ChaCha20Rng::from_seed(seed.0), options.bits),
        None => new_key(&mut OsRng, options.bits),
    }
    .map_err(generate_error)?;
    let certificate = certificate(&key, subject, options.not_before).map_err(generate_error)?;
    let certificate_der = certificate.to_der().map_err(|e| generate_error(e.to_string()))?;
    let key_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| generate_error(e.to_string()))?;
    let certificate_pem = der::pem::encode_string("CERTIFICATE", LineEnding::LF, &certificate_der)
        .map_err(|e| generate_error(e.to_string()))?;
    let mut pem = der::zeroize::Zeroizing::new(String::with_capacity(key_pem.len() + certificate_pem.len()));
    pem.push_str(&key_pem);
    pem.push_str(&certificate_pem);
    Ok(Generated { pem, certificate_der })
}

fn new_key(rng: &mut impl CryptoRngCore, bits: usize) -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::new(rng, bits).map_err(|e| e.to_string())
}

fn certificate(key: &RsaPrivateKey, subject: Name, not_before: Epoch) -> Result<Certificate, String> {
    let spki_der = key.to_public_key().to_public_key_der().map_err(|e| e.to_string())?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(|e| e.to_string())?;
    let key_id = OctetString::new(Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
        .map_err(|e| e.to_string())?;
    let extensions = vec![
        extension(&BasicConstraints { ca: false, path_len_constraint: None }, true)?,
        extension(&KeyUsage(KeyUsages::DigitalSignature.into()), false)?,
        extension(&SubjectKeyIdentifier(key_id.clone()), false)?,
        extension(
            &AuthorityKeyIdentifier {
                key_identifier: Some(key_id),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?,
    ];
    let signature_algorithm =
        AlgorithmIdentifierOwned { oid: SHA_512_WITH_RSA_ENCRYPTION, parameters: Some(Any::null()) };
    let not_before_secs = not_before.as_secs();
    let tbs_certificate = TbsCertificate {
        version: Version::V3,
        serial_number: serial(spki_der.as_bytes())?,
        signature: signature_algorithm.clone(),
        issuer: subject.clone(),
        validity: Validity {
            not_before: time(not_before_secs)?,
            not_after: time(not_before_secs + VALIDITY_DAYS * 86_400)?,
        },
        subject,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs = tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let signature =
        key.sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(&tbs)).map_err(|e| e.to_string())?;
    Ok(Certificate {
        tbs_certificate,
        signature_algorithm,
        signature: BitString::from_bytes(&signature).map_err(|e| e.to_string())?,
    })
}

fn extension<T: Encode + AssociatedOid>(value: &T, critical: bool) -> Result<Extension, String> {
    let der = value.to_der().map_err(|e| e.to_string())?;
    Ok(Extension { extn_id: T::OID, critical, extn_value: OctetString::new(der).map_err(|e| e.to_string())? })
}

/// A positive 20-byte serial number derived from the public key, so it is as unique as the key
/// and the same for the same seed.
fn serial(spki_der: &[u8]) -> Result<SerialNumber, String> {
    let mut bytes = Sha256::digest(spki_der)[..20].to_vec();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::new(&bytes).map_err(|e| e.to_string())
}

/// UTCTime through 2049, GeneralizedTime after, as RFC 5280 requires.
fn time(seconds: u64) -> Result<Time, String> {
    const YEAR_2050: u64 = 2_524_608_000;
    let duration = Duration::from_secs(seconds);
    let time = if seconds < YEAR_2050 {
        UtcTime::from_unix_duration(duration).map(Time::UtcTime)
    } else {
        GeneralizedTime::from_unix_duration(duration).map(Time::GeneralTime)
    };
    time.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{
        Certificate, HashAlgorithm, Outcome, Reason, SignOptions, Signer, SigningKey, Verifier,
    };

    fn options(seed: Option<Seed>) -> KeygenOptions {
        KeygenOptions { bits: 2048, subject: DEFAULT_SUBJECT.into(), not_before: Epoch::UNIX, seed }
    }

    #[test]
    fn a_seed_gives_the_same_key_and_certificate() {
        let one = generate(&options(Some(Seed::from_bytes(&[1; 32])))).unwrap();
        let again = generate(&options(Some(Seed::from_bytes(&[1; 32])))).unwrap();
        let other = generate(&options(Some(Seed::from_bytes(&[2; 32])))).unwrap();
        assert_eq!(*one.pem, *again.pem);
        assert_eq!(one.certificate_der, again.certificate_der);
        assert_ne!(*one.pem, *other.pem);
        assert!(one.pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(one.pem.ends_with("-----END CERTIFICATE-----\n"));
    }

    #[test]
    fn bad_options_are_refused() {
        for bits in [1024, 2047, 8192] {
            let error = generate(&KeygenOptions { bits, ..options(None) }).unwrap_err();
            assert!(matches!(error, Error::Bits { bits: b } if b == bits));
        }
        for subject in ["", "not a name", "CN"] {
            let error = generate(&KeygenOptions { subject: subject.into(), ..options(None) }).unwrap_err();
            assert!(matches!(error, Error::Subject { .. }), "{subject:?}: {error}");
        }
    }

    #[test]
    fn generated_keys_sign_and_verify_modules() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(&options(Some(Seed::from_bytes(&[3; 32])))).unwrap();
        let pem = dir.path().join("key.pem");
        generated.write(&pem, None).unwrap();
        let key = SigningKey::load(&pem, None).unwrap();
        assert_eq!(key.certificate().issuer_common_name(), "kiln module signing key");
        let module = dir.path().join("m.ko");
        std::fs::write(&module, b"\x7fELF a module").unwrap();
        let signer = Signer::new(key.clone(), SignOptions { hash: HashAlgorithm::Sha384, replace: false });
        assert_eq!(signer.sign_file(&module).unwrap(), Outcome::Signed);
        assert_eq!(signer.sign_file(&module).unwrap(), Outcome::AlreadySigned);
        let signed = std::fs::read(&module).unwrap();
        assert!(signed.starts_with(b"\x7fELF a module"));
        let verifier = Verifier::new(Certificate::load(&pem).unwrap());
        assert_eq!(verifier.verify_bytes(&signed), Ok(HashAlgorithm::Sha384));
        let mut tampered = signed.clone();
        tampered[1] ^= 1;
        assert_eq!(verifier.verify_bytes(&tampered), Err(Reason::Mismatch));
        assert_eq!(verifier.verify_bytes(b"\x7fELF a module"), Err(Reason::Unsigned));
    }
}
