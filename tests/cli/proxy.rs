//! A fault-injecting HTTP proxy between kiln and a registry, on loopback.
//!
//! Each client connection carries one request: the proxy reads the request head, applies the
//! first rule that matches (method, path substring, smallest body) and still has injections
//! left, and otherwise forwards the request with `Connection: close` and relays the response.
//! Faults: answer with a status (503, 413, or 429 with `Retry-After`), reset the connection
//! after part of the request body, or add a header to the registry's response. It counts every
//! request and every injection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Answer 429 with `Retry-After: <seconds>`.
    TooManyRequests(u64),
    /// Forward the head and this many body bytes, then reset the connection.
    ResetAfter(u64),
    /// Forward the request and add this header line (`Name: value`) to the response.
    AddHeader(&'static str),
}

/// Inject `fault` into the first `times` requests with `method` whose path contains `path` and
/// whose body has at least `min_body` bytes.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) min_body: u64,
    pub(crate) fault: Fault,
    pub(crate) times: usize,
}

/// What the proxy saw and did.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counts {
    /// Every request, as `METHOD path`.
    pub(crate) requests: Vec<String>,
    /// The body length of every request, in the same order.
    pub(crate) body_lengths: Vec<u64>,
    /// Injections per rule, in rule order.
    pub(crate) injected: Vec<usize>,
}

pub(crate) struct Proxy {
    pub(crate) address: String,
    state: Arc<Mutex<(Vec<Rule>, Counts)>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub(crate) fn start(upstream: &str, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let injected = vec![0; rules.len()];
        let state = Arc::new(Mutex::new((
            rules,
            Counts { requests: Vec::new(), body_lengths: Vec::new(), injected },
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, thread_state, thread_stop) =
            (upstream.to_owned(), Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if thread_stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let (upstream, state) = (upstream.clone(), Arc::clone(&thread_state));
                std::thread::spawn(move || {
                    let _ = serve(client, &upstream, &state);
                });
            }
        });
        Proxy { address, state, stop }
    }

    pub(crate) fn counts(&self) -> Counts {
        self.state.lock().unwrap().1.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.address);
    }
}

fn serve(client: TcpStream, upstream: &str, state: &Mutex<(Vec<Rule>, Counts)>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let mut parts = head[0].split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let length: u64 = head
        .iter()
        .find_map(|h| {
            h.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let fault = {
        let mut guard = state.lock().unwrap();
        let (rules, counts) = &mut *guard;
        counts.requests.push(format!("{method} {path}"));
        counts.body_lengths.push(length);
        let index = rules.iter().enumerate().position(|(i, r)| {
            r.method == method
                && path.contains(r.path)
                && length >= r.min_body
                && counts.injected[i] < r.times
        });
        index.map(|i| {
            counts.injected[i] += 1;
            rules[i].fault
        })
    };
    let mut client = client;
    match fault {
        Some(Fault::Status(status)) => {
            std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink())?;
            write!(client, "HTTP/1.1 {status} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::TooManyRequests(seconds)) => {
            std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink())?;
            write!(
                client,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {seconds}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    let mut server = TcpStream::connect(upstream)?;
    for line in &head {
        if line == "\r\n" {
            server.write_all(b"Connection: close\r\n\r\n")?;
        } else if !line.to_ascii_lowercase().starts_with("connection:") {
            server.write_all(line.as_bytes())?;
        }
    }
    if let Some(Fault::ResetAfter(bytes)) = fault {
        std::io::copy(&mut (&mut reader).take(bytes.min(length)), &mut server)?;
        // SO_LINGER 0: the close sends a reset, as a dropped connection does.
        rustix::net::sockopt::set_socket_linger(&client, Some(Duration::ZERO))?;
        rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO))?;
        return Ok(());
    }
    std::io::copy(&mut (&mut reader).take(length), &mut server)?;
    if let Some(Fault::AddHeader(header)) = fault {
        let mut response = BufReader::new(&mut server);
        let mut status = String::new();
        response.read_line(&mut status)?;
        write!(client, "{status}{header}\r\n")?;
        std::io::copy(&mut response, &mut client)?;
        return client.shutdown(Shutdown::Both);
    }
    std::io::copy(&mut server, &mut client)?;
    client.shutdown(Shutdown::Both)
}
