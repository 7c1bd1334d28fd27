//! The HTTP-01 challenge responder.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The challenge path prefix.
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Where a responder finds the tokens it did not get from [`Responder::add`] (the cluster's,
/// in etcd).
pub type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A tiny HTTP server answering `GET /.well-known/acme-challenge/TOKEN` from memory, then
/// from its [`Lookup`] if it has one.
pub struct Responder {
    tokens: Arc<Mutex<HashMap<String, String>>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Responder {
    /// Listen on `addr` (port 0: any free port), answering from memory.
    pub fn start(addr: SocketAddr) -> io::Result<Self> {
        Self::serving(addr, None)
    }

    /// Listen on `addr`, answering from memory, then from `lookup`.
    pub fn serving(addr: SocketAddr, lookup: Option<Lookup>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let tokens: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let memory = tokens.clone();
        let find: Lookup = Arc::new(move |token: &str| {
            let known = memory.lock().ok()?.get(token).cloned();
            known.or_else(|| lookup.as_ref().and_then(|l| l(token)))
        });
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let find = find.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, find.as_ref());
                    });
                }
            }
        });
        Ok(Self {
            tokens,
            stop,
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer `token` with `key_authorization`.
    pub fn add(&self, token: &str, key_authorization: &str) {
        self.tokens
            .lock()
            .expect("not poisoned")
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stop answering `token`.
    pub fn remove(&self, token: &str) {
        self.tokens.lock().expect("not poisoned").remove(token);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, find: &(dyn Fn(&str) -> Option<String> + Send + Sync)) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let answer = target
        .strip_prefix(CHALLENGE_PREFIX)
        .filter(|_| method == "GET" || method == "HEAD")
        .and_then(find);
    let mut conn = conn;
    match answer {
        Some(body) => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            if method == "HEAD" { "" } else { &body }
        ),
        None => conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_responder_answers_known_tokens_only() {
        let r = Responder::start("127.0.0.1:0".parse().unwrap()).unwrap();
        r.add("tok", "tok.thumb");
        let get = |path: &str| {
            let mut s = TcpStream::connect(r.addr()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: a.example.com\r\n\r\n").unwrap();
            let mut out = String::new();
            io::Read::read_to_string(&mut s, &mut out).unwrap();
            out
        };
        let ok = get("/.well-known/acme-challenge/tok");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ntok.thumb"), "{ok}");
        assert!(get("/.well-known/acme-challenge/other").starts_with("HTTP/1.1 404"));
        assert!(get("/tok").starts_with("HTTP/1.1 404"));
        r.remove("tok");
        assert!(get("/.well-known/acme-challenge/tok").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn a_responder_with_a_lookup_answers_the_tokens_it_finds_there() {
        let lookup: Lookup = Arc::new(|t: &str| (t == "far").then(|| "far.thumb".to_owned()));
        let r = Responder::serving("127.0.0.1:0".parse().unwrap(), Some(lookup)).unwrap();
        let get = |path: &str| {
            let mut s = TcpStream::connect(r.addr()).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\n\r\n").unwrap();
            let mut out = String::new();
            io::Read::read_to_string(&mut s, &mut out).unwrap();
            out
        };
        assert!(get("/.well-known/acme-challenge/far").ends_with("\r\n\r\nfar.thumb"));
        assert!(get("/.well-known/acme-challenge/near").starts_with("HTTP/1.1 404"));
    }
}
