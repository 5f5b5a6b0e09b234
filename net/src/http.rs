//! The HTTP listener (`--http-listen`, config `http-listen`; off unless
//! set), served by every shard like the Kafka listener (SO_REUSEPORT), with
//! hyper's HTTP/1.1 server over the shard's own sockets through a small
//! adapter ([`Io`]). So far: `GET /metrics` (Prometheus, [`crate::metrics`]);
//! every other path is a JSON 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::AsyncRead as _;
use futures::AsyncWrite as _;
use futures::future::{Either, select};
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};

use crate::broker::Shard;
use crate::metrics::{self, PartitionSize, Scrape};

/// The content type of the prometheus-client text encoder's output.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How often the accept loop looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A shard's HTTP listener.
#[derive(Debug)]
pub struct HttpListener {
    listener: glommio::net::TcpListener,
}

/// Binds `addr` on this shard (SO_REUSEPORT: every shard binds it).
pub fn bind(addr: SocketAddr) -> std::io::Result<HttpListener> {
    Ok(HttpListener {
        listener: crate::server::listen_reuseport(addr)?,
    })
}

impl HttpListener {
    /// Serves connections until `stopped()`; each connection is a task.
    pub async fn serve(self, shard: Rc<Shard>, stopped: impl Fn() -> bool) {
        let mut accept = Box::pin(engine::rt::quiet(self.listener.accept()));
        while !stopped() {
            let tick = std::pin::pin!(glommio::timer::sleep(STOP_POLL));
            let Either::Left((accepted, _)) = select(accept.as_mut(), tick).await else {
                continue;
            };
            accept = Box::pin(engine::rt::quiet(self.listener.accept()));
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    glommio::timer::sleep(STOP_POLL).await;
                    continue;
                }
            };
            let shard = Rc::clone(&shard);
            crate::server::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let shard = Rc::clone(&shard);
                    async move { Ok::<_, Infallible>(route(&shard, request).await) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(Io(stream), service)
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
            });
        }
    }
}

/// Routes a request.
async fn route(shard: &Shard, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let text = metrics::encode(scrape(shard).await);
            Response::builder()
                .header("content-type", OPENMETRICS)
                .body(Full::new(Bytes::from(text)))
                .unwrap_or_else(|_| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "UNKNOWN_SERVER_ERROR",
                        "response",
                    )
                })
        }
        (_, "/metrics") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_REQUEST",
            "/metrics answers GET",
        ),
        (_, path) => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("no such resource: {path}"),
        ),
    }
}

/// A JSON error: the Kafka-style error name and a message.
fn error(status: StatusCode, name: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "{{\"error\":{},\"message\":{}}}",
        json_string(name),
        json_string(message)
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = "application/json".parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Every shard's counts, and the size of every partition this broker holds.
async fn scrape(shard: &Shard) -> Scrape {
    let shards = shard.gather_metrics().await;
    let metadata = shard.metadata();
    let mut partitions = Vec::new();
    for topic in metadata.topics() {
        for (partition, size) in shard.replica_sizes(&topic.name, 0..topic.partitions).await {
            if let Some(bytes) = size {
                partitions.push(PartitionSize {
                    topic: topic.name.clone(),
                    partition,
                    bytes,
                });
            }
        }
    }
    Scrape { shards, partitions }
}

/// A shard's socket as hyper's IO: glommio's stream is a futures
/// `AsyncRead`/`AsyncWrite`; reads go through a small buffer into hyper's
/// (uninitialized) one.
struct Io(glommio::net::TcpStream);

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut chunk = [0u8; 8192];
        let room = buf.remaining().min(chunk.len());
        let Some(target) = chunk.get_mut(..room) else {
            return Poll::Ready(Ok(()));
        };
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, target))?;
        if let Some(read) = chunk.get(..n) {
            buf.put_slice(read);
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
