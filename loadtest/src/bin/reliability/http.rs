//! A small blocking HTTP/1.1 keep-alive client for the campaigns: one
//! connection per worker thread, every read and write under a timeout, so a
//! killed or hung gate turns into an error, never a stuck campaign.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Most response header lines accepted.
const MAX_HEADER_LINES: usize = 64;

/// One keep-alive connection to a loopback address (reopened after an error).
pub struct Http {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Http {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Http {
        assert!(addr.ip().is_loopback(), "the campaigns talk only to loopback addresses, not {addr}");
        Http { addr, timeout, conn: None }
    }

    /// Sends one request; an error leaves the connection closed (the next
    /// call reconnects). `token`: the admin bearer token, if any.
    pub fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> std::io::Result<Response> {
        let result = self.exchange(method, path, token, body);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(&mut self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> std::io::Result<Response> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = conn.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("not an HTTP status line: {line:?}")))?;
        let (mut length, mut close) = (0usize, false);
        for _ in 0..MAX_HEADER_LINES {
            line.clear();
            conn.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                let mut body = vec![0; length];
                conn.read_exact(&mut body)?;
                if close {
                    self.conn = None;
                }
                return Ok(Response { status, body });
            }
            let (name, value) = header.split_once(':').ok_or_else(|| bad(format!("bad header {header:?}")))?;
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| bad(format!("bad content-length {value:?}")))?;
                if length > MAX_RESPONSE_BYTES {
                    return Err(bad(format!("a {length}-byte response is more than the campaigns read")));
                }
            } else if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
                close = true;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad("chunked responses are not expected from the gate".into()));
            }
        }
        Err(bad(format!("more than {MAX_HEADER_LINES} header lines")))
    }
}

fn bad(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
