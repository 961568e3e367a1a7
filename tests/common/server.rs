//! The gate under test, shared by the HTTP test binaries: the real
//! `claimgate serve` binary on free loopback ports (a guard that kills it on
//! drop), requests by the shared HTTP client (`claimgate_testkit::http`,
//! one request per connection), raw exchanges for the bytes a client would
//! never send (malformed, pipelined, slow: written on a socket, read to
//! EOF), event and claim builders, and the error assertion.
//!
//! Every socket has read and write timeouts, so no test can hang.
#![allow(dead_code)] // each test binary uses a part

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token";
/// The read-only token every test server is started with.
pub const READ_TOKEN: &str = "test-read-token";
/// Longest any socket read or write may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a server may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a server may take to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a command run to its end (mount, fsck, a `serve` that must refuse) may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub const INST: &str = "H11010500001";
pub const DOC: &str = "D110105000001";

// ---------------------------------------------------------------------------
// The server under test.

/// A running `claimgate serve`; dropping it kills the process and reaps it.
pub struct Server {
    pub child: Child,
    pub check: SocketAddr,
    pub admin: SocketAddr,
    /// The `seq` the server printed on start (the index after catching up).
    pub start_seq: u64,
}

impl Server {
    /// Starts the binary on `data` with free loopback ports and `extra` flags,
    /// with `--init`: a new ledger where there is none, else the one there.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
        command.stderr(Stdio::inherit());
        Server::start_with(command, data, extra)
    }

    /// Like [`Server::start`], with `command` running the binary (it may be
    /// a wrapper such as `nsenter ... claimgate`, and may redirect stderr).
    pub fn start_with(command: Command, data: &Path, extra: &[&str]) -> Server {
        Server::launch(command, data, &[&["--init"], extra].concat())
    }

    /// Like [`Server::start`] without `--init`: `data` must hold a ledger.
    pub fn start_existing(data: &Path, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
        command.stderr(Stdio::inherit());
        Server::launch(command, data, extra)
    }

    fn launch(mut command: Command, data: &Path, extra: &[&str]) -> Server {
        let mut child = command
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .env("CLAIMGATE_ADMIN_TOKEN", TOKEN)
            .env("CLAIMGATE_READ_TOKEN", READ_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning claimgate serve");
        let stdout = child.stdout.take().expect("piped stdout");
        // The guard exists before anything can panic, so the process never outlives the test.
        let mut server = Server {
            child,
            check: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            start_seq: 0,
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so a later write to stdout never meets a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            Ok(other) => panic!("claimgate serve printed no listening line: {other:?} (exit: {:?})", server.exited()),
            Err(_) => panic!("claimgate serve printed nothing within {START_TIMEOUT:?}"),
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("listening line {line:?}: {e}"));
        let addr = |k: &str| -> SocketAddr {
            v["listening"][k].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no {k} in {line}"))
        };
        server.check = addr("check");
        server.admin = addr("admin");
        assert!(server.check.ip().is_loopback() && server.admin.ip().is_loopback(), "{line}");
        assert_ne!(server.check, server.admin, "{line}");
        server.start_seq = v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {line}"));
        server
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("running kill");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `POST /v1/check`.
    pub fn check(&self, line: &Value) -> Reply {
        post(self.check, "/v1/check", &[], line)
    }

    /// `POST /v1/check/batch`.
    pub fn batch(&self, body: &Value) -> Reply {
        post(self.check, "/v1/check/batch", &[], body)
    }

    /// `GET` on the check listener with the read-only token (integrity files).
    pub fn read_get(&self, path: &str) -> Reply {
        request(self.check, "GET", path, &[("Authorization", &bearer(READ_TOKEN))], b"")
    }

    /// `POST` on the admin listener with the token.
    pub fn admin_post(&self, path: &str, body: &Value) -> Reply {
        post(self.admin, path, &[("Authorization", &bearer(TOKEN))], body)
    }

    /// `GET` on the admin listener with the token.
    pub fn admin_get(&self, path: &str) -> Reply {
        request(self.admin, "GET", path, &[("Authorization", &bearer(TOKEN))], b"")
    }

    /// Appends one event that must be accepted; returns its `seq`.
    pub fn event(&self, event: &Value) -> u64 {
        let reply = self.admin_post("/v1/events", event);
        assert_eq!(reply.status, 200, "event {event} refused: {}", reply.text());
        reply.json()["seq"].as_u64().unwrap_or_else(|| panic!("no seq for {event}: {}", reply.text()))
    }

    /// The ledger head as `/readyz` reports it.
    pub fn ledger_head(&self) -> u64 {
        let ready = request(self.check, "GET", "/readyz", &[], b"").json();
        ready["ledger_head"].as_u64().unwrap_or_else(|| panic!("no ledger_head in {ready}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Commands run to their end.

/// `claimgate ARGS` with the admin token set, run to its end (bounded).
pub fn claimgate(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimgate"));
    command.args(args).env("CLAIMGATE_ADMIN_TOKEN", TOKEN).env("RUST_LOG", "warn");
    run_bounded(command)
}

/// Runs `command` to its end (killed past [`COMMAND_TIMEOUT`]), capturing its output.
pub fn run_bounded(mut command: Command) -> Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let status = wait_bounded(&mut child, COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{what} did not finish within {COMMAND_TIMEOUT:?}"));
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Waits for `child` up to `limit`; past it, kills and reaps it and returns `None`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {:?}", self.status, self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> Reply {
    request(addr, "POST", path, headers, body.to_string().as_bytes())
}

/// Bodies above this are sent raw (see [`request`]).
const RAW_BODY_BYTES: usize = 64 * 1024;

/// One request on a fresh connection, by the shared HTTP client
/// (`claimgate_testkit::http`, hyper's); a failure to be answered fails the
/// test. A body over [`RAW_BODY_BYTES`], which the server may refuse (413)
/// before reading it all, is written raw by a thread of its own while the
/// answer is read: a client stops at the first write the closed connection
/// fails and loses the answer (seen in CI), which is no test of the server.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    if body.len() > RAW_BODY_BYTES {
        return raw_request(addr, method, path, headers, body);
    }
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} {path} to {addr}: {e}"))
}

/// [`request`] as raw bytes on a socket, `Connection: close`, read to EOF.
fn raw_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    head.push_str("Content-Type: application/json\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    exchange(addr, raw)
}

fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, claimgate_testkit::http::ClientError> {
    let request = claimgate_testkit::http::Request::new(method, path, headers, body.to_vec());
    let r = claimgate_testkit::http::request(addr, &request, IO_TIMEOUT)?;
    Ok(Reply { status: r.status, headers: r.header_pairs(), body: r.body.to_vec() })
}

/// Writes `raw` and reads the answer to EOF. Large requests are written from
/// a second thread, so a server that answers before reading the whole body
/// (413) is heard rather than deadlocked on.
pub fn exchange(addr: SocketAddr, raw: Vec<u8>) -> Reply {
    let answer = exchange_bytes(addr, raw);
    parse_reply(&answer).unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(&answer)))
}

/// Writes `raw` on a fresh connection and returns every byte read until the
/// server closes it.
pub fn exchange_bytes(addr: SocketAddr, raw: Vec<u8>) -> Vec<u8> {
    try_exchange_bytes(addr, raw).unwrap_or_else(|e| panic!("{e}"))
}

/// A `POST` whose failure to connect or to be answered (a server going away
/// under a flood) is `None` rather than a panic.
pub fn try_post(addr: SocketAddr, path: &str, body: &Value) -> Option<Reply> {
    try_request(addr, "POST", path, &[], body.to_string().as_bytes()).ok()
}

fn try_exchange_bytes(addr: SocketAddr, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let writer = if raw.len() > 64 * 1024 {
        let mut w = stream.try_clone().unwrap();
        Some(std::thread::spawn(move || {
            let _ = w.write_all(&raw);
        }))
    } else {
        stream.write_all(&raw).map_err(|e| format!("writing to {addr}: {e}"))?;
        None
    };
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // The server may reset a connection whose body it did not read; keep what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(e) => return Err(format!("reading from {addr} after {} bytes: {e}", answer.len())),
        }
    }
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(answer)
}

/// The one HTTP response `raw` holds (anything after it is ignored).
pub fn parse_reply(raw: &[u8]) -> Option<Reply> {
    parse_one_reply(raw).map(|(reply, _)| reply)
}

/// Every response in `raw`, in order (pipelining); `None` if any is cut short.
pub fn parse_replies(mut raw: &[u8]) -> Option<Vec<Reply>> {
    let mut replies = Vec::new();
    while !raw.is_empty() {
        let (reply, used) = parse_one_reply(raw)?;
        replies.push(reply);
        raw = &raw[used..];
    }
    Some(replies)
}

/// The first response in `raw` and how many bytes it took.
fn parse_one_reply(raw: &[u8]) -> Option<(Reply, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (body, used) = if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().ok()?;
        (rest.get(..len)?.to_vec(), len)
    } else {
        (rest.to_vec(), rest.len())
    };
    Some((Reply { status, headers, body }, end + 4 + used))
}

/// A chunked body and how many bytes of `raw` it took.
fn dechunk(raw: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let eol = at + raw[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[at..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = eol + 2;
        if size == 0 {
            // No trailers: the final CRLF.
            return Some((out, at + 2));
        }
        out.extend_from_slice(raw.get(at..at + size)?);
        at += size + 2;
    }
}

// ---------------------------------------------------------------------------
// Event and claim builders.

pub fn designated(institution: &str, effective: &str) -> Value {
    json!({"type": "institution_designated", "institution": institution, "effective": effective})
}

pub fn registered(practitioner: &str, institution: &str, effective: &str) -> Value {
    json!({"type": "practitioner_registered", "practitioner": practitioner, "institution": institution,
           "effective": effective})
}

pub fn violation(id: &str, practitioner: &str, effective: &str, points: u32, severity: &str) -> Value {
    json!({"type": "violation_scored", "violation_id": id, "practitioner": practitioner, "institution": INST,
           "effective": effective, "points": points, "severity": severity, "responsibility": "primary"})
}

pub fn claim(practitioner: &str, service_date: &str, emergency: bool) -> Value {
    json!({"practitioner_id": practitioner, "institution_id": INST, "service_date": service_date,
           "emergency": emergency})
}

pub fn with(mut value: Value, key: &str, v: Value) -> Value {
    value[key] = v;
    value
}

pub fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

/// What an error answer must say about `field`.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    /// `field` names this field.
    Is(&'static str),
    /// No `field`: the error is not about one field.
    Absent,
    /// Not checked.
    Any,
}

/// Asserts an error answer: status, JSON content type, `error` code, a
/// non-empty `message`, and `field`.
pub fn assert_error(what: &str, reply: &Reply, status: u16, error: &str, field: Field) {
    assert_eq!(reply.status, status, "{what}: status (body {})", reply.text());
    assert!(
        reply.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: content-type {:?}",
        reply.header("content-type")
    );
    let body = reply.json();
    assert_eq!(body["error"], error, "{what}: error code in {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: no message in {body}");
    let expected = match field {
        Field::Is(name) => Some(name),
        Field::Absent => None,
        Field::Any => return,
    };
    assert_eq!(body.get("field").and_then(Value::as_str), expected, "{what}: field in {body}");
}
