//! A token server for distribution's `auth.token` (the Docker registry token protocol), on
//! loopback: `GET /token?service=…&scope=…` with basic credentials returns a JWT granting the
//! requested scopes, signed RS256 by a test key whose certificate travels in `x5c` and is the
//! registry's `rootcertbundle`. The first `bad_tokens` tokens carry a broken signature, so the
//! registry refuses them and the client has to answer the challenge again.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::support;

pub(crate) const SERVICE: &str = "kiln-test-registry";
/// A user every token server knows besides its own, granted only `pull`.
pub(crate) const READER: (&str, &str) = ("reader", "read-only-secret");
pub(crate) const ISSUER: &str = "kiln-test-issuer";

/// Token requests seen: the scopes asked for, and whether the credentials were right.
pub(crate) type Log = Arc<Mutex<Vec<(Vec<String>, bool)>>>;

pub(crate) struct TokenServer {
    pub(crate) realm: String,
    pub(crate) certificate: PathBuf,
    /// Requests seen, as (scopes, granted).
    pub(crate) log: Log,
}

impl TokenServer {
    pub(crate) fn start(
        dir: &Path,
        user: &'static str,
        password: &'static str,
        bad_tokens: usize,
    ) -> TokenServer {
        let key = dir.join("token.key");
        let certificate = dir.join("token.crt");
        support::ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=kiln token signer",
                    "-keyout",
                ])
                .arg(&key)
                .arg("-out")
                .arg(&certificate),
        );
        let der = support::ok_bytes(
            Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&certificate),
        );
        let x5c = base64(&der, false);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (thread_log, issued) = (Arc::clone(&log), Arc::new(Mutex::new(0usize)));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &key, &x5c, (user, password), &thread_log, &issued, bad_tokens);
            }
        });
        TokenServer { realm, certificate, log }
    }
}

fn answer(
    stream: TcpStream,
    key: &Path,
    x5c: &str,
    (user, password): (&str, &str),
    log: &Mutex<Vec<(Vec<String>, bool)>>,
    issued: &Mutex<usize>,
    bad_tokens: usize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let target = head.first().and_then(|l| l.split_whitespace().nth(1)).unwrap_or("").to_owned();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scopes: Vec<String> =
        query.split('&').filter_map(|kv| kv.strip_prefix("scope=")).map(percent_decode).collect();
    let presents = |(user, password): (&str, &str)| {
        let expected = format!("basic {}", base64(format!("{user}:{password}").as_bytes(), false));
        head.iter().any(|h| {
            h.to_ascii_lowercase().starts_with("authorization:")
                && h[14..].trim().eq_ignore_ascii_case(&expected)
        })
    };
    let read_only = presents(READER);
    let authorized = presents((user, password)) || read_only;
    log.lock().unwrap().push((scopes.clone(), authorized));
    let mut stream = stream;
    if !authorized {
        return write!(stream, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions.split(',').filter(|a| !read_only || *a == "pull").collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    #[expect(clippy::disallowed_methods, reason = "token lifetimes are wall-clock by definition")]
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let count = {
        let mut issued = issued.lock().unwrap();
        *issued += 1;
        *issued
    };
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                                    "iat": now, "jti": format!("kiln-{count}"), "access": access});
    let signing_input = format!(
        "{}.{}",
        base64(header.to_string().as_bytes(), true),
        base64(claims.to_string().as_bytes(), true)
    );
    let mut signature = sign(key, signing_input.as_bytes())?;
    if count <= bad_tokens {
        signature[0] ^= 0xff;
    }
    let token = format!("{signing_input}.{}", base64(&signature, true));
    let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn sign(key: &Path, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().unwrap().write_all(data)?;
    Ok(child.wait_with_output()?.stdout)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Base64, standard with padding, or URL-safe without (JWT).
pub(crate) fn base64(bytes: &[u8], url: bool) -> String {
    let alphabet: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}
