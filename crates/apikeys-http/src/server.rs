//! Serving the router on a socket, with limits a slow or hostile client
//! cannot outlast.
//!
//! Rules:
//! - A client has [`ServeOptions::header_read_timeout`] (default 10 s) to
//!   send a request's headers, from the moment the connection waits for
//!   them; a connection that sends nothing, or trickles, is closed.
//! - A connection idle between requests (keep-alive) is closed after
//!   [`ServeOptions::idle_timeout`] (default 30 s).
//! - A request body must arrive within the router's body deadline (see
//!   `Config::body_timeout`); the request is then answered 408 and the
//!   connection closed.
//! - At most [`ServeOptions::max_connections`] connections are served at
//!   once (default 1024); more wait in the listen backlog, costing the
//!   server nothing.
//! - On shutdown the server stops accepting and at once closes every
//!   connection with no request in flight (idle, or still sending its
//!   headers); it lets requests in flight (a handler running, a body
//!   arriving) finish for up to [`ServeOptions::shutdown_grace`] (default
//!   10 s), then closes whatever is left: a stuck client cannot hold the
//!   process up.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::Service;

/// How [`serve`] treats connections. `ServeOptions::default()` is the
/// production setting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a client may take to send a request's headers (default
    /// 10 s).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests
    /// (default 30 s).
    pub idle_timeout: Duration,
    /// How many connections are served at once (default 1024).
    pub max_connections: usize,
    /// How long requests in flight may finish after shutdown begins
    /// (default 10 s).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    /// These options with another header timeout.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// These options with another idle timeout.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// These options with another connection cap.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// These options with another shutdown grace.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets
/// requests in flight finish within the grace period and closes the rest.
/// Each request carries its peer's [`ConnectInfo<SocketAddr>`].
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the cap, clients wait in the backlog.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a moment
                // rather than spin, and keep serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let options = options.clone();
        let stop = stop_rx.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, app, &options, stop).await;
            drop(slot);
        });
        // Reap finished connections as we go, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = tokio::time::sleep(options.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            () = &mut grace => {
                let left = connections.len();
                if left > 0 {
                    tracing::warn!(connections = left, "shutdown grace over: closing the connections left");
                }
                connections.abort_all();
                break;
            }
            next = connections.join_next() => if next.is_none() { break },
        }
    }
    Ok(())
}

/// One connection: HTTP/1.1 with the header timeout, closed when idle too
/// long or when shutdown begins (after the request in flight, if any).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    options: &ServeOptions,
    mut stop: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let idle_since = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let service = {
        let (in_flight, idle_since) = (in_flight.clone(), idle_since.clone());
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            let (in_flight, idle_since) = (in_flight.clone(), idle_since.clone());
            in_flight.fetch_add(1, Ordering::SeqCst);
            async move {
                let response = app.call(req).await;
                if in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                    *idle_since
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        tokio::time::Instant::now();
                }
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let tick = (options.idle_timeout / 4).max(Duration::from_millis(10));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            changed = stop.changed(), if !closing => {
                if changed.is_err() || *stop.borrow() {
                    if in_flight.load(Ordering::SeqCst) == 0 {
                        // Idle, or a request whose head has not arrived:
                        // nothing to finish, so nothing to wait for.
                        return;
                    }
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(tick), if !closing => {
                let idle_for = idle_since
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .elapsed();
                if in_flight.load(Ordering::SeqCst) == 0 && idle_for >= options.idle_timeout {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
