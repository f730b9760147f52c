//! OCI distribution client: push and pull images and indexes over HTTP.
//!
//! Owns: the distribution API (blob `HEAD`, `POST`/`PUT` uploads with a chunked `PATCH`
//! fallback, cross-repository mounts, manifest `PUT` with the exact stored bytes), authentication (anonymous, basic, bearer token
//! challenges, Docker `config.json` with credential helpers, podman `auth.json`), retries and
//! backoff.
//!
//! Brief overview:
//! - [`client::Client`]: one registry; authentication on demand, retries.
//! - [`push::push`]: a layout's images and indexes; blobs first, tags last.
//! - [`pull::pull`] and [`pull::Remote`]: images into a layout; documents for `inspect`.
//! - [`referrers`]: artifacts about an image, listed by the registry's referrers API or, where
//!   it has none, by the referrers tag kiln keeps up to date.
//! - [`reference::ImageRef`]: `REGISTRY/REPOSITORY`, optional `:TAG` and `@DIGEST`.
//!
//! Nothing a registry or a layout says is trusted: credentials go only to the registry's own
//! origin or an HTTPS token realm (plain HTTP only on the registry's own host, for a registry
//! reached over plain HTTP) and never across a redirect ([`client`]); documents are read within
//! [`kiln_layers::oci::limits`]; names become URLs only when the distribution grammar accepts
//! them; a push checks every blob before its first request ([`push`]).
//!
//! Must not: change a manifest's bytes (it pushes what `layers` wrote), log or print
//! credentials, send them anywhere the rule above does not allow, or print anything (progress
//! goes through [`push::Reporter`]).

pub mod auth;
pub mod client;
mod error;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;

pub use error::{Error, Result};
