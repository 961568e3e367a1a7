//! A minimal HTTP/1.1 client over one keep-alive tokio `TcpStream`: requests
//! are prebuilt bytes (head with `Content-Length`, then body); responses are a
//! status line, headers and a `Content-Length` (or chunked) body. Nothing else
//! of HTTP is needed to drive the gate, and nothing else is paid for.
//!
//! The instrument's own client, on purpose: the tests and the campaigns use
//! the shared one (`claimgate_testkit::http`, hyper's), but a generator that
//! shares two cores with the server it measures must cost as little per
//! request as it can, or it measures itself. Against the do-nothing baseline
//! server, five alternated 5 s runs (32 connections, 2 cores, 2026-12-03)
//! gave this client a median of 60,000 requests/s and the generator on
//! hyper's client 48,400 (0.81): hyper's dispatch (a channel and a wake of the
//! connection task per request) is the difference.

use std::fmt;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest response body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Why an exchange failed (the connection is then dropped).
#[derive(Debug)]
pub enum ClientError {
    /// Reading or writing failed, or the server closed the connection mid-response.
    Io(std::io::Error),
    /// The bytes were not an HTTP/1.1 response we understand.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o: {e}"),
            ClientError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// One response: status, body, and whether the server will close the connection.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub close: bool,
}

/// A request's bytes: `METHOD PATH HTTP/1.1`, Host, Content-Type,
/// Content-Length and any `extra` header lines, then the body.
pub fn build_request(method: &str, path: &str, host: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(b"Content-Type: application/json\r\n");
    }
    for (name, value) in extra {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by earlier responses.
    start: usize,
}

impl Connection {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buf: Vec::with_capacity(16 * 1024), start: 0 })
    }

    /// Sends `request` (complete bytes) and reads one response.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Response, ClientError> {
        self.stream.write_all(request).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<(), ClientError> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(self.buf.capacity().max(16 * 1024));
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response, ClientError> {
        let head = loop {
            match parse_head(&self.buf[self.start..])? {
                Some(head) => break head,
                None if self.buf.len() - self.start > MAX_HEAD_BYTES => {
                    return Err(ClientError::Protocol(format!("response head over {MAX_HEAD_BYTES} bytes")))
                }
                None => self.fill().await?,
            }
        };
        self.start += head.len;
        let body = match head.framing {
            Framing::Length(n) => {
                if n > MAX_BODY_BYTES {
                    return Err(ClientError::Protocol(format!("a {n}-byte body is over the limit")));
                }
                while self.buf.len() - self.start < n {
                    self.fill().await?;
                }
                let body = self.buf[self.start..self.start + n].to_vec();
                self.start += n;
                body
            }
            Framing::Chunked => self.read_chunked().await?,
            Framing::None => Vec::new(),
        };
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Response { status: head.status, body, close: head.close })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf[self.start..], b"\r\n") {
                    break p;
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[self.start..self.start + line_end])
                .map_err(|_| ClientError::Protocol("chunk size is not text".into()))?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| ClientError::Protocol(format!("bad chunk size {line:?}")))?;
            self.start += line_end + 2;
            if body.len() + size > MAX_BODY_BYTES {
                return Err(ClientError::Protocol("chunked body over the limit".into()));
            }
            while self.buf.len() - self.start < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[self.start..self.start + size]);
            self.start += size + 2;
            if size == 0 {
                // Trailers are not sent by hyper for these responses; the
                // last chunk's CRLF was consumed above.
                return Ok(body);
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    None,
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, the blank line included.
    len: usize,
    status: u16,
    framing: Framing,
    close: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response head if `bytes` holds all of it.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ClientError> {
    let Some(end) = find(bytes, b"\r\n\r\n") else { return Ok(None) };
    let text = std::str::from_utf8(&bytes[..end]).map_err(|_| ClientError::Protocol("head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ClientError::Protocol(format!("bad status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| ClientError::Protocol(format!("bad status line {status_line:?}")))?;
    let mut framing = Framing::None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ClientError::Protocol(format!("bad header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse().map_err(|_| ClientError::Protocol(format!("bad content-length {value:?}")))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.eq_ignore_ascii_case("chunked") {
                framing = Framing::Chunked;
            } else {
                return Err(ClientError::Protocol(format!("unsupported transfer-encoding {value:?}")));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if framing == Framing::None && !(status == 204 || status == 304 || (100..200).contains(&status)) {
        // No length and not chunked: the body runs to the close, which a
        // keep-alive client cannot use. hyper always sends one of the two.
        return Err(ClientError::Protocol(format!("status {status} without content-length or chunked")));
    }
    Ok(Some(Head { len: end + 4, status, framing, close }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_with_content_length() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\ndate: x\r\n\r\n{\"seq\":1234}";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head, Head { len: raw.len() - 12, status: 200, framing: Framing::Length(12), close: false });
    }

    #[test]
    fn waits_for_the_whole_head() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n").unwrap().is_none());
    }

    #[test]
    fn refuses_garbage_and_bodies_without_framing() {
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn notices_connection_close_and_chunked() {
        let head = parse_head(b"HTTP/1.1 503 x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        let head = head.unwrap();
        assert_eq!((head.status, head.close, head.framing), (503, true, Framing::Chunked));
    }

    #[test]
    fn builds_a_request_with_its_length() {
        let r = build_request("POST", "/v1/check", "127.0.0.1:8080", &[("Authorization", "Bearer t")], b"{}");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /v1/check HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n\
             Authorization: Bearer t\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[tokio::test]
    async fn exchanges_over_a_socket_in_pieces_and_keeps_alive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for reply in [
                &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"[..],
                &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"[..],
            ] {
                let _ = s.read(&mut buf).await.unwrap();
                for piece in reply.chunks(7) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut c = Connection::connect(addr).await.unwrap();
        let req = build_request("POST", "/", "x", &[], b"{}");
        let r = c.exchange(&req).await.unwrap();
        assert_eq!((r.status, r.body.as_slice(), r.close), (200, &b"hello"[..], false));
        let r = c.exchange(&req).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
        server.await.unwrap();
        assert!(c.exchange(&req).await.is_err(), "the server closed: an error, not a hang");
    }
}
