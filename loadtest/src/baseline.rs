//! `loadtest baseline`: a server on the gate's stack (tokio multi-thread
//! runtime, hyper 1.x http1 with keep-alive, nodelay, the same allocator) that
//! reads each request body and answers a fixed small JSON body, doing no other
//! work. What the gate does per request costs whatever it adds to this.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

/// The fixed answer: the shape and size of a gate check answer.
pub const BODY: &str = r#"{"advance_payment_withheld":false,"inspection":"normal","institution_grade":"C","reason":"ok","seq":0,"verdict":"settle","waived":[]}"#;

async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body as the gate does, so keep-alive framing and the bytes moved are the same.
    let _ = req.into_body().collect().await;
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .expect("a valid response"))
}

/// Serves until SIGTERM or Ctrl-C; prints `{"listening":"ADDR"}` first.
pub fn run(listen: SocketAddr) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        println!("{}", serde_json::json!({ "listening": bound.to_string() }));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let mut shutdown = std::pin::pin!(claimgate::server::shutdown_signal());
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("loadtest baseline: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer));
                let _ = conn.await;
            });
        }
        eprintln!("loadtest baseline: stopped");
        Ok(())
    })
}
