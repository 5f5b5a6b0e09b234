//! One client connection: a reader and a writer over the same socket.
//!
//! The reader reads the size, rejects what exceeds `request_bytes_max`
//! before allocating, takes the frame's bytes from the connection's and the
//! shard's in-flight budgets (waiting, and so not reading, while either is
//! spent), reads the frame, decodes the header and runs the request's
//! ordered part ([`dispatch`]), one request at a time, in arrival order.
//! What remains of a request (a Produce waiting for its fdatasync) goes to
//! the writer in a bounded queue, so a connection has at most
//! [`IN_FLIGHT_REQUESTS_MAX_PER_CONNECTION`] requests under way. The writer
//! finishes them in order and writes each response, then frees the
//! request's bytes. Anything malformed closes the connection with a log
//! line; nothing here panics on input.
//!
//! Memory a client controls is bounded three ways: the frame's bytes (the
//! in-flight budgets above), the body's decoded size (the pre-decode walk
//! in [`decode_request`] refuses a body that would take more than
//! [`DECODED_BYTES_MAX_PER_REQUEST`]; what passed is taken from the
//! shard's decode budget while the request's ordered part runs, so all
//! connections of a shard decode at most [`DECODED_BYTES_MAX_PER_SHARD`]
//! at once), and the number of requests under way.
//!
//! A request answered `slow_request_log` or more after it was read whole is
//! logged with where the time went: its ordered part, its completion (a
//! Produce's appends becoming durable, or the wait behind the answers
//! before it on the connection) and the send.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::{LocalBoxFuture, ready};
use futures::io::AsyncReadExt;
use futures::{FutureExt, SinkExt, StreamExt};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};

use super::admission::{Activity, UnderWay};
use super::socket_io::{FrameReader, ReadEnd, ResponseWriter, Stream};
use crate::broker::Shard;
use crate::frame::{decode_request, frame_size};
use crate::handlers::{Outcome, dispatch};
use crate::limits::{
    DECODED_BYTES_MAX_PER_REQUEST, DECODED_BYTES_MAX_PER_SHARD, IN_FLIGHT_BYTES_MAX_PER_CONNECTION,
    IN_FLIGHT_REQUESTS_MAX_PER_CONNECTION,
};

/// A request under way: its outcome to come, and the budget it holds.
struct InFlight {
    outcome: LocalBoxFuture<'static, Outcome>,
    _bytes: [StaticPermit; 2],
    /// Counted as activity (idle timeout) and as a request in flight
    /// (metrics) until answered.
    _under_way: (UnderWay, crate::metrics::Queued),
    timing: Timing,
}

/// When a request was read whole and when its ordered part was done, for
/// the slow-request log line.
struct Timing {
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    correlation: i32,
    read: Instant,
    dispatched: Instant,
}

/// Slow requests a shard logged last, to log at most one a second.
struct SlowLog {
    last: Option<Instant>,
    /// Slow requests not logged since the last line.
    unlogged: u64,
}

thread_local! {
    static SLOW_LOG: std::cell::RefCell<SlowLog> =
        const { std::cell::RefCell::new(SlowLog { last: None, unlogged: 0 }) };
}

impl Timing {
    /// Logs the request if it took `slow` or longer from read to written
    /// (Fetch and the group joins wait by design and are not), at most one
    /// line a second per shard, counting those left out.
    fn log_if_slow(&self, ready: Instant, written: Instant, slow: Duration, peer: &str) {
        use kafka_protocol::messages::ApiKey;
        let total = written.saturating_duration_since(self.read);
        if total < slow
            || matches!(
                self.api_key,
                ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup
            )
        {
            return;
        }
        let Some(unlogged) = SLOW_LOG.with_borrow_mut(|log| {
            if log
                .last
                .is_some_and(|last| written.saturating_duration_since(last) < SLOW_LOG_PERIOD)
            {
                log.unlogged += 1;
                return None;
            }
            log.last = Some(written);
            Some(std::mem::take(&mut log.unlogged))
        }) else {
            return;
        };
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::warn!(
            %peer,
            api = ?self.api_key,
            correlation = self.correlation,
            total_ms = ms(total),
            ordered_ms = ms(self.dispatched.saturating_duration_since(self.read)),
            completing_ms = ms(ready.saturating_duration_since(self.dispatched)),
            sending_ms = ms(written.saturating_duration_since(ready)),
            slow_requests_not_logged = unlogged,
            "slow request: read to answered in total_ms (ordered part, completing, sending)"
        );
    }
}

/// At most one slow-request line per shard per this period.
const SLOW_LOG_PERIOD: Duration = Duration::from_secs(1);

/// The budgets all connections of one shard share.
#[derive(Debug)]
pub(super) struct ShardBudgets {
    /// Request bytes read and not yet answered, of `in_flight_bytes`.
    in_flight: Rc<Semaphore>,
    in_flight_bytes: usize,
    /// Decoded request bodies (the walk's bound) whose ordered part runs.
    decoded: Rc<Semaphore>,
}

impl ShardBudgets {
    /// `in_flight_bytes` at least 1: a frame larger than the budget takes
    /// all of it.
    pub(super) fn new(in_flight_bytes: usize) -> ShardBudgets {
        const _: () = assert!(DECODED_BYTES_MAX_PER_REQUEST <= DECODED_BYTES_MAX_PER_SHARD);
        let in_flight_bytes = in_flight_bytes.max(1);
        ShardBudgets {
            in_flight: Rc::new(Semaphore::new(in_flight_bytes as u64)),
            in_flight_bytes,
            decoded: Rc::new(Semaphore::new(DECODED_BYTES_MAX_PER_SHARD as u64)),
        }
    }
}

/// How long a connection stays open after a failed authentication's
/// answer (Kafka's `connection.failed.authentication.delay.ms` default).
const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// A connection's settings, from its listener's.
pub(super) struct Settings {
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// Requests slower than this are logged.
    pub slow_request_log: Duration,
    /// The listener's SASL, if it has it.
    pub sasl: Option<std::sync::Arc<crate::handlers::sasl::SaslConfig>>,
    /// The listener's TLS, if it has it.
    pub tls: Option<std::sync::Arc<super::tls::Tls>>,
    /// The listener's name.
    pub listener: std::sync::Arc<str>,
}

pub(super) async fn run(
    stream: TcpStream,
    settings: Settings,
    shard: Rc<Shard>,
    shard_budget: Rc<ShardBudgets>,
    activity: Rc<Activity>,
) {
    let _open = crate::metrics::connection_opened();
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map_or_else(|| "unknown".into(), |a| a.to_string());
    let client_host = peer_addr
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (stream, principal) = match &settings.tls {
        None => (Stream::Plain(stream), crate::frame::ANONYMOUS.to_string()),
        Some(tls) => match super::tls::accept(stream, tls, &peer).await {
            Some(done) => done,
            None => return,
        },
    };
    let fd = stream.plain_fd();
    let (reader, writer) = stream.split();
    let reader = FrameReader::new(reader, fd);
    let writer = ResponseWriter::new(writer, fd);
    // A bounded channel holds its capacity plus one per sender.
    let (queue, in_flight) = mpsc::channel(IN_FLIGHT_REQUESTS_MAX_PER_CONNECTION - 1);
    let budgets = Budgets {
        connection: Rc::new(Semaphore::new(IN_FLIGHT_BYTES_MAX_PER_CONNECTION as u64)),
        shard: shard_budget,
    };
    let connection = Peer {
        addr: &peer,
        host: &client_host,
        principal: &principal,
    };
    let read = read_requests(
        reader, queue, &settings, &shard, &budgets, connection, &activity,
    );
    let write = write_responses(writer, in_flight, settings.slow_request_log, &peer);
    futures::future::join(read, write).await;
}

/// Who is on the other end, for log lines and group membership.
#[derive(Clone, Copy)]
struct Peer<'a> {
    addr: &'a str,
    host: &'a str,
    /// Its principal before SASL: a client certificate's subject, or
    /// `User:ANONYMOUS`.
    principal: &'a str,
}

struct Budgets {
    connection: Rc<Semaphore>,
    shard: Rc<ShardBudgets>,
}

impl Budgets {
    /// Takes a frame's bytes from both budgets (a frame larger than a
    /// budget takes all of it). `None`: a budget was closed.
    async fn take(&self, size: usize) -> Option<[StaticPermit; 2]> {
        let units = |capacity: usize| size.min(capacity) as u64;
        let connection = self
            .connection
            .acquire_static_permit(units(IN_FLIGHT_BYTES_MAX_PER_CONNECTION))
            .await
            .ok()?;
        let shard = self
            .shard
            .in_flight
            .acquire_static_permit(units(self.shard.in_flight_bytes))
            .await
            .ok()?;
        Some([connection, shard])
    }

    /// Takes a walked body's decoded bytes from the shard's decode budget
    /// (at least one unit, so every decode counts). `None`: closed.
    async fn take_decoded(&self, request: &crate::frame::Request) -> Option<StaticPermit> {
        let bytes = request.checked.map_or(0, |c| c.decoded_bytes);
        let units = bytes.clamp(1, DECODED_BYTES_MAX_PER_SHARD) as u64;
        self.shard.decoded.acquire_static_permit(units).await.ok()
    }
}

/// A SaslHandshake or SaslAuthenticate on this connection: its outcome,
/// and whether the connection closes after it.
/// `principal` becomes the one it authenticated.
async fn serve_sasl(
    request: &crate::frame::Request,
    state: &mut crate::handlers::sasl::SaslState,
    principal: &mut std::sync::Arc<str>,
    settings: &Settings,
    shard: &Shard,
    peer: &str,
) -> (Outcome, bool) {
    use crate::handlers::sasl;
    let metadata = shard.metadata();
    let answer = sasl::handle(request, state, settings.sasl.as_deref(), &metadata).await;
    if let Some(why) = &answer.failure {
        sasl::log_failure("SASL authentication failed", peer, why);
    }
    if let Some(now) = state.principal()
        && !answer.close
        && request.api_key == kafka_protocol::messages::ApiKey::SaslAuthenticate
    {
        tracing::debug!(%peer, principal = now, "authenticated");
        if **principal != *now {
            *principal = std::sync::Arc::from(now);
        }
    }
    let outcome = match answer.frame {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => Outcome::Close(e),
    };
    (outcome, answer.close)
}

/// The request in `frame`, stamped with where it came from and who sent
/// it; `None` (logged) when it does not decode.
fn stamped(
    frame: Bytes,
    connection: Peer<'_>,
    listener: &std::sync::Arc<str>,
    principal: &std::sync::Arc<str>,
) -> Option<crate::frame::Request> {
    let api_key = frame
        .first_chunk::<2>()
        .and_then(|key| kafka_protocol::messages::ApiKey::try_from(i16::from_be_bytes(*key)).ok());
    match decode_request(frame) {
        Ok(mut request) => {
            request.client_host = connection.host.to_string();
            request.listener = std::sync::Arc::clone(listener);
            request.principal = std::sync::Arc::clone(principal);
            Some(request)
        }
        Err(e) => {
            if let Some(api_key) = api_key {
                crate::metrics::record_failure(api_key);
            }
            tracing::warn!(peer = connection.addr, error = %e, "bad request; closing connection");
            None
        }
    }
}

/// Whether the connection's SASL state lets a request of `api_key` be
/// served; if not (logged), the connection closes.
fn admitted(
    state: &crate::handlers::sasl::SaslState,
    api_key: kafka_protocol::messages::ApiKey,
    peer: &str,
) -> bool {
    if state.admits(api_key) {
        return true;
    }
    crate::metrics::record_failure(api_key);
    if state.principal().is_some() {
        tracing::info!(%peer, api = ?api_key, "a request after the SASL session ended (connections-max-reauth-ms); closing connection");
    } else {
        tracing::warn!(%peer, api = ?api_key, "a request before SASL authentication; closing connection");
    }
    false
}

/// The next request frame whole, with the budget its bytes hold; `None`
/// when the connection ends (closed, failed, a bad size: logged).
async fn next_frame(
    reader: &mut FrameReader,
    request_bytes_max: usize,
    budgets: &Budgets,
    peer: &str,
) -> Option<(Bytes, [StaticPermit; 2])> {
    let prefix = match reader.prefix().await {
        Ok(prefix) => prefix,
        Err(ReadEnd::Closed) => return None,
        Err(ReadEnd::Failed(e)) => {
            tracing::debug!(%peer, error = %e, "read failed; closing");
            return None;
        }
    };
    let size = match frame_size(prefix, request_bytes_max) {
        Ok(size) => size,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "refusing frame; closing connection");
            return None;
        }
    };
    let permits = budgets.take(size).await?;
    match reader.frame(size).await {
        Ok(frame) => Some((frame, permits)),
        Err(ReadEnd::Closed) => None,
        Err(ReadEnd::Failed(e)) => {
            tracing::debug!(%peer, error = %e, "connection closed mid-frame");
            None
        }
    }
}

async fn read_requests(
    mut reader: FrameReader,
    mut queue: mpsc::Sender<InFlight>,
    settings: &Settings,
    shard: &Shard,
    budgets: &Budgets,
    connection: Peer<'_>,
    activity: &Rc<Activity>,
) {
    use crate::handlers::sasl::SaslState;
    use kafka_protocol::messages::ApiKey;
    let peer = connection.addr;
    let request_bytes_max = settings.request_bytes_max;
    let mut sasl_state = match settings.sasl {
        Some(_) => SaslState::Start,
        None => SaslState::Off,
    };
    // The principal the requests carry: the certificate's (or anonymous)
    // until SASL authenticates.
    let mut principal: std::sync::Arc<str> = std::sync::Arc::from(connection.principal);
    loop {
        let bytes_max = sasl_state.frame_bytes_max(request_bytes_max);
        let Some((frame, permits)) = next_frame(&mut reader, bytes_max, budgets, peer).await else {
            return;
        };
        // Under way once whole: a client that stalls mid-frame is idle.
        let under_way = (
            activity.begin(),
            crate::metrics::Queued::enter(crate::metrics::Queue::Requests),
        );
        let read = Instant::now();
        let Some(request) = stamped(frame, connection, &settings.listener, &principal) else {
            return;
        };
        if !admitted(&sasl_state, request.api_key, peer) {
            return;
        }
        let Some(decoding) = budgets.take_decoded(&request).await else {
            return;
        };
        tracing::trace!(
            %peer,
            principal = &*request.principal,
            api = ?request.api_key,
            version = request.version(),
            correlation = request.correlation_id(),
            "request"
        );
        let mut close_after = false;
        let dispatched = if matches!(
            request.api_key,
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            let (outcome, close) = serve_sasl(
                &request,
                &mut sasl_state,
                &mut principal,
                settings,
                shard,
                peer,
            )
            .await;
            close_after = close;
            outcome
        } else {
            dispatch(shard, &request).await
        };
        drop(decoding);
        let outcome: LocalBoxFuture<'static, Outcome> = match dispatched {
            Outcome::Pending(rest) => rest,
            Outcome::Close(e) => {
                crate::metrics::record_failure(request.api_key);
                tracing::warn!(%peer, error = %e, "cannot answer; closing connection");
                return;
            }
            Outcome::Unsupported { api_key, version } => {
                crate::metrics::record_failure(api_key);
                tracing::warn!(%peer, ?api_key, version, "API or version not served; closing connection");
                return;
            }
            done => Box::pin(ready(done)),
        };
        let in_flight = InFlight {
            outcome,
            _bytes: permits,
            _under_way: under_way,
            timing: Timing {
                api_key: request.api_key,
                version: request.version(),
                correlation: request.correlation_id(),
                read,
                dispatched: Instant::now(),
            },
        };
        if queue.send(in_flight).await.is_err() {
            return; // the writer stopped: the connection is closing
        }
        if close_after {
            // Its answer goes out; the connection closes a moment later
            // (Kafka's connection.failed.authentication.delay.ms): a
            // client reads the answer before it sees the connection end,
            // and one guessing passwords is slowed down.
            engine::rt::sleep(FAILED_AUTHENTICATION_DELAY).await;
            return;
        }
    }
}

/// Responses written together at most (bytes), so one slow client's
/// answers do not hold back the budgets of requests already answered.
const COALESCED_BYTES_MAX: usize = 1 << 20;

async fn write_responses(
    mut writer: ResponseWriter,
    mut in_flight: mpsc::Receiver<InFlight>,
    slow_request_log: Duration,
    peer: &str,
) {
    // Responses ready together leave in one write; each request's budget is
    // held until its response is written.
    let mut frames: Vec<Bytes> = Vec::new();
    // Each answered request with when its outcome was there.
    let mut answered: Vec<(InFlight, Instant)> = Vec::new();
    let mut waiting: Option<InFlight> = None;
    loop {
        let mut request = match waiting.take() {
            Some(request) => request,
            None => match in_flight.next().await {
                Some(request) => request,
                None => break,
            },
        };
        let mut outcome = (&mut request.outcome).await;
        let mut bytes = 0;
        // Set when this connection must close: what was answered before
        // still goes out first.
        let mut closing = false;
        loop {
            match outcome {
                Outcome::Respond(response) => {
                    bytes += response.len();
                    frames.push(response);
                }
                Outcome::RespondInParts(parts) => {
                    bytes += parts.iter().map(Bytes::len).sum::<usize>();
                    frames.extend(parts);
                }
                Outcome::NoResponse => {}
                Outcome::Pending(_) | Outcome::Unsupported { .. } => {
                    tracing::error!(%peer, "a request finished without a response; closing");
                    closing = true;
                    break;
                }
                Outcome::Close(e) => {
                    tracing::warn!(%peer, error = %e, "cannot answer; closing connection");
                    closing = true;
                    break;
                }
            }
            answered.push((request, Instant::now()));
            if bytes >= COALESCED_BYTES_MAX {
                break;
            }
            // The next request, if its outcome is there without waiting.
            let Ok(mut next) = in_flight.try_recv() else {
                break;
            };
            match (&mut next.outcome).now_or_never() {
                Some(next_outcome) => {
                    outcome = next_outcome;
                    request = next;
                }
                None => {
                    waiting = Some(next);
                    break;
                }
            }
        }
        if let Err(e) = writer.write_all(&frames).await {
            tracing::debug!(%peer, error = %e, "write failed; closing");
            break;
        }
        tracing::trace!(%peer, bytes, responses = frames.len(), "responses written");
        let written = Instant::now();
        for (request, ready) in answered.drain(..) {
            let timing = &request.timing;
            let took = written.saturating_duration_since(timing.read);
            crate::metrics::record_request(timing.api_key, timing.version, took);
            timing.log_if_slow(ready, written, slow_request_log, peer);
        }
        frames.clear();
        if closing {
            break;
        }
    }
    // Stops the reader: its next send fails.
    in_flight.close();
    let _ = writer.close().await;
}
