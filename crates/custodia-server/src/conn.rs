//! Connections and the clients that hold them: bounds on how long a slow or idle client may keep a
//! connection, how many connections there are at once, and how long a stop waits for them.
//!
//! axum's own `serve` has no header timeout, so one client that sent half its headers kept its
//! connection (and a stop) waiting forever. Here each connection has a watchdog that knows which
//! phase the connection is in, from the bytes it moves and the requests it serves:
//!
//! - **head**: from the first byte of a request (or from the accept) until its headers are
//!   complete — at most `header_read_timeout`;
//! - **in a request**: a handler runs; its body has its own deadline (`body_read_timeout`, see
//!   [`DeadlineBody`]) and the handler's own work is the server's, so no bound here;
//! - **idle**: no request in flight (between kept-alive requests, or writing an answer the client
//!   does not read) — at most `idle_timeout` without a byte moving.
//!
//! A connection over its bound is dropped, which closes the socket.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Bounds on connections and on how long clients may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From a request's first byte (or the accept) until its headers are complete.
    pub header_read_timeout: Duration,
    /// From a request's headers until its body is complete.
    pub body_read_timeout: Duration,
    /// How long a connection may stay with no request in flight and no byte moving.
    pub idle_timeout: Duration,
    /// Most connections at once; more wait in the listen queue until one closes.
    pub max_connections: usize,
    /// After a stop signal, how long open connections may take to finish; then they are dropped
    /// (the store is flushed either way).
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1_024,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Where a connection is, as far as its bounds are concerned.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request's headers since this instant.
    Head(Instant),
    /// This many requests are being handled.
    InRequest(usize),
    /// Nothing in flight.
    Idle,
}

/// A connection's phase and when a byte last moved.
struct Activity {
    state: Mutex<(Phase, Instant)>,
    /// Wakes the watchdog when the phase changes (its deadline may now be earlier).
    phase_changed: Notify,
}

impl Activity {
    fn new(now: Instant) -> Activity {
        Activity {
            state: Mutex::new((Phase::Head(now), now)),
            phase_changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, Instant)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self, now: Instant) {
        let mut state = self.lock();
        state.1 = now;
        if let Phase::Idle = state.0 {
            state.0 = Phase::Head(now);
            self.phase_changed.notify_one();
        }
    }

    fn wrote(&self, now: Instant) {
        self.lock().1 = now;
    }

    fn request_started(self: &Arc<Activity>) -> InRequest {
        let mut state = self.lock();
        state.0 = match state.0 {
            Phase::InRequest(n) => Phase::InRequest(n + 1),
            Phase::Head(_) | Phase::Idle => Phase::InRequest(1),
        };
        self.phase_changed.notify_one();
        InRequest(self.clone())
    }

    /// When the connection is over its bound if nothing changes, and which bound.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        let (phase, last) = *self.lock();
        match phase {
            Phase::Head(since) => Some((since + limits.header_read_timeout, "header read timeout")),
            Phase::Idle => Some((last + limits.idle_timeout, "idle timeout")),
            Phase::InRequest(_) => None,
        }
    }

    /// Resolves once the connection is over one of its bounds, naming it.
    async fn expired(&self, limits: &ConnectionLimits) -> &'static str {
        loop {
            // Bytes moving only push the deadline later: the sleep ends at the old one and
            // looks again. A phase change may bring it earlier, so it wakes the sleep.
            let wake_at = match self.deadline(limits) {
                Some((deadline, reason)) if deadline <= Instant::now() => return reason,
                Some((deadline, _)) => deadline,
                None => Instant::now() + limits.idle_timeout,
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => {}
                () = self.phase_changed.notified() => {}
            }
        }
    }
}

/// A request in flight; dropping it (the handler finished or was cancelled) makes the
/// connection idle once no other request is in flight.
struct InRequest(Arc<Activity>);

impl Drop for InRequest {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut state = self.0.lock();
        state.0 = match state.0 {
            Phase::InRequest(n) if n > 1 => Phase::InRequest(n - 1),
            _ => Phase::Idle,
        };
        state.1 = now;
        self.0.phase_changed.notify_one();
    }
}

/// A socket that reports the bytes it moves to its connection's [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            self.activity.read(Instant::now());
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.activity.wrote(Instant::now());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves one connection until it closes, goes over a bound, or is asked to stop (then it
/// finishes the request in flight and closes; the caller drops it after the shutdown timeout).
pub(crate) async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let in_request = requests.request_started();
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                drop(in_request);
                response
            }
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            reason = activity.expired(&limits) => {
                tracing::debug!(reason, "closing a slow or idle connection");
                return;
            }
            changed = stopping.wait_for(|stop| *stop), if !asked_to_stop => {
                asked_to_stop = true;
                if changed.is_err() {
                    // The server is gone: nothing will drop this connection later.
                    return;
                }
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The body was not complete within `body_read_timeout`.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was not complete in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body that fails with [`BodyTimedOut`] once its deadline passes.
pub(crate) struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    pub(crate) fn new(inner: Body, within: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an error, or one of its sources, is a body that timed out.
pub(crate) fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}
