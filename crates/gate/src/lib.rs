//! The HTTP gate: `claimgate serve`.
//!
//! Two listeners: checks (billing and settlement systems; read-only) and
//! administration (agency staff; bearer token; ledger writes and the audit
//! log). Handlers answer checks from the current index version, never from
//! the ledger; a sync thread tails the ledger and swaps versions in.

mod api;
pub mod appends;
pub mod bodies;
pub mod clock;
mod config;
mod explain;
mod feed;
mod gate;
mod health;
pub mod limits;
mod lists;
mod metrics;
pub mod queries;
mod readjudication;
mod routes;
mod snapshots;
mod write_deadline;

pub use api::{parse_json, ApiError};
pub use config::{
    ServeConfig, DEFAULT_ADMIN_LISTEN, DEFAULT_ADMIN_MAX_CONNECTIONS, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_MIN_SEQ_WAIT, DEFAULT_READY_MAX_LAG,
    DEFAULT_READY_MAX_OUTAGE, DEFAULT_SNAPSHOT_EVERY_EVENTS, DEFAULT_WRITE_STALL_TIMEOUT, MAX_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
};
pub use gate::{Gate, StartError};
pub use snapshots::FaultPause;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use write_deadline::WriteDeadline;

/// Which listener a request arrived on; admin routes exist only on `Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Check,
    Admin,
}

/// Bound listeners, ready to serve.
pub struct Bound {
    pub check_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    check: TcpListener,
    admin: TcpListener,
}

/// Binds both listeners (port 0 picks a free port).
pub async fn bind(config: &ServeConfig) -> std::io::Result<Bound> {
    let check = TcpListener::bind(config.listen).await?;
    let admin = TcpListener::bind(config.admin_listen).await?;
    Ok(Bound { check_addr: check.local_addr()?, admin_addr: admin.local_addr()?, check, admin })
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (bounded by `config.shutdown_grace`), and stops the gate.
pub async fn serve(gate: Arc<Gate>, bound: Bound, shutdown: impl std::future::Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (accepted, which) = tokio::select! {
            a = bound.check.accept() => (a, Listener::Check),
            a = bound.admin.accept() => (a, Listener::Admin),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Over the listener's cap: close at once (the client sees EOF and may
        // retry) rather than leave it queued in the kernel's backlog. Idle
        // connections leave within the header read timeout, so the cap frees.
        let Some(permit) = gate.connection_permit(which) else {
            gate.metrics.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            continue;
        };
        // One client address may not hold more than its share of the cap.
        let Some(client_slot) = gate.client_slot(which, peer.ip()) else {
            gate.metrics.connections_refused_per_client.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            drop(permit);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let for_service = gate.clone();
        let service = hyper::service::service_fn(move |req| routes::handle(for_service.clone(), which, req));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(gate.config.header_read_timeout)
            .max_header_size(config::MAX_REQUEST_HEAD_BYTES)
            .keep_alive(true)
            .serve_connection(WriteDeadline::new(TokioIo::new(stream), gate.config.write_stall_timeout), service);
        let conn = graceful.watch(conn);
        let counted = gate.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                let metrics = &counted.metrics;
                if write_deadline::is_write_timeout(&e) {
                    metrics.write_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if e.is_timeout() {
                    metrics.header_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(permit);
            drop(client_slot);
        });
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    // Change streams never finish by themselves: end them now.
    gate.shutting_down.send_replace(true);
    drop(bound);
    if tokio::time::timeout(gate.config.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    gate.stop();
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when
/// this is called, not when the future is first polled, so a signal that
/// arrives in between is not lost (nor kills the process). Call it inside
/// the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term.take()) => {},
                _ = wait(int.take()) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
