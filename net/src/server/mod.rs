//! The socket side (the only module that touches glommio): a listener on
//! every shard, all bound to the same port with SO_REUSEPORT so the kernel
//! spreads connections, and one task per connection on the shard that
//! accepted it.

mod connection;
pub mod mesh;

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::{Either, select};

use crate::limits::REQUEST_BYTES_MAX;

/// How often the accept loop looks at the stop condition.
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Settings of one shard's listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    pub listen: SocketAddr,
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// How often the accept loop looks at the stop condition.
    pub stop_poll_interval: Duration,
}

impl ListenerConfig {
    pub fn new(listen: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            listen,
            request_bytes_max: REQUEST_BYTES_MAX,
            stop_poll_interval: STOP_POLL_INTERVAL,
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
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let domain = if config.listen.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&config.listen.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a bound, listening TCP socket that we own
    // and hand over whole (into_raw_fd gives up our ownership).
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok(Listener {
        listener,
        config: *config,
    })
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
    /// as its own task on this shard.
    pub async fn serve(self, shard: std::rc::Rc<crate::broker::Shard>, stopped: impl Fn() -> bool) {
        let request_bytes_max = self.config.request_bytes_max;
        let shard_budget = std::rc::Rc::new(connection::ShardBudgets::new());
        // One accept stays pending across the stop checks: a dropped accept
        // whose completion raced the cancellation would take a connection
        // from the kernel and never serve it. glommio adds a clone of this
        // task's waker at every poll of a pending accept, and a task allows
        // i16::MAX of them (about 27 minutes of 50 ms checks without a new
        // connection, then a panic): `quiet` polls it only when it woke.
        let mut accept = Box::pin(engine::rt::quiet(self.listener.accept()));
        while !stopped() {
            let tick = std::pin::pin!(glommio::timer::sleep(self.config.stop_poll_interval));
            let Either::Left((accepted, _)) = select(accept.as_mut(), tick).await else {
                continue;
            };
            accept = Box::pin(engine::rt::quiet(self.listener.accept()));
            match accepted {
                Ok(stream) => {
                    spawn(connection::run(
                        stream,
                        request_bytes_max,
                        std::rc::Rc::clone(&shard),
                        std::rc::Rc::clone(&shard_budget),
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    glommio::timer::sleep(self.config.stop_poll_interval).await;
                }
            }
        }
    }
}

/// Runs a task on this shard, detached (connections, mesh receivers).
pub(crate) fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(task).detach();
}
