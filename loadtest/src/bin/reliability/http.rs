//! The campaigns' client: the shared blocking keep-alive client
//! (`claimgate_testkit::http::Blocking`, hyper's), one per worker thread,
//! every exchange under a timeout, so a killed or hung gate turns into an
//! error, never a stuck campaign; a failure reconnects on the next call.

use claimgate_testkit::http::{Blocking, Request};
use std::net::SocketAddr;
use std::time::Duration;

/// One keep-alive connection to a loopback address (reopened after an error).
pub struct Http(Blocking);

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
        Http(Blocking::new(addr, timeout))
    }

    /// Sends one request; an error leaves the connection closed (the next
    /// call reconnects). `token`: the admin bearer token, if any.
    pub fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> std::io::Result<Response> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let request = Request::new(method, path, &headers, body.to_vec());
        self.0
            .send(&request)
            .map(|r| Response { status: r.status, body: r.body.to_vec() })
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}
