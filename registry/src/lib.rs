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
//! Must not: change a manifest's bytes (it pushes what `layers` wrote), log or print
//! credentials, or print anything (progress goes through [`push::Reporter`]).

pub mod auth;
pub mod client;
mod error;
pub mod pull;
pub mod push;
pub mod reference;
pub mod referrers;

pub use error::{Error, Result};
