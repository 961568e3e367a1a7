//! The gate under test as a child process: `claimgate serve` on free loopback
//! ports and a data directory of the campaign's (made by `claimgate init`), started, killed with
//! SIGKILL, or stopped with SIGTERM. Its standard error goes to a log file;
//! lines that matter to a campaign (the fault-injection pause) are signalled.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The admin token the campaigns give the gate.
pub const TOKEN: &str = "reliability-campaign-token";
/// Longest a gate may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a gate may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// What the gate logs when a snapshot write reaches the injected pause.
const PAUSE_MARKER: &str = "fault injection: pausing a snapshot write";

/// A running gate; dropping it kills the process.
pub struct Gate {
    child: Child,
    pub check: SocketAddr,
    pub admin: SocketAddr,
    /// Receives one message each time a snapshot write reaches its pause.
    pub paused: mpsc::Receiver<()>,
    pub started_in: Duration,
}

/// How to start a gate.
#[derive(Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    pub extra: Vec<String>,
}

/// A gate process that may not be up yet.
pub struct Spawned {
    pub child: Child,
    /// The listening line, or why there is none.
    lines: mpsc::Receiver<Result<String, String>>,
    paused: mpsc::Receiver<()>,
}

impl Spawned {
    /// Whether it has printed its listening line (it is up) by now.
    pub fn is_listening(&self) -> bool {
        matches!(self.lines.try_recv(), Ok(Ok(_)))
    }
}

impl Launch {
    /// `claimgate init --data DATA`: the new, empty ledger every campaign
    /// starts from (a start without one is refused, so a restart that found
    /// the ledger gone would fail rather than serve an empty one).
    pub fn init(&self) -> Result<(), String> {
        let out = Command::new(&self.binary)
            .arg("init")
            .arg("--data")
            .arg(&self.data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {} init: {e}", self.binary.display()))?;
        if !out.status.success() {
            return Err(format!(
                "claimgate init --data {} failed ({}): {}",
                self.data.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Spawns the gate without waiting for it (to kill it during start-up).
    pub fn spawn(&self) -> Result<Spawned, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open the gate log {}: {e}", self.log.display()))?;
        let mut child = Command::new(&self.binary)
            .arg("serve")
            .arg("--data")
            .arg(&self.data)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(&self.extra)
            .env("CLAIMGATE_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = line_tx.send(match reader.read_line(&mut line) {
                Ok(0) => Err("the gate exited before printing its listening line".to_owned()),
                Ok(_) => Ok(line),
                Err(e) => Err(e.to_string()),
            });
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let (pause_tx, pause_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = log;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(PAUSE_MARKER) {
                    let _ = pause_tx.send(());
                }
                let _ = writeln!(log, "{line}");
            }
        });
        Ok(Spawned { child, lines: line_rx, paused: pause_rx })
    }

    /// Starts the gate and waits for its listening line.
    pub fn start(&self) -> Result<Gate, String> {
        let started = Instant::now();
        let Spawned { mut child, lines, paused } = self.spawn()?;
        let line = match lines.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{e} (see {})", self.log.display()));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the gate did not start within {START_TIMEOUT:?} (see {})", self.log.display()));
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("listening line {line:?}: {e}"))?;
        let addr = |k: &str| -> Result<SocketAddr, String> {
            v["listening"][k].as_str().and_then(|a| a.parse().ok()).ok_or_else(|| format!("no {k} address in {line}"))
        };
        Ok(Gate { check: addr("check")?, admin: addr("admin")?, child, paused, started_in: started.elapsed() })
    }
}

impl Gate {
    /// SIGKILL, as a power cut would: no shutdown code runs.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded); true if it exited by itself with success.
    pub fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `claimgate` binary beside this one (both are built into one target
/// directory), unless given.
pub fn default_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.parent().unwrap_or(Path::new(".")).join("claimgate")
}
