//! The socket side (the only module that touches glommio): a listener on
//! every shard, all bound to the same port with SO_REUSEPORT so the kernel
//! spreads connections, and one task per connection on the shard that
//! accepted it.

pub mod admission;
mod connection;
pub mod internal;
pub mod mesh;
pub mod peer;
mod socket_io;
pub mod tls;

pub(crate) use socket_io::Stream;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::{Either, select};

use crate::limits::{IN_FLIGHT_BYTES_MAX_PER_SHARD, REQUEST_BYTES_MAX, SLOW_REQUEST_LOG};
use admission::{Connections, PerIp};

/// How often the accept loop looks at the stop condition.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Kafka's `connections.max.idle.ms` default (10 minutes).
pub const CONNECTIONS_MAX_IDLE: Duration = Duration::from_secs(600);

/// Settings of the shards' listeners (shared by all shards).
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// The listener's name (Kafka's listener name: `CLIENT`, `INTERNAL`).
    pub name: Arc<str>,
    pub listen: SocketAddr,
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// How often the accept loop looks at the stop condition.
    pub stop_poll_interval: Duration,
    /// `connections.max.idle.ms`.
    pub connections_max_idle: Duration,
    /// `max.connections.per.ip`, counted over every shard.
    pub per_ip: Arc<PerIp>,
    /// Request bytes all connections of a shard may hold read and not yet
    /// answered (Kafka's `queued.max.request.bytes`, per shard).
    pub in_flight_bytes_per_shard: usize,
    /// A request answered this long after it was read is logged, with where
    /// the time went (at most one line a second per shard).
    pub slow_request_log: Duration,
    /// SASL on this listener (SASL_PLAINTEXT, or SASL_SSL with `tls`).
    pub sasl: Option<Arc<crate::handlers::sasl::SaslConfig>>,
    /// TLS on this listener (SSL, or SASL_SSL with `sasl`).
    pub tls: Option<Arc<tls::Tls>>,
}

impl ListenerConfig {
    pub fn new(listen: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            name: Arc::from(crate::frame::DEFAULT_LISTENER),
            listen,
            request_bytes_max: REQUEST_BYTES_MAX,
            stop_poll_interval: STOP_POLL_INTERVAL,
            connections_max_idle: CONNECTIONS_MAX_IDLE,
            per_ip: PerIp::new(usize::MAX),
            in_flight_bytes_per_shard: IN_FLIGHT_BYTES_MAX_PER_SHARD,
            slow_request_log: SLOW_REQUEST_LOG,
            sasl: None,
            tls: None,
        }
    }
}

/// Binds the listener on the current shard. Every shard binds the same
/// address with SO_REUSEPORT, so the kernel spreads connections over them.
/// SO_REUSEADDR lets a restarted broker bind while the connections of the
/// one before it sit in TIME_WAIT (the broker's side closes first when it
/// dies: a broker killed under load left its port unusable for 60 s); it
/// does not let two sockets listen on one port, so a live broker is still
/// detected (`serve` checks that first).
pub fn bind(config: &ListenerConfig) -> std::io::Result<Listener> {
    Ok(Listener {
        listener: listen_reuseport(config.listen)?,
        config: config.clone(),
    })
}

/// A listening socket on `addr` with SO_REUSEADDR and SO_REUSEPORT (see
/// [`bind`]), as this shard's glommio listener.
pub(crate) fn listen_reuseport(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that we own
    // and hand over whole (into_raw_fd gives up our ownership).
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Connections the kernel queues before the shard accepts them.
const LISTEN_BACKLOG: i32 = 1024;

/// A bound listener of one shard.
#[derive(Debug)]
pub struct Listener {
    listener: glommio::net::TcpListener,
    config: ListenerConfig,
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr().map_err(std::io::Error::from)
    }

    /// Accepts connections until `stopped()` says so; each connection runs
    /// as its own task on this shard. Between accepts it closes idle
    /// connections (`connections.max.idle.ms`).
    pub async fn serve(self, shard: Rc<crate::broker::Shard>, stopped: impl Fn() -> bool) {
        let shard_budget = Rc::new(connection::ShardBudgets::new(
            self.config.in_flight_bytes_per_shard,
        ));
        let connections = Connections::new(self.config.connections_max_idle);
        let config = &self.config;
        accept_loop(
            &self.listener,
            config,
            &connections,
            stopped,
            |stream, _, activity| {
                connection::run(
                    stream,
                    connection::Settings {
                        request_bytes_max: config.request_bytes_max,
                        slow_request_log: config.slow_request_log,
                        sasl: config.sasl.clone(),
                        tls: config.tls.clone(),
                        listener: Arc::clone(&config.name),
                    },
                    Rc::clone(&shard),
                    Rc::clone(&shard_budget),
                    activity,
                )
            },
        )
        .await;
    }
}

/// A shard's accept loop for a listener (the Kafka one, the HTTP one):
/// accepts until `stopped()`, closing the connections of `connections`
/// idle past `connections.max.idle.ms` between accepts. A connection is
/// refused (closed at once, with a log line) when this shard has
/// [`CONNECTIONS_MAX_PER_SHARD`](crate::limits::CONNECTIONS_MAX_PER_SHARD)
/// on this listener or its address has `max.connections.per.ip` on all of
/// them; otherwise `serve_one` makes its task (from the stream, the peer
/// and the connection's activity, which it marks busy while a request is
/// under way), run on this shard until done or swept.
pub(crate) async fn accept_loop<F, T>(
    listener: &glommio::net::TcpListener,
    config: &ListenerConfig,
    connections: &Connections,
    stopped: impl Fn() -> bool,
    mut serve_one: F,
) where
    F: FnMut(glommio::net::TcpStream, SocketAddr, Rc<admission::Activity>) -> T,
    T: std::future::Future<Output = ()> + 'static,
{
    let mut last_sweep = Instant::now();
    // One accept stays pending across the stop checks: a dropped accept
    // whose completion raced the cancellation would take a connection
    // from the kernel and never serve it. glommio adds a clone of this
    // task's waker at every poll of a pending accept, and a task allows
    // i16::MAX of them (about 27 minutes of 50 ms checks without a new
    // connection, then a panic): `quiet` polls it only when it woke.
    let mut accept = Box::pin(engine::rt::quiet(listener.accept()));
    while !stopped() {
        if last_sweep.elapsed() >= connections.sweep_interval() {
            last_sweep = Instant::now();
            let closed = connections.sweep(last_sweep);
            if closed > 0 {
                tracing::debug!(
                    closed,
                    "closed connections idle past connections.max.idle.ms"
                );
            }
        }
        let tick = std::pin::pin!(glommio::timer::sleep(config.stop_poll_interval));
        let Either::Left((accepted, _)) = select(accept.as_mut(), tick).await else {
            continue;
        };
        accept = Box::pin(engine::rt::quiet(listener.accept()));
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => {
                // Out of descriptors or memory: back off, then go on.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(config.stop_poll_interval).await;
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else {
            continue; // already gone
        };
        let listen = config.listen;
        if !connections.has_room() {
            tracing::warn!(%peer, %listen, max = crate::limits::CONNECTIONS_MAX_PER_SHARD, "refusing connection: this shard has its maximum");
            continue;
        }
        let Some(admitted) = config.per_ip.admit(peer.ip()) else {
            let open = config.per_ip.open_from(peer.ip());
            tracing::warn!(%peer, %listen, open, "refusing connection: max.connections.per.ip reached");
            continue;
        };
        let (abort, registration) = futures::future::AbortHandle::new_pair();
        let activity = connections.register(abort);
        let task = futures::future::Abortable::new(serve_one(stream, peer, activity), registration);
        spawn(task.map(move |_| drop(admitted)));
    }
}

/// Runs a task on this shard, detached (connections, mesh receivers).
pub(crate) fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(task).detach();
}
