//! The PKCS#7 (CMS) `SignedData` of a module signature, as `sign-file` makes it: detached
//! content, no certificates, no signed attributes, one signer named by issuer and serial.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519::CN;
use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_224, RSA_ENCRYPTION};
use const_oid::db::rfc6268::{ID_DATA, ID_SIGNED_DATA};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::appended::SignatureFormatError;
use super::hash::HashAlgorithm;

/// Who signed, as the `SignerInfo` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignerId {
    /// By the issuer and serial number of their certificate (what `sign-file` writes).
    IssuerSerial {
        /// The issuer's name.
        issuer: Name,
        /// The issuer's common name.
        issuer_cn: String,
        /// The serial number's magnitude, big-endian, without leading zero bytes.
        serial: Vec<u8>,
    },
    /// By subject key identifier (`sign-file -k`).
    KeyId(Vec<u8>),
}

/// The parts of a module's `SignedData` that identify and verify the signature.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) signer: SignerId,
    pub(crate) digest_algorithm: ObjectIdentifier,
    pub(crate) signature_algorithm: ObjectIdentifier,
    pub(crate) has_signed_attributes: bool,
    pub(crate) signature: Vec<u8>,
}

/// Encodes the `SignedData` for a PKCS#1 v1.5 signature made with the certificate of `issuer`
/// and `serial` over the module's `hash` digest.
pub(crate) fn encode(
    issuer: &Name,
    serial: &SerialNumber,
    hash: HashAlgorithm,
    signature: Vec<u8>,
) -> der::Result<Vec<u8>> {
    let digest_algorithm = AlgorithmIdentifierOwned { oid: hash.oid(), parameters: None };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: issuer.clone(),
            serial_number: serial.clone(),
        }),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: None,
        signature_algorithm: AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(Any::null()) },
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm])?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: ID_DATA, econtent: None },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    ContentInfo { content_type: ID_SIGNED_DATA, content: Any::encode_from(&signed_data)? }.to_der()
}

/// Decodes a module's `SignedData`, taking its first signer as the kernel and kmod do.
pub(crate) fn decode(der: &[u8]) -> Result<Parsed, SignatureFormatError> {
    let invalid = |e: der::Error| SignatureFormatError::Pkcs7(e.to_string());
    let content_info = ContentInfo::from_der(der).map_err(invalid)?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(SignatureFormatError::Pkcs7(format!(
            "content type {} is not signedData",
            content_info.content_type
        )));
    }
    let signed_data: SignedData = content_info.content.decode_as().map_err(invalid)?;
    let signer_info = signed_data
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| SignatureFormatError::Pkcs7("it has no signer".into()))?;
    let signer = match &signer_info.sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => SignerId::IssuerSerial {
            issuer: id.issuer.clone(),
            issuer_cn: common_name(&id.issuer),
            serial: magnitude(id.serial_number.as_bytes()),
        },
        SignerIdentifier::SubjectKeyIdentifier(key_id) => SignerId::KeyId(key_id.0.as_bytes().to_vec()),
    };
    Ok(Parsed {
        signer,
        digest_algorithm: signer_info.digest_alg.oid,
        signature_algorithm: signer_info.signature_algorithm.oid,
        has_signed_attributes: signer_info.signed_attrs.is_some(),
        signature: signer_info.signature.as_bytes().to_vec(),
    })
}

/// The first common name in a distinguished name, as raw text (empty when there is none).
pub(crate) fn common_name(name: &Name) -> String {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|attribute| attribute.oid == CN)
        .map(|attribute| String::from_utf8_lossy(attribute.value.value()).into_owned())
        .unwrap_or_default()
}

/// An unsigned integer's bytes without leading zero bytes (how OpenSSL prints serials).
pub(crate) fn magnitude(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// The name `modinfo` prints for a digest algorithm; the dotted OID for one it has no name for.
pub(crate) fn digest_name(oid: &ObjectIdentifier) -> String {
    if let Some(hash) = HashAlgorithm::from_oid(oid) {
        return hash.name().to_owned();
    }
    match *oid {
        ID_SHA_1 => "sha1".to_owned(),
        ID_SHA_224 => "sha224".to_owned(),
        other => other.to_string(),
    }
}
