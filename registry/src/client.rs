//! The HTTP transport: one registry, authentication on demand, retries.
//!
//! Every request is built afresh for each attempt (a streamed file body is reopened), so a
//! retry after a reset or a 5xx resends everything. On a 401 the challenge is answered — basic
//! credentials, or a bearer token for the request's scope from the token server — and the
//! request is repeated; tokens are cached per scope and fetched again on any later 401, since
//! they expire mid-push. 408, 429, 500, 502, 503, 504 and connection failures are retried with
//! exponential backoff, honouring `Retry-After`.
//!
//! Credentials and tokens go only where the user sent kiln (as docker and containerd decide):
//! - the `Authorization` header is attached only to URLs of the registry's own origin (scheme,
//!   host and port); an upload `Location` on another host, and every redirect, get none;
//! - a challenge is answered only when the registry's own origin sent it (not a host a redirect
//!   led to);
//! - a token realm must be HTTPS, or — only for a registry the user reaches over plain HTTP
//!   (`--insecure-http`) — plain HTTP on the registry's own host; a realm with user
//!   information or another scheme is refused before any request;
//! - nothing follows a redirect to plain HTTP unless plain HTTP was allowed.
//!
//! A streamed file body is opened through [`Layout::open_blob_checked`] (a regular file of the
//! blob's size, no link followed) and must deliver exactly its length: a file that ends early
//! stops the request with an error naming the blob, instead of an upload that never ends.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use kiln_layers::oci::layout::Layout;
use kiln_layers::oci::spec::Descriptor;
use ureq::http::{Response, Uri};
use ureq::{Agent, Body, ResponseExt, SendBody};

use crate::auth::{Challenge, Credentials};
use crate::error::{Error, Result};

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Talk plain HTTP instead of HTTPS (a registry on loopback or a lab network).
    pub insecure_http: bool,
    /// Extra trusted CA certificate (PEM), for a registry with a private CA.
    pub ca_cert: Option<PathBuf>,
    /// Credentials; `None` looks them up for the registry ([`Credentials::lookup`]).
    pub credentials: Option<Credentials>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// How long to wait for a connection (default 30 s).
    pub connect_timeout: Option<Duration>,
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub first_backoff: Duration,
    /// Longest wait between attempts, also the cap for `Retry-After`.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// HTTP methods the distribution API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Patch,
    Post,
    Put,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// Whether [`Client::send`] may repeat a request after a failure (it always may after a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeat on resets, timeouts, 408, 429 and 5xx.
    Yes,
    /// Return the failure: the caller restarts at a higher level (a blob upload whose session
    /// may hold a partial body starts a new session).
    No,
}

/// A request body that can be sent again on a retry.
pub(crate) enum RequestBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a layout's blob from `offset`, streamed; `progress` hears every piece
    /// sent.
    Blob {
        layout: &'a Layout,
        blob: &'a Descriptor,
        offset: u64,
        len: u64,
        progress: &'a (dyn Fn(u64) + Sync),
    },
}

/// A client for one registry.
pub struct Client {
    agent: Agent,
    base: String,
    registry: String,
    /// Where the registry is: the only origin that gets credentials.
    origin: Origin,
    /// Whether the user allowed plain HTTP for this registry.
    insecure_http: bool,
    credentials: Credentials,
    retry: RetryPolicy,
    auth: Mutex<AuthState>,
    /// Held while a token is fetched, so parallel uploads wait for one token instead of each
    /// asking for their own.
    token_fetch: Mutex<()>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
}

impl Client {
    /// A client for `registry` (`host[:port]`).
    pub fn new(registry: &str, options: &ClientOptions) -> Result<Self> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path).map_err(|source| Error::Read { path: path.clone(), source })?;
            let invalid = || Error::Credentials {
                source_name: path.display().to_string(),
                reason: "not a PEM certificate".into(),
            };
            let certificate = ureq::tls::Certificate::from_pem(&pem).map_err(|_| invalid())?;
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&[certificate]));
        }
        let scheme = if options.insecure_http { "http" } else { "https" };
        let base = format!("{scheme}://{registry}");
        let origin = Origin::of(&base).filter(|_| !registry.contains(['/', '?', '#'])).ok_or_else(|| {
            Error::InvalidReference { value: registry.to_owned(), reason: "the registry is not HOST[:PORT]" }
        })?;
        let config = Agent::config_builder()
            .http_status_as_error(false)
            // No redirect to plain HTTP unless plain HTTP was allowed; ureq never carries an
            // Authorization header across a redirect.
            .https_only(!options.insecure_http)
            .timeout_connect(Some(options.connect_timeout.unwrap_or(Duration::from_secs(30))))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .tls_config(tls.build())
            .build();
        let credentials = match &options.credentials {
            Some(credentials) => credentials.clone(),
            None => Credentials::lookup(registry)?,
        };
        Ok(Client {
            agent: Agent::new_with_config(config),
            base,
            registry: registry.to_owned(),
            origin,
            insecure_http: options.insecure_http,
            credentials,
            retry: options.retry,
            auth: Mutex::new(AuthState::default()),
            token_fetch: Mutex::new(()),
        })
    }

    /// The registry host.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `scheme://host/v2/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// An absolute URL for a `Location` header (absolute, host-relative or relative).
    pub(crate) fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            format!("{}/v2/{location}", self.base)
        }
    }

    /// Sends a request with authentication and retries. `scope` is what a bearer token must
    /// grant (`repository:x:pull,push`, space-separated for several). Only a URL of the
    /// registry's own origin gets the `Authorization` header, and only the registry's own
    /// origin's 401 is answered.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        headers: &[(&str, String)],
        body: &RequestBody<'_>,
        retry: Retry,
    ) -> Result<Response<Body>> {
        let attempts = if retry == Retry::Yes { self.retry.attempts } else { 1 };
        let own = self.is_own(url);
        let mut attempt = 0;
        let mut auth_rounds = 0;
        loop {
            attempt += 1;
            let authorization = if own { self.authorization(scope)? } else { None };
            let prepared = Prepared::open(body)?;
            let result = self.dispatch(method, url, headers, authorization.as_deref(), prepared);
            let response = match result {
                Ok(response) => response,
                Err(error) => {
                    if let Some(error) = body_error(body, &error) {
                        return Err(error);
                    }
                    if attempt < attempts && retriable_transport(&error) {
                        std::thread::sleep(self.backoff(attempt, None));
                        continue;
                    }
                    return Err(Error::Transport { url: url.to_owned(), source: error });
                }
            };
            let status = response.status().as_u16();
            // A redirect may have led elsewhere: only the registry's own answer is its own.
            let answered_by_registry =
                own && Origin::of_uri(response.get_uri()).as_ref() == Some(&self.origin);
            if status == 401 && answered_by_registry && auth_rounds < 2 {
                auth_rounds += 1;
                let challenge = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(Challenge::parse);
                if let Some(challenge) = challenge {
                    let mut state = self.lock();
                    state.tokens.remove(scope);
                    state.challenge = Some(challenge);
                    continue;
                }
            }
            if (status == 401 || status == 403) && answered_by_registry {
                return Err(Error::Unauthorized {
                    registry: self.registry.clone(),
                    scope: scope.to_owned(),
                    detail: error_detail(response),
                });
            }
            if status == 401 || status == 403 {
                let answered = response.get_uri().to_string();
                return Err(Error::Status {
                    method: method.name(),
                    url: answered,
                    status,
                    retry_after: None,
                    detail: Some(format!("asked for {url}; kiln sends credentials only to {}", self.base)),
                });
            }
            if retriable_status(status) && attempt < attempts {
                std::thread::sleep(self.backoff(attempt, retry_after(&response)));
                continue;
            }
            return Ok(response);
        }
    }

    /// Whether `url` is on the registry's own origin (scheme, host and port).
    pub(crate) fn is_own(&self, url: &str) -> bool {
        Origin::of(url).as_ref() == Some(&self.origin)
    }

    /// The retry policy.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// How long to wait before attempt `attempt + 1`.
    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self.retry.first_backoff.saturating_mul(1 << (attempt - 1).min(16));
        retry_after.unwrap_or(exponential).min(self.retry.max_backoff)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `Authorization` header for `scope`, answering the last challenge if needed.
    fn authorization(&self, scope: &str) -> Result<Option<String>> {
        let challenge = self.lock().challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credentials.basic_header() {
                Some(header) => Ok(Some(header)),
                None => Err(Error::Unauthorized {
                    registry: self.registry.clone(),
                    scope: scope.to_owned(),
                    detail: Some(
                        "the registry wants a user name and password, and none is configured".into(),
                    ),
                }),
            },
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(token) = self.lock().tokens.get(scope) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let _fetching = self.token_fetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Another request may have fetched it while this one waited.
                if let Some(token) = self.lock().tokens.get(scope) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), scope)?;
                self.lock().tokens.insert(scope.to_owned(), token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Whether kiln may send credentials to the token realm `realm` (see the module docs); the
    /// URL to ask, with `query` appended.
    fn token_url(&self, realm: &str, query: &[String]) -> Result<String> {
        let refuse = |reason: &str| Error::UntrustedRealm {
            registry: self.registry.clone(),
            realm: realm.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = realm.parse().map_err(|_| refuse("it is not an absolute URL"))?;
        let authority = uri.authority().ok_or_else(|| refuse("it is not an absolute URL"))?;
        if authority.as_str().contains('@') {
            return Err(refuse("it holds user information"));
        }
        if authority.host().is_empty() {
            return Err(refuse("it names no host"));
        }
        match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => {}
            Some("http") if !self.insecure_http => {
                return Err(refuse("it is plain HTTP, and the registry is reached over HTTPS"));
            }
            Some("http") if !authority.host().eq_ignore_ascii_case(&self.origin.host) => {
                return Err(refuse("it is plain HTTP on another host than the registry"));
            }
            Some("http") => {}
            _ => return Err(refuse("it is neither HTTPS nor HTTP")),
        }
        if query.is_empty() {
            return Ok(realm.to_owned());
        }
        let separator = if uri.query().is_some() { '&' } else { '?' };
        Ok(format!("{realm}{separator}{}", query.join("&")))
    }

    /// Asks the token server for a token granting `scope`.
    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut query = Vec::new();
        if let Some(service) = service {
            query.push(format!("service={}", encode(service)));
        }
        for scope in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(format!("scope={}", encode(scope)));
        }
        // Checked before anything is sent, whatever the credentials: a token is a credential.
        let get_url = self.token_url(realm, &query)?;
        let unauthorized = |detail: Option<String>| Error::Unauthorized {
            registry: self.registry.clone(),
            scope: scope.to_owned(),
            detail,
        };
        let response = match &self.credentials {
            Credentials::IdentityToken(refresh) => {
                let mut form = query.clone();
                form.extend([
                    "grant_type=refresh_token".to_owned(),
                    "client_id=kiln".to_owned(),
                    format!("refresh_token={}", encode(refresh)),
                ]);
                self.agent
                    .post(self.token_url(realm, &[])?)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(form.join("&").as_bytes())
            }
            credentials => {
                let mut request = self.agent.get(&get_url);
                if let Some(header) = credentials.basic_header() {
                    request = request.header("Authorization", header);
                }
                request.call()
            }
        };
        let mut response = response.map_err(|source| Error::Transport { url: realm.to_owned(), source })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(unauthorized(Some(format!("the token server {realm} answered {status}"))));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = response.body_mut().with_config().limit(1 << 20).read_to_vec().unwrap_or_default();
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| unauthorized(Some(format!("the token server {realm} sent no token"))))?;
        parsed
            .token
            .or(parsed.access_token)
            .ok_or_else(|| unauthorized(Some(format!("the token server {realm} sent no token"))))
    }

    fn dispatch(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        authorization: Option<&str>,
        body: Prepared<'_>,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        macro_rules! with_headers {
            ($builder:expr) => {{
                let mut builder = $builder;
                for (name, value) in headers {
                    builder = builder.header(*name, value.as_str());
                }
                if let Some(authorization) = authorization {
                    builder = builder.header("Authorization", authorization);
                }
                builder
            }};
        }
        let builder = match method {
            Method::Get => return with_headers!(self.agent.get(url)).call(),
            Method::Head => return with_headers!(self.agent.head(url)).call(),
            Method::Patch => with_headers!(self.agent.patch(url)),
            Method::Post => with_headers!(self.agent.post(url)),
            Method::Put => with_headers!(self.agent.put(url)),
        };
        match body {
            Prepared::Empty => builder.header("Content-Length", "0").send_empty(),
            Prepared::Bytes(bytes) => builder.send(bytes),
            Prepared::Reader(mut reader) => builder
                .header("Content-Length", reader.remaining.to_string())
                .send(SendBody::from_reader(&mut reader)),
        }
    }

    /// Reads a small response body (a manifest, an index): at most `limit` bytes, else an error
    /// naming the limit and `why` it is the limit. The connection is not read further.
    pub(crate) fn read_limited(
        url: &str,
        response: &mut Response<Body>,
        limit: u64,
        what: &str,
        why: &str,
    ) -> Result<Vec<u8>> {
        response.body_mut().with_config().limit(limit).read_to_vec().map_err(|source| match source {
            ureq::Error::BodyExceedsLimit(_) => Error::Protocol {
                url: url.to_owned(),
                reason: format!("the {what} is longer than {limit} bytes, {why}"),
            },
            source => Error::Transport { url: url.to_owned(), source },
        })
    }

    /// An error for an unexpected status, with the registry's own message.
    pub(crate) fn unexpected(method: Method, url: &str, response: Response<Body>) -> Error {
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        Error::Status {
            method: method.name(),
            url: url.to_owned(),
            status,
            retry_after,
            detail: error_detail(response),
        }
    }
}

/// Whether a status is worth another attempt: 408, 429 and 5xx that signal a passing state.
pub(crate) fn retriable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The `Retry-After` of a response, in seconds.
pub(crate) fn retry_after(response: &Response<Body>) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Whether an error from [`Client::send`] is worth starting over for.
pub(crate) fn retriable_error(error: &Error) -> bool {
    match error {
        Error::Transport { source, .. } => retriable_transport(source),
        Error::Status { status, .. } => retriable_status(*status),
        _ => false,
    }
}

/// Whether a transport error is worth another attempt: a connection that was reset or broke
/// off, or a timeout. A refused connection or an unknown host fails at once.
pub(crate) fn retriable_transport(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted
        ),
        _ => false,
    }
}

/// `CODE: message` from a distribution error document, if the body is one.
fn error_detail(mut response: Response<Body>) -> Option<String> {
    let body = response.body_mut().with_config().limit(64 * 1024).read_to_vec().ok()?;
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let parsed: Errors = serde_json::from_slice(&body).ok()?;
    let parts: Vec<String> = parsed.errors.iter().map(|e| format!("{}: {}", e.code, e.message)).collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Percent-encodes a query parameter value.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Scheme, host and port of a URL: where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an absolute `http` or `https` URL without user information.
    pub(crate) fn of(url: &str) -> Option<Origin> {
        Origin::of_uri(&url.parse::<Uri>().ok()?)
    }

    fn of_uri(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return None;
        }
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        Some(Origin {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
            scheme,
        })
    }
}

/// A body ready for one attempt: a blob is opened afresh each time.
enum Prepared<'a> {
    Empty,
    Bytes(&'a [u8]),
    Reader(ExactReader<'a>),
}

impl<'a> Prepared<'a> {
    /// Opens a blob body through its layout (exit 3 when it is missing, a link, or not its
    /// size) at its offset.
    fn open(body: &RequestBody<'a>) -> Result<Prepared<'a>> {
        Ok(match body {
            RequestBody::Empty => Prepared::Empty,
            RequestBody::Bytes(bytes) => Prepared::Bytes(bytes),
            RequestBody::Blob { layout, blob, offset, len, progress } => {
                let mut file = layout.open_blob_checked(blob)?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(|source| Error::Read { path: layout.blob_path(&blob.digest), source })?;
                Prepared::Reader(ExactReader { inner: file.take(*len), remaining: *len, progress: *progress })
            }
        })
    }
}

/// Streams exactly `remaining` bytes: a file that ends early is an error, never a body that
/// waits forever for bytes that do not come.
struct ExactReader<'a> {
    inner: io::Take<std::fs::File>,
    remaining: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

/// The error an [`ExactReader`] ends a request with: the bytes that were still owed.
#[derive(Debug, thiserror::Error)]
#[error("the file ended {owed} bytes early")]
struct EndedEarly {
    owed: u64,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            // Not a kind a retry would repeat: the file changed under kiln.
            return Err(io::Error::other(EndedEarly { owed: self.remaining }));
        }
        self.remaining -= n as u64;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// A request that failed because its blob body could not be read: an error about the layout.
fn body_error(body: &RequestBody<'_>, error: &ureq::Error) -> Option<Error> {
    let RequestBody::Blob { layout, blob, offset, len, .. } = body else { return None };
    let ureq::Error::Io(io) = error else { return None };
    if let Some(EndedEarly { owed }) = io.get_ref().and_then(|e| e.downcast_ref::<EndedEarly>()) {
        return Some(Error::BlobChanged {
            path: layout.blob_path(&blob.digest),
            digest: blob.digest.clone(),
            size: blob.size,
            ended_at: offset + len - owed,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
        assert_eq!(encode("sha256:ab"), "sha256%3Aab");
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let origin = |url| Origin::of(url);
        assert_eq!(origin("https://Registry.Example/v2/"), origin("https://registry.example:443/x"));
        assert_ne!(origin("https://registry.example/"), origin("http://registry.example/"));
        assert_ne!(origin("http://127.0.0.1:5000/"), origin("http://127.0.0.1:5001/"));
        assert_ne!(origin("http://127.0.0.1:5000/"), origin("http://127.0.0.2:5000/"));
        for bad in ["https://user:pw@registry.example/", "ftp://registry.example/", "/v2/x", "", "file:///x"]
        {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_realms_follow_the_credential_rule() {
        let anonymous = || Some(Credentials::Anonymous);
        let https =
            Client::new("127.0.0.1:5000", &ClientOptions { credentials: anonymous(), ..Default::default() })
                .unwrap();
        let http = Client::new(
            "127.0.0.1:5000",
            &ClientOptions { insecure_http: true, credentials: anonymous(), ..Default::default() },
        )
        .unwrap();
        let query = ["scope=x".to_owned()];
        // Allowed: HTTPS anywhere; plain HTTP only on the registry's own host, and only when
        // the user allowed plain HTTP for it.
        assert_eq!(
            https.token_url("https://auth.example/token", &query).unwrap(),
            "https://auth.example/token?scope=x"
        );
        assert_eq!(
            https.token_url("https://auth.example/t?a=b", &query).unwrap(),
            "https://auth.example/t?a=b&scope=x"
        );
        assert!(http.token_url("http://127.0.0.1:6000/token", &query).is_ok());
        assert!(http.token_url("https://auth.example/token", &query).is_ok());
        for (client, realm) in [
            (&https, "http://127.0.0.1:6000/token"),
            (&https, "http://auth.example/token"),
            (&http, "http://auth.example/token"),
            (&http, "http://127.0.0.2:5000/token"),
            (&https, "https://user:pw@auth.example/token"),
            (&https, "ftp://auth.example/token"),
            (&https, "file:///etc/passwd"),
            (&https, ""),
            (&https, "/token"),
            (&https, "https:///token"),
        ] {
            let error = client.token_url(realm, &query).unwrap_err();
            assert!(matches!(error, Error::UntrustedRealm { .. }), "{realm}: {error}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// Whatever realm a registry names, credentials go there only as the rule says: HTTPS
        /// without user information, or plain HTTP on the registry's own host when the user
        /// allowed plain HTTP.
        #[test]
        fn the_realm_rule_holds_for_any_realm(
            scheme in proptest::sample::select(vec!["https", "http", "HTTPS", "ftp", "file", "javascript", ""]),
            userinfo in proptest::sample::select(vec!["", "u@", "u:p@", "@"]),
            host in proptest::sample::select(vec!["registry.example", "REGISTRY.example", "auth.example", "127.0.0.1", "", "registry.example.evil"]),
            port in proptest::option::of(1u16..),
            path in "(/[a-z?=&.]{0,10}){0,3}",
            insecure in proptest::prelude::any::<bool>(),
        ) {
            let client = Client::new(
                "registry.example:5000",
                &ClientOptions { insecure_http: insecure, credentials: Some(Credentials::Anonymous), ..Default::default() },
            ).unwrap();
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let realm = if scheme.is_empty() { format!("{host}{port}{path}") } else { format!("{scheme}://{userinfo}{host}{port}{path}") };
            let allowed = userinfo.is_empty()
                && !host.is_empty()
                && (scheme.eq_ignore_ascii_case("https")
                    || (scheme == "http" && insecure && host.eq_ignore_ascii_case("registry.example")));
            let decided = client.token_url(&realm, &["scope=x".to_owned()]);
            proptest::prop_assert_eq!(decided.is_ok(), allowed, "{} -> {:?}", realm, decided.as_ref().err().map(ToString::to_string));
        }

        /// Any URL: an origin or none, never a panic; and only the registry's own origin is its own.
        #[test]
        fn origins_of_any_text(url in "\\PC{0,80}") {
            let client = Client::new("registry.example", &ClientOptions { credentials: Some(Credentials::Anonymous), ..Default::default() }).unwrap();
            if client.is_own(&url) {
                let origin = Origin::of(&url).unwrap();
                proptest::prop_assert_eq!((origin.scheme.as_str(), origin.host.as_str(), origin.port), ("https", "registry.example", 443));
            }
        }
    }

    #[test]
    fn only_the_registry_origin_is_its_own() {
        let client = Client::new("127.0.0.1:5000", &ClientOptions::default()).unwrap();
        assert!(client.is_own("https://127.0.0.1:5000/v2/x/blobs/uploads/1"));
        assert!(!client.is_own("http://127.0.0.1:5000/v2/x"));
        assert!(!client.is_own("https://127.0.0.1:5001/v2/x"));
        assert!(!client.is_own("https://storage.example/upload"));
        for bad in ["user@127.0.0.1:5000", "127.0.0.1:5000/x", "127.0.0.1:5000?x"] {
            assert!(Client::new(bad, &ClientOptions::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_blob_body_that_ends_early_fails_instead_of_waiting() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        let mut writer =
            kiln_layers::oci::layout::LayoutWriter::create_or_update(&dir.path().join("l")).unwrap();
        let blob = writer.put_document("application/octet-stream", &[7u8; 100]).unwrap();
        writer.set(&"x:1".parse().unwrap(), blob.clone());
        let layout = Layout::open(&writer.commit().unwrap()).unwrap();
        // A registry that reads whatever comes and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut buffer = [0u8; 4096];
                while stream.read(&mut buffer).is_ok_and(|n| n > 0) {}
            }
        });
        let options = ClientOptions {
            insecure_http: true,
            credentials: Some(Credentials::Anonymous),
            ..Default::default()
        };
        let client = Client::new(&address, &options).unwrap();
        // The file holds 50 bytes from the offset and the body promises 100, as when the file
        // shrinks under kiln: the request stops at once, naming the blob, instead of waiting
        // for bytes that never come.
        let body =
            RequestBody::Blob { layout: &layout, blob: &blob, offset: 50, len: 100, progress: &|_| {} };
        let started = std::time::Instant::now();
        let error = client
            .send(Method::Put, &client.url("x/blobs/uploads/1"), "", &[], &body, Retry::Yes)
            .unwrap_err();
        assert!(matches!(&error, Error::BlobChanged { size: 100, ended_at: 100, .. }), "{error}");
        assert!(error.to_string().contains(&blob.digest.to_string()), "{error}");
        assert!(error.is_input_error());
        assert!(started.elapsed() < Duration::from_secs(10));
        // A blob that is not its descriptor's size is refused before anything is sent.
        let mut wrong = blob.clone();
        wrong.size = 99;
        let body = RequestBody::Blob { layout: &layout, blob: &wrong, offset: 0, len: 99, progress: &|_| {} };
        let error = client
            .send(Method::Put, &client.url("x/blobs/uploads/1"), "", &[], &body, Retry::Yes)
            .unwrap_err();
        assert!(
            matches!(&error, Error::Layout(kiln_layers::Error::SizeMismatch { actual: 100, .. })),
            "{error}"
        );
    }

    #[test]
    fn resolves_locations() {
        let client =
            Client::new("127.0.0.1:5000", &ClientOptions { insecure_http: true, ..Default::default() })
                .unwrap();
        assert_eq!(
            client.resolve("/v2/x/blobs/uploads/1?a=b"),
            "http://127.0.0.1:5000/v2/x/blobs/uploads/1?a=b"
        );
        assert_eq!(client.resolve("https://s3.example/u"), "https://s3.example/u");
        assert_eq!(client.url("x/blobs/sha256:1"), "http://127.0.0.1:5000/v2/x/blobs/sha256:1");
    }
}
