//! Referrers: artifacts (SBOMs, provenance) that name an image as their `subject`.
//!
//! After the artifact manifests are put, a registry that implements the referrers API (OCI
//! distribution 1.1) lists them itself: it says so with an `OCI-Subject` header on the manifest
//! `PUT`, or answers `GET /v2/<name>/referrers/<digest>` with 200 and an image index. Otherwise
//! (404: CNCF distribution 2.8, Debian's `docker-registry`) the client keeps the *referrers tag
//! schema* up to date: an image index at the tag `<alg>-<hex>` of the subject's digest listing
//! each artifact's descriptor (with `artifactType` and annotations), merged with what the tag
//! already lists — existing entries are kept in their order, new ones appended.

use kiln_layers::digest::Digest;
use kiln_layers::oci::limits::MAX_DOCUMENT_SIZE;
use kiln_layers::oci::media_type;
use kiln_layers::oci::spec::{self, Descriptor, Index};

use crate::client::{Client, Method, RequestBody, Retry};
use crate::error::{Error, Result};

/// The referrers tag of a subject: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().name(), subject.encoded())
}

/// Whether the registry answers the referrers API for `subject` in `repository`.
pub fn api_supported(client: &Client, repository: &str, subject: &Digest) -> Result<bool> {
    let url = client.url(&format!("{repository}/referrers/{subject}"));
    let response = client.send(
        Method::Get,
        &url,
        &format!("repository:{repository}:pull"),
        &[("Accept", media_type::IMAGE_INDEX.to_owned())],
        &RequestBody::Empty,
        Retry::Yes,
    )?;
    let index = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(media_type::IMAGE_INDEX));
    Ok(response.status().as_u16() == 200 && index)
}

/// Adds `artifacts` to the referrers tag of `subject`; returns the tag, and whether it changed.
pub fn update_fallback_tag(
    client: &Client,
    repository: &str,
    subject: &Digest,
    artifacts: &[Descriptor],
) -> Result<(String, bool)> {
    let tag = fallback_tag(subject);
    let scope = format!("repository:{repository}:pull,push");
    let url = client.url(&format!("{repository}/manifests/{tag}"));
    let mut response = client.send(
        Method::Get,
        &url,
        &scope,
        &[("Accept", media_type::IMAGE_INDEX.to_owned())],
        &RequestBody::Empty,
        Retry::Yes,
    )?;
    let mut index = match response.status().as_u16() {
        404 => Index::new(),
        200 => {
            let bytes = Client::read_limited(
                &url,
                &mut response,
                MAX_DOCUMENT_SIZE,
                "referrers index",
                "the most kiln reads of a document",
            )?;
            serde_json::from_slice::<Index>(&bytes).map_err(|error| Error::Protocol {
                url: url.clone(),
                reason: format!("the referrers tag {tag} is not an image index: {error}"),
            })?
        }
        _ => return Err(Client::unexpected(Method::Get, &url, response)),
    };
    let before = index.manifests.len();
    for artifact in artifacts {
        if !index.manifests.iter().any(|d| d.digest == artifact.digest) {
            index.manifests.push(artifact.clone());
        }
    }
    if index.manifests.len() == before && before > 0 {
        return Ok((tag, false));
    }
    index.media_type = media_type::IMAGE_INDEX.to_owned();
    let bytes = spec::encode("referrers index", &index)?;
    let response = client.send(
        Method::Put,
        &url,
        &scope,
        &[("Content-Type", media_type::IMAGE_INDEX.to_owned())],
        &RequestBody::Bytes(&bytes),
        Retry::Yes,
    )?;
    if response.status().as_u16() != 201 {
        return Err(Client::unexpected(Method::Put, &url, response));
    }
    Ok((tag, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_tag_is_the_digest_with_a_dash() {
        let digest = Digest::sha256_of(b"{}");
        assert_eq!(fallback_tag(&digest), format!("sha256-{}", digest.encoded()));
    }
}
