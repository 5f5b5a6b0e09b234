//! The internal listener: the links between brokers of a cluster, on shard
//! 0. Each broker has one outbound connection to every peer, on which it
//! writes; what it reads comes in on the peers' connections to it. Frames
//! are `replication::quorum::wire`'s; a connection that sends anything else
//! is closed with a log line.
//!
//! With `internal-ssl`, every link is TLS both ways authenticated: a
//! broker presents its certificate (`ssl-certificate`) to the peer it
//! calls and requires one signed by `ssl-ca` from the peer calling it,
//! whose principal (the certificate's subject) must be allowed
//! ClusterAction on the cluster when an authorizer is on (a super user,
//! as Kafka's brokers are).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use futures::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use futures::{FutureExt, StreamExt};
use replication::quorum::wire::{self, Frame, PREFIX_BYTES};

use super::Stream;
use super::tls::Tls;

/// Frames queued for one peer while its connection is down or slow; more
/// are dropped (Raft sends again; a controller request times out and is
/// retried).
const PEER_QUEUE_FRAMES: usize = 4096;
/// A frame queued longer than this (its peer unreachable meanwhile) is
/// dropped, not sent late: Raft's messages are stale by then (heartbeats
/// every 200 ms, elections after 1 to 2 s), and a voter back after a while
/// must be told where the leader's log is now, not replayed what it
/// missed one append at a time (from a log the leader may have compacted
/// since: it gets the snapshot instead). A controller request is retried.
const PEER_FRAME_STALE: Duration = Duration::from_secs(1);
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

/// What a peer's connection is, once it said Hello.
enum Accepted {
    /// The metadata quorum's link: its frames go to the voter.
    Quorum,
    /// A data connection of the ISR protocol for this broker's `shard`.
    Data { shard: u32 },
}

/// Where an accepted peer connection goes: quorum frames to `deliver`
/// (which answers false once nobody listens), data connections, whole, to
/// `data` (the peer's id, the shard, the stream, its address). `known`
/// says which node ids may connect, `admits` which principals (a TLS
/// peer's certificate subject) from which hosts.
pub(crate) trait PeerSink: Clone + 'static {
    fn known(&self, node_id: u64) -> bool;
    fn admits(&self, principal: &str, host: &str) -> bool;
    fn deliver(&self, node_id: u64, frame: Frame) -> bool;
    fn data(&self, node_id: u64, shard: u32, stream: Stream, peer: Option<SocketAddr>);
}

impl InternalListener {
    /// Accepts peers, each handed to `sink` once it introduced itself;
    /// with `tls`, once it also proved who it is.
    pub(crate) async fn serve(
        self,
        cluster_id: String,
        sink: impl PeerSink,
        tls: Option<Arc<Tls>>,
    ) {
        loop {
            match self.listener.accept().await {
                Ok(stream) => {
                    let peer = stream.peer_addr().ok();
                    let (cluster_id, sink) = (cluster_id.clone(), sink.clone());
                    let tls = tls.clone();
                    super::spawn(async move {
                        let Some(stream) = secure(stream, tls.as_deref(), peer, &sink).await else {
                            return;
                        };
                        if let Err(reason) = read_peer(stream, peer, &cluster_id, sink).await {
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

/// A peer's connection as the link reads it: with `tls`, after the
/// handshake, from a peer whose certificate the sink admits (else `None`,
/// logged).
async fn secure(
    stream: glommio::net::TcpStream,
    tls: Option<&Tls>,
    peer: Option<SocketAddr>,
    sink: &impl PeerSink,
) -> Option<Stream> {
    let Some(tls) = tls else {
        return Some(Stream::Plain(stream));
    };
    let shown = peer.map_or_else(String::new, |p| p.to_string());
    let (stream, principal) = super::tls::accept(stream, tls, &shown).await?;
    let host = peer.map_or_else(String::new, |p| p.ip().to_string());
    if !sink.admits(&principal, &host) {
        crate::handlers::sasl::log_failure(
            "internal connection refused",
            &shown,
            &format!("{principal} may not act for the cluster (ClusterAction)"),
        );
        return None;
    }
    Some(stream)
}

/// Reads one length-prefixed frame's bytes (after the prefix), at most
/// `max`; `None` at a clean end of the stream.
pub async fn read_frame_bytes(
    stream: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Option<Vec<u8>>, String> {
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
    Ok(Some(body))
}

async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Option<Frame>, String> {
    match read_frame_bytes(stream, max).await? {
        Some(body) => wire::decode(&body).map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

async fn read_peer(
    mut stream: Stream,
    peer: Option<SocketAddr>,
    cluster_id: &str,
    sink: impl PeerSink,
) -> Result<(), String> {
    let hello = read_frame(&mut stream, HELLO_BYTES_MAX);
    let timeout = engine::rt::sleep(HELLO_TIMEOUT);
    let introduced = |node_id: u64, theirs: &str| {
        if theirs != cluster_id {
            return Err(format!("node {node_id} belongs to cluster {theirs:?}"));
        }
        if !sink.known(node_id) {
            return Err(format!("node {node_id} is not a member"));
        }
        Ok(node_id)
    };
    let (from, accepted) = futures::select! {
        hello = hello.fuse() => match hello? {
            Some(Frame::Hello { node_id, cluster_id: theirs }) => {
                (introduced(node_id, &theirs)?, Accepted::Quorum)
            }
            Some(Frame::DataHello { node_id, cluster_id: theirs, shard }) => {
                (introduced(node_id, &theirs)?, Accepted::Data { shard })
            }
            Some(other) => return Err(format!("expected Hello, got {other:?}")),
            None => return Ok(()),
        },
        () = timeout.fuse() => return Err("no Hello in time".into()),
    };
    if let Accepted::Data { shard } = accepted {
        // Unbuffered reads: nothing past the Hello was consumed.
        sink.data(from, shard, stream, peer);
        return Ok(());
    }
    loop {
        match read_frame(&mut stream, wire::FRAME_BYTES_MAX).await? {
            None => return Ok(()),
            Some(Frame::Hello { .. } | Frame::DataHello { .. }) => {
                return Err("a second Hello".into());
            }
            // A cut-off broker hears nothing (tests of a partition).
            Some(_) if crate::failpoint::cut_off() => {}
            Some(frame) => {
                if !sink.deliver(from, frame) {
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
    queue: mpsc::Sender<Queued>,
}

impl PeerLink {
    /// Starts the link's task; `hello` is written first on every
    /// connection, over TLS with `tls` (the peer's certificate must name
    /// `addr`'s address).
    pub fn start(peer: u64, addr: SocketAddr, hello: Vec<u8>, tls: Option<Arc<Tls>>) -> PeerLink {
        let (queue, frames) = mpsc::channel(PEER_QUEUE_FRAMES);
        super::spawn(write_peer(peer, addr, hello, tls, frames));
        PeerLink { queue }
    }

    /// Queues an encoded frame; dropped if the queue is full.
    pub fn send(&mut self, frame: Vec<u8>) {
        if self.queue.try_send((Instant::now(), frame)).is_err() {
            tracing::debug!("peer queue full: frame dropped");
        }
    }
}

/// A connection to `addr`, over TLS with `tls`.
async fn connect(addr: SocketAddr, tls: Option<&Tls>) -> std::io::Result<Stream> {
    let stream = glommio::net::TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => Ok(Stream::Plain(stream)),
        Some(tls) => super::tls::connect(stream, tls, &addr.ip().to_string()).await,
    }
}

/// Writes `frame` whole (a TLS stream's records flushed too).
async fn write_frame(stream: &mut Stream, frame: &[u8]) -> std::io::Result<()> {
    stream.write_all(frame).await?;
    if !matches!(stream, Stream::Plain(_)) {
        stream.flush().await?;
    }
    Ok(())
}

async fn write_peer(
    peer: u64,
    addr: SocketAddr,
    hello: Vec<u8>,
    tls: Option<Arc<Tls>>,
    mut frames: mpsc::Receiver<Queued>,
) {
    let mut backoff = RECONNECT_FIRST;
    // A fresh frame taken off the queue while dropping stale ones.
    let mut held = None;
    let mut logged = false;
    loop {
        let mut stream = match connect(addr, tls.as_deref()).await {
            Ok(stream) => stream,
            Err(e) => {
                if !logged {
                    tracing::info!(peer, %addr, error = %e, "cannot reach peer; retrying");
                    logged = true;
                }
                engine::rt::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_LAST);
                held = drop_stale(&mut frames, held.take());
                continue;
            }
        };
        if logged {
            tracing::info!(peer, %addr, "peer reached");
        }
        logged = false;
        backoff = RECONNECT_FIRST;
        if write_frame(&mut stream, &hello).await.is_err() {
            continue;
        }
        held = drop_stale(&mut frames, held.take());
        loop {
            let next = match held.take() {
                Some(frame) => Some(frame),
                None => frames.next().await,
            };
            let Some((queued, frame)) = next else {
                return; // the cluster stopped
            };
            if queued.elapsed() > PEER_FRAME_STALE {
                continue;
            }
            if crate::failpoint::cut_off() {
                continue; // lost on the way (tests of a partition)
            }
            if let Err(e) = write_frame(&mut stream, &frame).await {
                tracing::info!(peer, %addr, error = %e, "peer connection lost");
                break;
            }
        }
    }
}

/// A queued frame: when it was queued, and its bytes.
type Queued = (Instant, Vec<u8>);

/// Drops the frames queued longer than [`PEER_FRAME_STALE`] ago, `held`
/// first (taken off the queue earlier); returns the first fresh one. The
/// queue is in order: the frames after a fresh one are fresh.
fn drop_stale(frames: &mut mpsc::Receiver<Queued>, held: Option<Queued>) -> Option<Queued> {
    let mut dropped = 0usize;
    let mut next = held.or_else(|| frames.try_recv().ok());
    while next
        .as_ref()
        .is_some_and(|(queued, _)| queued.elapsed() > PEER_FRAME_STALE)
    {
        dropped += 1;
        next = frames.try_recv().ok();
    }
    if dropped > 0 {
        tracing::debug!(dropped, "stale frames to an unreachable peer dropped");
    }
    next
}
