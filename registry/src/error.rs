//! Errors of the registry client. None of them ever contains a credential.

use std::path::PathBuf;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An image reference that cannot be parsed.
    #[error("invalid image reference {value:?}: {reason}")]
    InvalidReference {
        /// The text given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The registry could not be reached or the connection failed (after retries).
    #[error("cannot reach {url}")]
    Transport {
        /// The request URL (never with credentials).
        url: String,
        /// The HTTP client's error.
        #[source]
        source: ureq::Error,
    },
    /// The registry answered with an unexpected status (after retries).
    #[error("{method} {url} returned {status}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Request URL.
        url: String,
        /// Status code.
        status: u16,
        /// How long the registry asked to wait (`Retry-After`), if it did.
        retry_after: Option<std::time::Duration>,
        /// The registry's error message, if it sent one.
        detail: Option<String>,
    },
    /// The registry refused the credentials (or needs some).
    #[error("{registry} refused access to {scope}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What was asked for (`repository:x:pull,push`).
        scope: String,
        /// The registry's message.
        detail: Option<String>,
    },
    /// Content did not match its digest.
    #[error("{what} from {url} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// What was fetched.
        what: &'static str,
        /// Where from.
        url: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A response that is not what the distribution specification says.
    #[error("{url}: {reason}")]
    Protocol {
        /// Request URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// What a registry sent could not be stored locally (a full disk, a closed file).
    #[error("cannot store what {url} sent")]
    Store {
        /// Where it came from.
        url: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A credential store could not be read.
    #[error("cannot read credentials from {source_name}: {reason}")]
    Credentials {
        /// The file or helper.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// A local file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A layout's blob ended early while it was being sent: it changed under kiln.
    #[error("blob {digest} ({}) ended at byte {ended_at} while it was being sent; its descriptor says {size} bytes", path.display())]
    BlobChanged {
        /// The blob's file.
        path: PathBuf,
        /// The blob.
        digest: kiln_layers::digest::Digest,
        /// Its descriptor's size.
        size: u64,
        /// Where the file ended.
        ended_at: u64,
    },
    /// The registry asked for credentials at a token server kiln does not send them to.
    #[error("{registry} asks for a token from {realm:?}, where kiln sends no credentials: {reason}")]
    UntrustedRealm {
        /// Registry host.
        registry: String,
        /// The realm of its challenge.
        realm: String,
        /// Why it is refused.
        reason: String,
    },
    /// What the registry serves is beyond kiln's limits (too deep, too large, too many
    /// documents).
    #[error(transparent)]
    Limit(#[from] kiln_layers::oci::limits::LimitError),
    /// Reading or writing a local layout failed.
    #[error(transparent)]
    Layout(#[from] kiln_layers::Error),
}

impl Error {
    /// A suggestion for the user, where there is an obvious next step.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unauthorized { registry, .. } => Some(format!(
                "log in to {registry} (docker login, podman login, or a credential helper in ~/.docker/config.json)"
            )),
            Error::Transport { source: ureq::Error::RequireHttpsOnly(_), .. } => Some(
                "the registry sent kiln to a plain-HTTP URL; kiln follows only HTTPS unless the registry is \
                 reached with --insecure-http"
                    .into(),
            ),
            Error::UntrustedRealm { .. } => Some(
                "kiln sends credentials only to the registry itself or to an HTTPS token server; a plain-HTTP \
                 token server is used only on the registry's own host, for a registry reached with \
                 --insecure-http"
                    .into(),
            ),
            Error::Transport { url, .. } if url.starts_with("https://") => Some(
                "if the registry serves plain HTTP, pass --insecure-http; for a private CA, --ca-cert FILE"
                    .into(),
            ),
            Error::Status { status: 413, .. } => Some(
                "a proxy in front of the registry limits request bodies more than the registry's \
                 OCI-Chunk-Min-Length allows; raise the proxy's limit"
                    .into(),
            ),
            Error::InvalidReference { .. } => {
                Some("use REGISTRY/REPOSITORY[:TAG|@DIGEST], e.g. ghcr.io/org/kernel:v1".into())
            }
            Error::BlobChanged { .. } => {
                Some("something is writing to the layout; push a layout nothing else writes to".into())
            }
            Error::Layout(error) => error.hint(),
            _ => None,
        }
    }

    /// How long the registry asked to wait before trying again, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the error is about the user's input rather than the network or the registry.
    pub fn is_input_error(&self) -> bool {
        match self {
            Error::InvalidReference { .. } | Error::BlobChanged { .. } => true,
            Error::Layout(error) => error.is_input_error(),
            _ => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
