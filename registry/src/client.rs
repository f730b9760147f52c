//! The HTTP transport: one registry, authentication on demand, retries.
//!
//! Every request is built afresh for each attempt (a streamed file body is reopened), so a
//! retry after a reset or a 5xx resends everything. On a 401 the challenge is answered — basic
//! credentials, or a bearer token for the request's scope from the token server — and the
//! request is repeated; tokens are cached per scope and fetched again on any later 401, since
//! they expire mid-push. 408, 429, 500, 502, 503, 504 and connection failures are retried with
//! exponential backoff, honouring `Retry-After`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

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
    /// `len` bytes of a file from `offset`, streamed; `progress` hears every piece sent.
    File {
        path: &'a Path,
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
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout.unwrap_or(Duration::from_secs(30))))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .tls_config(tls.build())
            .build();
        let credentials = match &options.credentials {
            Some(credentials) => credentials.clone(),
            None => Credentials::lookup(registry)?,
        };
        let scheme = if options.insecure_http { "http" } else { "https" };
        Ok(Client {
            agent: Agent::new_with_config(config),
            base: format!("{scheme}://{registry}"),
            registry: registry.to_owned(),
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
    /// grant (`repository:x:pull,push`, space-separated for several).
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
        let mut attempt = 0;
        let mut auth_rounds = 0;
        loop {
            attempt += 1;
            let authorization = self.authorization(scope)?;
            let result = self.dispatch(method, url, headers, authorization.as_deref(), body);
            let response = match result {
                Ok(response) => response,
                Err(error) if attempt < attempts && retriable_transport(&error) => {
                    std::thread::sleep(self.backoff(attempt, None));
                    continue;
                }
                Err(source) => return Err(Error::Transport { url: url.to_owned(), source }),
            };
            let status = response.status().as_u16();
            if status == 401 && auth_rounds < 2 {
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
            if status == 401 || status == 403 {
                return Err(Error::Unauthorized {
                    registry: self.registry.clone(),
                    scope: scope.to_owned(),
                    detail: error_detail(response),
                });
            }
            if retriable_status(status) && attempt < attempts {
                std::thread::sleep(self.backoff(attempt, retry_after(&response)));
                continue;
            }
            return Ok(response);
        }
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

    /// Asks the token server for a token granting `scope`.
    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut query = Vec::new();
        if let Some(service) = service {
            query.push(format!("service={}", encode(service)));
        }
        for scope in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(format!("scope={}", encode(scope)));
        }
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
                    .post(realm)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(form.join("&").as_bytes())
            }
            credentials => {
                let url =
                    if query.is_empty() { realm.to_owned() } else { format!("{realm}?{}", query.join("&")) };
                let mut request = self.agent.get(&url);
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
        body: &RequestBody<'_>,
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
            RequestBody::Empty => builder.header("Content-Length", "0").send_empty(),
            RequestBody::Bytes(bytes) => builder.send(*bytes),
            RequestBody::File { path, offset, len, progress } => {
                let mut file = File::open(path)?;
                file.seek(SeekFrom::Start(*offset))?;
                let mut reader = ProgressReader { inner: file.take(*len), progress: *progress };
                builder.header("Content-Length", len.to_string()).send(SendBody::from_reader(&mut reader))
            }
        }
    }

    /// Reads a small response body (a manifest, an error document).
    pub(crate) fn read_small(url: &str, response: &mut Response<Body>) -> Result<Vec<u8>> {
        response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|source| Error::Transport { url: url.to_owned(), source })
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

struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
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
