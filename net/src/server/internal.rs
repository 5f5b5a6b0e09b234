//! The internal listener: the links between brokers of a cluster, on shard
//! 0. Each broker has one outbound connection to every peer, on which it
//! writes; what it reads comes in on the peers' connections to it. Frames
//! are `replication::quorum::wire`'s; a connection that sends anything else
//! is closed with a log line.

use std::net::SocketAddr;
use std::time::Duration;

use futures::channel::mpsc;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::{FutureExt, StreamExt};
use replication::quorum::wire::{self, Frame, PREFIX_BYTES};

/// Frames queued for one peer while its connection is down or slow; more
/// are dropped (Raft sends again; a controller request times out and is
/// retried).
const PEER_QUEUE_FRAMES: usize = 4096;
/// A connection must introduce itself within this long.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest frame before the peer introduced itself.
const HELLO_BYTES_MAX: usize = 1024;
/// Reconnection backoff, doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_LAST: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The bound internal listener.
#[derive(Debug)]
pub struct InternalListener {
    listener: glommio::net::TcpListener,
}

/// Binds `addr` (SO_REUSEADDR, so a restarted broker binds past its previous
/// life's TIME_WAIT connections).
pub fn bind_internal(addr: SocketAddr) -> std::io::Result<InternalListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(64)?;
    // SAFETY: a bound, listening TCP socket we own, handed over whole.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok(InternalListener { listener })
}

impl InternalListener {
    /// Accepts peers; every frame a peer sends after its Hello goes to
    /// `deliver` with the peer's id (which answers false once nobody
    /// listens). `known` says which node ids may connect.
    pub async fn serve(
        self,
        cluster_id: String,
        known: impl Fn(u64) -> bool + Clone + 'static,
        deliver: impl Fn(u64, Frame) -> bool + Clone + 'static,
    ) {
        loop {
            match self.listener.accept().await {
                Ok(stream) => {
                    let peer = stream.peer_addr().ok();
                    let (cluster_id, known, deliver) =
                        (cluster_id.clone(), known.clone(), deliver.clone());
                    super::spawn(async move {
                        if let Err(reason) = read_peer(stream, &cluster_id, known, deliver).await {
                            tracing::warn!(?peer, %reason, "internal connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "internal accept failed");
                    engine::rt::sleep(RECONNECT_LAST).await;
                }
            }
        }
    }
}

async fn read_frame(
    stream: &mut glommio::net::TcpStream,
    max: usize,
) -> Result<Option<Frame>, String> {
    let mut prefix = [0u8; PREFIX_BYTES];
    match stream.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = wire::frame_len(prefix).map_err(|e| e.to_string())?;
    if len > max {
        return Err(format!("frame of {len} bytes, at most {max} here"));
    }
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    wire::decode(&body).map(Some).map_err(|e| e.to_string())
}

async fn read_peer(
    mut stream: glommio::net::TcpStream,
    cluster_id: &str,
    known: impl Fn(u64) -> bool,
    deliver: impl Fn(u64, Frame) -> bool,
) -> Result<(), String> {
    let hello = read_frame(&mut stream, HELLO_BYTES_MAX);
    let timeout = engine::rt::sleep(HELLO_TIMEOUT);
    let from = futures::select! {
        hello = hello.fuse() => match hello? {
            Some(Frame::Hello { node_id, cluster_id: theirs }) => {
                if theirs != cluster_id {
                    return Err(format!("node {node_id} belongs to cluster {theirs:?}"));
                }
                if !known(node_id) {
                    return Err(format!("node {node_id} is not a member"));
                }
                node_id
            }
            Some(other) => return Err(format!("expected Hello, got {other:?}")),
            None => return Ok(()),
        },
        () = timeout.fuse() => return Err("no Hello in time".into()),
    };
    loop {
        match read_frame(&mut stream, wire::FRAME_BYTES_MAX).await? {
            None => return Ok(()),
            Some(Frame::Hello { .. }) => return Err("a second Hello".into()),
            Some(frame) => {
                if !deliver(from, frame) {
                    return Ok(()); // the cluster is stopping
                }
            }
        }
    }
}

/// One peer's outbound link: frames written in order on one connection,
/// reconnected (with backoff) when it fails; the frame in hand when it
/// failed is lost.
#[derive(Debug, Clone)]
pub struct PeerLink {
    queue: mpsc::Sender<Vec<u8>>,
}

impl PeerLink {
    /// Starts the link's task; `hello` is written first on every connection.
    pub fn start(peer: u64, addr: SocketAddr, hello: Vec<u8>) -> PeerLink {
        let (queue, frames) = mpsc::channel(PEER_QUEUE_FRAMES);
        super::spawn(write_peer(peer, addr, hello, frames));
        PeerLink { queue }
    }

    /// Queues an encoded frame; dropped if the queue is full.
    pub fn send(&mut self, frame: Vec<u8>) {
        if self.queue.try_send(frame).is_err() {
            tracing::debug!("peer queue full: frame dropped");
        }
    }
}

async fn write_peer(
    peer: u64,
    addr: SocketAddr,
    hello: Vec<u8>,
    mut frames: mpsc::Receiver<Vec<u8>>,
) {
    let mut backoff = RECONNECT_FIRST;
    let mut logged = false;
    loop {
        let connect = glommio::net::TcpStream::connect_timeout(addr, CONNECT_TIMEOUT);
        let mut stream = match connect.await {
            Ok(stream) => stream,
            Err(e) => {
                if !logged {
                    tracing::info!(peer, %addr, error = %e, "cannot reach peer; retrying");
                    logged = true;
                }
                engine::rt::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_LAST);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if logged {
            tracing::info!(peer, %addr, "peer reached");
        }
        logged = false;
        backoff = RECONNECT_FIRST;
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        loop {
            let Some(frame) = frames.next().await else {
                return; // the cluster stopped
            };
            if let Err(e) = stream.write_all(&frame).await {
                tracing::info!(peer, %addr, error = %e, "peer connection lost");
                break;
            }
        }
    }
}
