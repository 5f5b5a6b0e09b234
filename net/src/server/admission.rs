//! Who may stay connected: at most `max.connections.per.ip` connections
//! from one address across all shards, at most
//! [`CONNECTIONS_MAX_PER_SHARD`] per shard, and none idle longer than
//! `connections.max.idle.ms`. A refused connection is closed at once with a
//! log line, as Kafka closes it; an idle one is closed by its shard's
//! sweeper, only while it has no request under way.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::AbortHandle;

use crate::limits::CONNECTIONS_MAX_PER_SHARD;

/// Connections per client address, over every shard (touched on accept and
/// close only, never per request).
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// `max`: Kafka's `max.connections.per.ip` (unlimited by default).
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip`, unless `ip` has `max` already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Admitted {
            per_ip: Arc::clone(self),
            ip,
        })
    }

    pub fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Admitted {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .per_ip
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a connection's tasks tell its shard's sweeper; it lives as long
/// as the connection and counts it while it does.
#[derive(Debug)]
pub struct Activity {
    last: Cell<Instant>,
    in_flight: Cell<usize>,
    open: Rc<Cell<usize>>,
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.open.set(self.open.get().saturating_sub(1));
    }
}

impl Activity {
    /// A request began to arrive; it is under way until the returned guard
    /// is dropped (its answer written, or the connection given up).
    pub fn begin(self: &Rc<Self>) -> UnderWay {
        self.last.set(Instant::now());
        self.in_flight.set(self.in_flight.get() + 1);
        UnderWay(Rc::clone(self))
    }
}

/// A request under way on a connection (see [`Activity::begin`]).
#[derive(Debug)]
pub struct UnderWay(Rc<Activity>);

impl Drop for UnderWay {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.last.set(Instant::now());
        activity
            .in_flight
            .set(activity.in_flight.get().saturating_sub(1));
    }
}

/// The open connections of one shard (lives on that shard).
#[derive(Debug)]
pub struct Connections {
    idle_max: Duration,
    open: RefCell<Vec<(Weak<Activity>, AbortHandle)>>,
    /// Connections alive now (each [`Activity`] counts itself).
    count: Rc<Cell<usize>>,
}

impl Connections {
    pub fn new(idle_max: Duration) -> Connections {
        Connections {
            idle_max,
            open: RefCell::new(Vec::new()),
            count: Rc::new(Cell::new(0)),
        }
    }

    /// Whether this shard may take one more connection.
    pub fn has_room(&self) -> bool {
        self.count.get() < CONNECTIONS_MAX_PER_SHARD
    }

    /// Registers a connection; `abort` ends its task.
    pub fn register(&self, abort: AbortHandle) -> Rc<Activity> {
        self.count.set(self.count.get() + 1);
        let activity = Rc::new(Activity {
            last: Cell::new(Instant::now()),
            in_flight: Cell::new(0),
            open: Rc::clone(&self.count),
        });
        self.open
            .borrow_mut()
            .push((Rc::downgrade(&activity), abort));
        activity
    }

    /// How often the sweeper looks.
    pub fn sweep_interval(&self) -> Duration {
        (self.idle_max / 4).clamp(Duration::from_millis(10), Duration::from_secs(10))
    }

    /// Closes connections idle past `connections.max.idle.ms` with nothing
    /// under way, and forgets closed ones. Returns how many it closed.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut closed = 0;
        self.open.borrow_mut().retain(|(activity, abort)| {
            let Some(activity) = activity.upgrade() else {
                return false;
            };
            let idle = now.saturating_duration_since(activity.last.get());
            if activity.in_flight.get() == 0 && idle > self.idle_max {
                abort.abort();
                closed += 1;
                return false;
            }
            true
        });
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_max_connections_and_its_places_back_as_they_close() {
        let per_ip = PerIp::new(2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let first = per_ip.admit(ip).unwrap();
        let _second = per_ip.admit(ip).unwrap();
        assert!(per_ip.admit(ip).is_none());
        assert!(per_ip.admit(other).is_some());
        drop(first);
        assert_eq!(per_ip.open_from(ip), 1);
        assert!(per_ip.admit(ip).is_some());
    }

    #[test]
    fn only_idle_connections_with_nothing_under_way_are_swept() {
        let connections = Connections::new(Duration::from_millis(100));
        let (idle_abort, idle_registration) = AbortHandle::new_pair();
        let (busy_abort, busy_registration) = AbortHandle::new_pair();
        let idle = connections.register(idle_abort);
        let busy = connections.register(busy_abort);
        let request = busy.begin();
        let later = Instant::now() + Duration::from_millis(500);
        assert_eq!(connections.sweep(later), 1);
        assert!(idle_registration.handle().is_aborted());
        assert!(!busy_registration.handle().is_aborted());
        drop(request);
        assert_eq!(connections.sweep(later + Duration::from_millis(500)), 1);
        assert_eq!(
            connections.count.get(),
            2,
            "aborted tasks still hold theirs"
        );
        drop((idle, busy));
        assert_eq!(connections.count.get(), 0);
        assert_eq!(connections.sweep(later), 0);
        assert!(connections.has_room());
    }
}
