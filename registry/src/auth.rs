//! Credentials and the registry authentication handshake.
//!
//! Credentials come from the places Docker, podman and crane look, in this order:
//! `$DOCKER_CONFIG/config.json` (else `~/.docker/config.json`), `$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`. In a Docker config,
//! `credHelpers` for the registry wins over `credsStore`, which wins over `auths`. Helpers run as
//! `docker-credential-<name> get` with the registry on stdin. No credential is ever written to
//! output, logs or error messages: [`Credentials`] prints as `<redacted>`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result};
use crate::reference::DOCKER_HUB;

/// How to authenticate to one registry.
#[derive(Clone, Default)]
pub enum Credentials {
    /// No credentials: anonymous access, or tokens the token server gives anyone.
    #[default]
    Anonymous,
    /// User name and password (or access token used as password).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in a Docker config).
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credentials {
    /// `Authorization: Basic …` value, for basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => {
                Some(format!("Basic {}", STANDARD.encode(format!("{username}:{password}"))))
            }
            _ => None,
        }
    }

    /// The credentials configured for `registry`, or anonymous.
    pub fn lookup(registry: &str) -> Result<Credentials> {
        for file in credential_files() {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let config: DockerConfig = serde_json::from_str(&text).map_err(|e| Error::Credentials {
                source_name: file.display().to_string(),
                reason: format!("invalid JSON at line {}, column {}", e.line(), e.column()),
            })?;
            if let Some(credentials) = config.credentials_for(registry, &file)? {
                return Ok(credentials);
            }
        }
        Ok(Credentials::Anonymous)
    }
}

fn credential_files() -> Vec<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let home = env("HOME");
    let mut files = Vec::new();
    match env("DOCKER_CONFIG") {
        Some(dir) => files.push(dir.join("config.json")),
        None => files.extend(home.as_ref().map(|h| h.join(".docker/config.json"))),
    }
    files.extend(env("REGISTRY_AUTH_FILE"));
    files.extend(env("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")));
    files.extend(home.map(|h| h.join(".config/containers/auth.json")));
    files
}

/// The keys a registry may be stored under in a config file.
fn keys_for(registry: &str) -> Vec<String> {
    let mut keys = vec![registry.to_owned(), format!("https://{registry}"), format!("http://{registry}")];
    if registry == DOCKER_HUB || registry == "docker.io" || registry == "index.docker.io" {
        keys.extend(["https://index.docker.io/v1/", "index.docker.io", "docker.io"].map(String::from));
    }
    keys
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl DockerConfig {
    fn credentials_for(&self, registry: &str, file: &Path) -> Result<Option<Credentials>> {
        let keys = keys_for(registry);
        if let Some((key, helper)) = keys.iter().find_map(|k| self.cred_helpers.get(k).map(|h| (k, h))) {
            return run_helper(helper, key).map(Some);
        }
        if let Some(helper) = &self.creds_store
            && let Some(credentials) = keys.iter().find_map(|k| run_helper(helper, k).ok())
        {
            return Ok(Some(credentials));
        }
        let Some(entry) = keys.iter().find_map(|k| self.auths.get(k)) else { return Ok(None) };
        if let Some(token) = &entry.identitytoken {
            return Ok(Some(Credentials::IdentityToken(token.clone())));
        }
        if let Some(auth) = &entry.auth {
            let invalid = || Error::Credentials {
                source_name: file.display().to_string(),
                reason: format!("the `auth` entry for {registry} is not base64 of user:password"),
            };
            let decoded = STANDARD.decode(auth.trim()).map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (username, password) = decoded.split_once(':').ok_or_else(invalid)?;
            return Ok(Some(Credentials::Basic { username: username.into(), password: password.into() }));
        }
        Ok(match (&entry.username, &entry.password) {
            (Some(username), Some(password)) => {
                Some(Credentials::Basic { username: username.clone(), password: password.clone() })
            }
            _ => None,
        })
    }
}

/// `docker-credential-<helper> get` with `server` on stdin.
fn run_helper(helper: &str, server: &str) -> Result<Credentials> {
    let program = format!("docker-credential-{helper}");
    let error = |reason: String| Error::Credentials { source_name: program.clone(), reason };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| error(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(server.as_bytes()).map_err(|e| error(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| error(e.to_string()))?;
    if !output.status.success() {
        return Err(error(format!("it found no credentials for {server}")));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperOutput {
        username: String,
        secret: String,
    }
    let parsed: HelperOutput = serde_json::from_slice(&output.stdout)
        .map_err(|_| error("its output is not the helper protocol's JSON".into()))?;
    Ok(if parsed.username == "<token>" {
        Credentials::IdentityToken(parsed.secret)
    } else {
        Credentials::Basic { username: parsed.username, password: parsed.secret }
    })
}

/// A `WWW-Authenticate` challenge. Where kiln answers it is decided by the client (see
/// [`crate::client`]): never by the challenge alone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// Service name to ask the token for.
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value; `None` for a scheme kiln does not answer or a
    /// bearer challenge without a realm.
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        let params = parse_params(params);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key="value", key=value` pairs (RFC 7235 auth-params).
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(key, value);
        rest = remaining.trim_start().trim_start_matches(',');
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#;
        assert_eq!(
            Challenge::parse(header),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(Challenge::parse("Negotiate"), None);
        let params = parse_params(r#"realm="a\"b", service=plain , scope="x:y:pull,push""#);
        assert_eq!(params["realm"], "a\"b");
        assert_eq!(params["service"], "plain");
        assert_eq!(params["scope"], "x:y:pull,push");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Any header: a challenge or none, never a panic.
        #[test]
        fn any_header_parses_without_panic(header in "\\PC{0,200}") {
            let _ = Challenge::parse(&header);
        }

        /// A bearer challenge's quoted realm and service come back as they were sent, whatever
        /// they hold (quotes and backslashes escaped), in any parameter order.
        #[test]
        fn quoted_values_round_trip(realm in "[ -~]{1,60}", service in "[ -~]{0,30}", reversed in proptest::prelude::any::<bool>()) {
            let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
            let params = [format!("realm={}", quote(&realm)), format!("service={}", quote(&service))];
            let header = if reversed {
                format!("Bearer {},{}", params[1], params[0])
            } else {
                format!("Bearer {}, {}", params[0], params[1])
            };
            proptest::prop_assert_eq!(
                Challenge::parse(&header),
                Some(Challenge::Bearer { realm, service: Some(service) })
            );
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let basic = Credentials::Basic { username: "ci".into(), password: "hunter2".into() };
        let token = Credentials::IdentityToken("refresh-secret".into());
        let text = format!("{basic:?} {token:?}");
        assert!(!text.contains("hunter2") && !text.contains("refresh-secret"), "{text}");
    }

    #[test]
    fn reads_docker_config_entries() {
        let config: DockerConfig = serde_json::from_str(&format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"identitytoken":"t"}}}}}}"#,
            STANDARD.encode("user:pa:ss")
        ))
        .unwrap();
        let path = Path::new("config.json");
        match config.credentials_for("ghcr.io", path).unwrap() {
            Some(Credentials::Basic { username, password }) => {
                assert_eq!((username.as_str(), password.as_str()), ("user", "pa:ss"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            config.credentials_for(DOCKER_HUB, path).unwrap(),
            Some(Credentials::IdentityToken(_))
        ));
        assert!(config.credentials_for("quay.io", path).unwrap().is_none());
    }
}
