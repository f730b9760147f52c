//! OCI distribution client: push and pull images and indexes over HTTP.
//!
//! Owns: the distribution API (blob HEAD, POST/PUT/PATCH uploads, cross-repository mounts,
//! manifest PUT with the exact stored bytes), authentication (anonymous, basic, bearer token
//! challenges, Docker `config.json` and credential helpers, `auth.json`), retries and backoff.
//!
//! Must not: change a manifest's bytes (it pushes what `layers` wrote), log or print
//! credentials, or print anything (progress goes through a trait).
