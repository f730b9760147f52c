//! The appended signature: finding it, checking its header the way the kernel's
//! `mod_check_sig` and kmod do, and its details as `modinfo` prints them.

use super::pkcs7::{self, SignerId};

/// The marker that ends every signed module.
pub const MARKER: &[u8] = b"~Module signature appended~\n";

/// Size of `struct module_signature`.
pub const HEADER_LEN: usize = 12;

/// `PKEY_ID_PKCS7`, the only signature type the kernel accepts since 4.x.
const PKEY_ID_PKCS7: u8 = 2;

/// A module split at its appended signature.
#[derive(Debug, Clone, Copy)]
pub struct Appended<'a> {
    /// The bytes the signature covers: the module as it was before signing.
    pub unsigned: &'a [u8],
    /// The PKCS#7 `SignedData` in DER.
    pub pkcs7: &'a [u8],
}

/// Why an appended signature cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFormatError {
    /// The marker is there but the file is too short to hold the header before it.
    #[error("the file ends with the signature marker but has no room for the signature header")]
    NoHeader,
    /// `id_type` is not PKCS#7.
    #[error("signature type {0} is not PKCS#7 (2)")]
    NotPkcs7(u8),
    /// A header field the kernel requires to be zero is not.
    #[error("signature header field {field} is {value}, not 0")]
    NonZeroField {
        /// `algo`, `hash`, `signer_len`, `key_id_len` or `pad`.
        field: &'static str,
        /// Its value.
        value: u8,
    },
    /// `sig_len` is zero or runs past the start of the file.
    #[error("signature length {sig_len} does not fit in the {available} bytes before the header")]
    Length {
        /// The header's `sig_len`.
        sig_len: u32,
        /// Bytes before the header.
        available: usize,
    },
    /// The signature bytes are not a PKCS#7 `SignedData` as modules carry it.
    #[error("the PKCS#7 signature is invalid: {0}")]
    Pkcs7(String),
}

/// Splits a module into its unsigned bytes and appended signature; `None` when it carries no
/// signature marker.
pub fn split(module: &[u8]) -> Result<Option<Appended<'_>>, SignatureFormatError> {
    let Some(rest) = module.strip_suffix(MARKER) else {
        return Ok(None);
    };
    let Some(header_start) = rest.len().checked_sub(HEADER_LEN) else {
        return Err(SignatureFormatError::NoHeader);
    };
    let header = &rest[header_start..];
    let [algo, hash, id_type, signer_len, key_id_len, pad0, pad1, pad2, l0, l1, l2, l3] = *header else {
        return Err(SignatureFormatError::NoHeader);
    };
    if id_type != PKEY_ID_PKCS7 {
        return Err(SignatureFormatError::NotPkcs7(id_type));
    }
    let fields = [
        ("algo", algo),
        ("hash", hash),
        ("signer_len", signer_len),
        ("key_id_len", key_id_len),
        ("pad", pad0 | pad1 | pad2),
    ];
    if let Some((field, value)) = fields.into_iter().find(|(_, value)| *value != 0) {
        return Err(SignatureFormatError::NonZeroField { field, value });
    }
    let sig_len = u32::from_be_bytes([l0, l1, l2, l3]);
    let available = header_start;
    let start = usize::try_from(sig_len)
        .ok()
        .filter(|&len| len > 0)
        .and_then(|len| available.checked_sub(len))
        .ok_or(SignatureFormatError::Length { sig_len, available })?;
    Ok(Some(Appended { unsigned: &rest[..start], pkcs7: &rest[start..header_start] }))
}

/// The bytes appended to a module to sign it: the DER, the header and the marker.
pub(crate) fn appendix(pkcs7: &[u8]) -> Vec<u8> {
    let sig_len = u32::try_from(pkcs7.len()).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(pkcs7.len() + HEADER_LEN + MARKER.len());
    bytes.extend_from_slice(pkcs7);
    bytes.extend_from_slice(&[0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&sig_len.to_be_bytes());
    bytes.extend_from_slice(MARKER);
    bytes
}

/// A module signature's details, the fields `modinfo` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    /// `signer`: the common name of the signing certificate's issuer (empty when the signer is
    /// identified by key identifier, or the issuer has no common name).
    pub signer: String,
    /// `sig_key`: the signing certificate's serial number (without DER's sign padding), or the
    /// subject key identifier when the signer is identified by it.
    pub key_id: Vec<u8>,
    /// `sig_hashalgo`: the digest algorithm's name (`sha512`), or its dotted OID when kiln does
    /// not know it.
    pub hash_algorithm: String,
    /// `signature`: the signature value (for RSA, the PKCS#1 v1.5 signature).
    pub signature: Vec<u8>,
}

impl SignatureInfo {
    /// `sig_id` of every signature the kernel accepts.
    pub const SIG_ID: &'static str = "PKCS#7";

    /// The `modinfo` fields in its order and formatting: `sig_id`, `signer`, `sig_key` (hex bytes
    /// joined by colons), `sig_hashalgo`, and `signature` (the same hex, 20 bytes to a line,
    /// continuation lines indented by two tabs).
    pub fn modinfo_fields(&self) -> [(&'static str, String); 5] {
        [
            ("sig_id", Self::SIG_ID.to_owned()),
            ("signer", self.signer.clone()),
            ("sig_key", colon_hex(&self.key_id)),
            ("sig_hashalgo", self.hash_algorithm.clone()),
            ("signature", wrapped_colon_hex(&self.signature)),
        ]
    }
}

/// Reads a module's signature details; `None` when it is not signed.
pub fn read_signature(module: &[u8]) -> Result<Option<SignatureInfo>, SignatureFormatError> {
    let Some(appended) = split(module)? else {
        return Ok(None);
    };
    let parsed = pkcs7::decode(appended.pkcs7)?;
    let (signer, key_id) = match &parsed.signer {
        SignerId::IssuerSerial { issuer_cn, serial, .. } => (issuer_cn.clone(), serial.clone()),
        SignerId::KeyId(key_id) => (String::new(), key_id.clone()),
    };
    Ok(Some(SignatureInfo {
        signer,
        key_id,
        hash_algorithm: pkcs7::digest_name(&parsed.digest_algorithm),
        signature: parsed.signature,
    }))
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn wrapped_colon_hex(bytes: &[u8]) -> String {
    bytes.chunks(20).map(colon_hex).collect::<Vec<_>>().join(":\n\t\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(pkcs7: &[u8]) -> Vec<u8> {
        let mut module = b"\x7fELF module body".to_vec();
        module.extend(appendix(pkcs7));
        module
    }

    #[test]
    fn appendix_round_trips() {
        let module = signed(b"DER");
        let appended = split(&module).unwrap().unwrap();
        assert_eq!(appended.unsigned, b"\x7fELF module body");
        assert_eq!(appended.pkcs7, b"DER");
    }

    #[test]
    fn unsigned_modules_have_no_signature() {
        assert!(split(b"\x7fELF plain").unwrap().is_none());
        assert!(read_signature(b"").unwrap().is_none());
    }

    #[test]
    fn header_is_checked_like_the_kernel() {
        let mut module = signed(b"DER");
        let header = module.len() - MARKER.len() - HEADER_LEN;
        module[header + 2] = 1;
        assert_eq!(split(&module).unwrap_err(), SignatureFormatError::NotPkcs7(1));
        module[header + 2] = PKEY_ID_PKCS7;
        module[header + 4] = 3;
        assert!(matches!(
            split(&module),
            Err(SignatureFormatError::NonZeroField { field: "key_id_len", .. })
        ));
        module[header + 4] = 0;
        module[header + 11] = 200;
        assert!(matches!(split(&module), Err(SignatureFormatError::Length { sig_len: 200, .. })));
        assert_eq!(split(MARKER).unwrap_err(), SignatureFormatError::NoHeader);
    }

    #[test]
    fn hex_is_formatted_like_modinfo() {
        assert_eq!(colon_hex(&[0x0a, 0xff]), "0A:FF");
        let long: Vec<u8> = (0..41).collect();
        let text = wrapped_colon_hex(&long);
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("12:13:"));
        assert!(lines[1].starts_with("\t\t14:"));
        assert_eq!(lines[2], "\t\t28");
    }
}
