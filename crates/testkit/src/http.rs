//! The one HTTP client of claimgate's tests and reliability campaigns:
//! hyper's HTTP/1.1 client (the gate's own stack, a kept crate) over a
//! keep-alive TCP connection to a loopback address.
//!
//! - [`Connection`]: async, one keep-alive connection.
//! - [`Blocking`]: the same on a runtime of its own, every exchange under a
//!   timeout and reconnected after a failure (the campaigns' worker threads).
//! - [`request`]: one request on a fresh connection, for tests.
//!
//! Requests are prebuilt ([`Request`]: cheap to clone, the body shared).
//! The load generator's hot path keeps a leaner client of its own (see
//! `loadtest/src/client.rs`: hyper's dispatch costs a generator that shares
//! two cores with the server about a fifth of its rate). What tests send on
//! purpose malformed (bad framing, pipelining, slow bytes) is not HTTP a
//! client makes; they write those bytes on a socket themselves.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest response body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Why an exchange failed (the connection is then dropped).
#[derive(Debug)]
pub enum ClientError {
    /// Connecting failed.
    Connect(std::io::Error),
    /// The connection was lost or closed mid-exchange.
    Io(String),
    /// What came back was not an HTTP/1.1 response hyper accepts.
    Protocol(String),
    /// No answer within the timeout ([`Blocking`] only).
    Timeout(Duration),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Io(m) => write!(f, "i/o: {m}"),
            ClientError::Protocol(m) => write!(f, "protocol: {m}"),
            ClientError::Timeout(t) => write!(f, "no answer within {t:?}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A request, prebuilt: its method, path, headers and body. `Content-Type:
/// application/json` is added to a request with a body or a `POST`.
#[derive(Debug, Clone)]
pub struct Request {
    method: hyper::Method,
    path: hyper::Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Request {
    /// `headers` are name and value pairs (a bearer token, say); a name or
    /// value HTTP does not allow panics, as a test's typo should.
    pub fn new(method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request {
        let body = body.into();
        let method = hyper::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut list: Vec<(HeaderName, HeaderValue)> = headers
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                    HeaderValue::from_str(v).expect("a header value"),
                )
            })
            .collect();
        if (!body.is_empty() || method == hyper::Method::POST) && !list.iter().any(|(k, _)| k == CONTENT_TYPE) {
            list.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        Request { method, path: path.parse().expect("a request path"), headers: list, body }
    }

    fn to_hyper(&self, host: &HeaderValue, close: bool) -> hyper::Request<Full<Bytes>> {
        let mut builder = hyper::Request::builder().method(self.method.clone()).uri(self.path.clone());
        let headers = builder.headers_mut().expect("a fresh builder");
        headers.insert(HOST, host.clone());
        if close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        for (k, v) in &self.headers {
            headers.append(k.clone(), v.clone());
        }
        builder.body(Full::new(self.body.clone())).expect("parts checked when the request was made")
    }
}

/// One response: status, headers, body, and whether the server closes the
/// connection after it. Headers and body stay as hyper gave them (no copy
/// per response).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub close: bool,
}

impl Response {
    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every header as text pairs, in order (for tests that list them).
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect()
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    /// Connects to `addr`, which must be a loopback address: load, soak and
    /// fault tests talk only to this machine.
    pub async fn connect(addr: SocketAddr) -> Result<Connection, ClientError> {
        assert!(addr.ip().is_loopback(), "the tests and tools talk only to loopback addresses, not {addr}");
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(ClientError::Connect)?;
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(failed)?;
        // The connection's I/O runs as a task of its own until either side closes.
        tokio::spawn(connection);
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid Host");
        Ok(Connection { sender, host })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends `request` and reads its whole response.
    pub async fn send(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.exchange(request, false).await
    }

    async fn exchange(&mut self, request: &Request, close: bool) -> Result<Response, ClientError> {
        self.sender.ready().await.map_err(failed)?;
        let response = self.sender.send_request(request.to_hyper(&self.host, close)).await.map_err(failed)?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| ClientError::Io(format!("reading the body: {e}")))?
            .to_bytes();
        let close = parts.headers.get(CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        Ok(Response { status: parts.status.as_u16(), headers: parts.headers, body, close })
    }
}

/// A hyper error as what went wrong: a response it could not parse, or a
/// lost connection.
fn failed(e: hyper::Error) -> ClientError {
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        ClientError::Protocol(e.to_string())
    } else {
        ClientError::Io(e.to_string())
    }
}

/// A blocking keep-alive client of one address, for threads outside any
/// runtime: every exchange under `timeout`; a failure drops the connection
/// and the next exchange reconnects.
pub struct Blocking {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<Connection>,
}

impl Blocking {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Blocking {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        Blocking { runtime, addr, timeout, conn: None }
    }

    /// Sends `request`, (re)connecting first if needed.
    pub fn send(&mut self, request: &Request) -> Result<Response, ClientError> {
        let (addr, timeout) = (self.addr, self.timeout);
        let conn = &mut self.conn;
        let result = self.runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                if !conn.as_ref().is_some_and(Connection::is_open) {
                    *conn = Some(Connection::connect(addr).await?);
                }
                conn.as_mut().expect("connected above").send(request).await
            })
            .await
            .unwrap_or(Err(ClientError::Timeout(timeout)))
        });
        match &result {
            Ok(r) if !r.close => {}
            _ => self.conn = None,
        }
        result
    }
}

/// One request on a fresh connection (`Connection: close`), answered within
/// `timeout`: the tests' client.
pub fn request(addr: SocketAddr, request: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let mut conn = Connection::connect(addr).await?;
            conn.exchange(request, true).await
        })
        .await
        .unwrap_or(Err(ClientError::Timeout(timeout)))
    })
}
