//! Kafka requests this broker sends to another broker's client listener, as
//! Kafka's brokers send them to each other: transaction markers
//! (WriteTxnMarkers) from a transaction coordinator to partition leaders,
//! and KIP-890's check of a partition in a transaction (AddPartitionsToTxn
//! verify_only) from a partition leader to the coordinator.
//!
//! Per shard, one connection per peer address, one request at a time on
//! it (callers queue), a deadline on each exchange; a connection that
//! failed or timed out is dropped and the next request opens a new one.
//!
//! The connection speaks the inter-broker listener's security protocol
//! ([`PeerSecurity`]): TLS presenting this broker's certificate and
//! checking the peer's against `ssl-ca` (SSL, SASL_SSL), and SASL with the
//! `inter-broker-sasl-*` credentials (SASL_PLAINTEXT, SASL_SSL), as
//! Kafka's brokers use `sasl.mechanism.inter.broker.protocol`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Stream;
use crate::sasl::Mechanism;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may wait for its answer (markers wait for the
/// partition's in-sync replicas).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer taken: ours are a few bytes per partition.
const RESPONSE_BYTES_MAX: usize = 16 << 20;

type Slot = Rc<tokio::sync::Mutex<Option<Connection>>>;

/// An open connection to a peer, and when to open a new one instead: its
/// SASL session's lifetime (KIP-368, `connections.max.reauth.ms` on the
/// peer) is nine tenths gone, as Kafka's clients re-authenticate between
/// 85% and 95% of it.
struct Connection {
    stream: Stream,
    renew_at: Option<std::time::Instant>,
}

/// How this broker authenticates to the other brokers' inter-broker
/// listener: its security protocol's parts.
#[derive(Debug, Clone, Default)]
pub struct PeerSecurity {
    /// SSL and SASL_SSL: the broker's certificate presented (for a
    /// listener requiring client certificates), the peer's checked
    /// against `ssl-ca` and the name it advertises.
    pub tls: Option<std::sync::Arc<super::tls::Tls>>,
    /// SASL_PLAINTEXT and SASL_SSL: the broker's user.
    pub sasl: Option<PeerSasl>,
}

/// The SASL user a broker authenticates as (`inter-broker-sasl-*`).
#[derive(Clone)]
pub struct PeerSasl {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for PeerSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSasl")
            .field("mechanism", &self.mechanism.name())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A broker to call: the name it advertises (which its certificate
/// carries) and its address.
#[derive(Debug, Clone)]
pub struct PeerAddress {
    pub host: String,
    pub addr: SocketAddr,
}

/// This shard's connections to other brokers.
#[derive(Default)]
pub struct Peers {
    connections: RefCell<HashMap<SocketAddr, Slot>>,
    correlation: std::cell::Cell<i32>,
    security: PeerSecurity,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("connections", &self.connections.borrow().len())
            .finish()
    }
}

impl Peers {
    pub fn new(security: PeerSecurity) -> Peers {
        Peers {
            security,
            ..Peers::default()
        }
    }

    /// Sends `request` (API `api_key` at `version`) to the broker `peer`
    /// and decodes its answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        peer: &PeerAddress,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> io::Result<Resp> {
        let addr = peer.addr;
        if crate::failpoint::cut_off() {
            // Lost on the way (tests of a partition): no answer in time.
            engine::rt::sleep(CALL_TIMEOUT).await;
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{api_key:?} to {addr}: cut off"),
            ));
        }
        let correlation = self.correlation.get().wrapping_add(1);
        self.correlation.set(correlation);
        let frame = encode_request(api_key, version, correlation, request)?;
        let slot = Rc::clone(self.connections.borrow_mut().entry(addr).or_default());
        let mut connection = slot.lock().await;
        let answer = {
            let exchange = exchange(&mut connection, peer, &self.security, &frame);
            let exchange = std::pin::pin!(exchange);
            let deadline = std::pin::pin!(engine::rt::sleep(CALL_TIMEOUT));
            match futures::future::select(exchange, deadline).await {
                futures::future::Either::Left((answer, _)) => answer,
                futures::future::Either::Right(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{api_key:?} to {addr}: no answer in {CALL_TIMEOUT:?}"),
                )),
            }
        };
        let decoded = answer.and_then(|body| decode_response(api_key, version, correlation, body));
        if decoded.is_err() {
            *connection = None;
        }
        decoded
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation: i32,
    request: &Req,
) -> io::Result<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("shardlog-broker")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api_key.request_header_version(version))
        .map_err(invalid)?;
    request.encode(&mut body, version).map_err(invalid)?;
    let size = i32::try_from(body.len()).map_err(invalid)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn decode_response<Resp: Decodable>(
    api_key: ApiKey,
    version: i16,
    correlation: i32,
    mut body: Bytes,
) -> io::Result<Resp> {
    let header = ResponseHeader::decode(&mut body, api_key.response_header_version(version))
        .map_err(invalid)?;
    if header.correlation_id != correlation {
        return Err(invalid(format!(
            "answer to request {}, expected {correlation}",
            header.correlation_id
        )));
    }
    Resp::decode(&mut body, version).map_err(invalid)
}

/// Writes `frame` on the connection (opened first if there is none) and
/// reads one answer frame.
async fn exchange(
    connection: &mut Option<Connection>,
    peer: &PeerAddress,
    security: &PeerSecurity,
    frame: &[u8],
) -> io::Result<Bytes> {
    let renew = connection
        .as_ref()
        .and_then(|c| c.renew_at)
        .is_some_and(|at| std::time::Instant::now() >= at);
    if renew || connection.is_none() {
        // A session about to end is not used: the peer would close it.
        *connection = None;
        *connection = Some(open(peer, security).await?);
    }
    let Some(connection) = connection.as_mut() else {
        return Err(io::Error::from(io::ErrorKind::NotConnected));
    };
    round_trip(&mut connection.stream, frame).await
}

/// A connection to `peer` as its inter-broker listener wants it: TLS and
/// SASL done.
async fn open(peer: &PeerAddress, security: &PeerSecurity) -> io::Result<Connection> {
    let stream = TcpStream::connect_timeout(peer.addr, CONNECT_TIMEOUT)
        .await
        .map_err(io::Error::from)?;
    let _ = stream.set_nodelay(true);
    let mut stream = match &security.tls {
        None => Stream::Plain(stream),
        Some(tls) => super::tls::connect(stream, tls, &peer.host).await?,
    };
    let mut renew_at = None;
    if let Some(sasl) = &security.sasl {
        let lifetime = authenticate(&mut stream, sasl).await.map_err(|e| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "SASL {} as {} at {}: {e}",
                    sasl.mechanism.name(),
                    sasl.user,
                    peer.addr
                ),
            )
        })?;
        renew_at = lifetime.map(|lifetime| std::time::Instant::now() + lifetime * 9 / 10);
    }
    Ok(Connection { stream, renew_at })
}

/// SaslHandshake, then the mechanism's SaslAuthenticate exchange (v2);
/// the session's lifetime, if the peer limits it.
async fn authenticate(stream: &mut Stream, sasl: &PeerSasl) -> io::Result<Option<Duration>> {
    let handshake = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
    let frame = encode_request(ApiKey::SaslHandshake, 1, 1, &handshake)?;
    let answer = round_trip(stream, &frame).await?;
    let answer: SaslHandshakeResponse = decode_response(ApiKey::SaslHandshake, 1, 1, answer)?;
    if answer.error_code != 0 {
        return Err(invalid(format!(
            "the mechanism is not enabled there (error {})",
            answer.error_code
        )));
    }
    let mut correlation = 1;
    let mut lifetime_ms = 0;
    let mut step = async |bytes: Vec<u8>| -> io::Result<Bytes> {
        correlation += 1;
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let frame = encode_request(ApiKey::SaslAuthenticate, 2, correlation, &request)?;
        let answer = round_trip(stream, &frame).await?;
        let answer: SaslAuthenticateResponse =
            decode_response(ApiKey::SaslAuthenticate, 2, correlation, answer)?;
        if answer.error_code != 0 {
            let message = answer.error_message.as_ref().map_or("", |m| m.as_str());
            return Err(invalid(format!("error {}: {message}", answer.error_code)));
        }
        lifetime_ms = answer.session_lifetime_ms;
        Ok(answer.auth_bytes)
    };
    match sasl.mechanism {
        Mechanism::Plain => {
            step(format!("\0{}\0{}", sasl.user, sasl.password).into_bytes()).await?;
        }
        Mechanism::Scram(mechanism) => {
            use crate::sasl::scram::ClientExchange;
            let (mut exchange, first) = ClientExchange::new(
                mechanism,
                &sasl.user,
                sasl.password.as_bytes(),
                crate::sasl::fresh_nonce(),
            );
            let server_first = step(first.into_bytes()).await?;
            let last = exchange.respond(&server_first).map_err(invalid)?;
            let server_final = step(last.into_bytes()).await?;
            exchange.verify(&server_final).map_err(invalid)?;
        }
    }
    Ok(u64::try_from(lifetime_ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis))
}

/// Writes `frame` (TLS records flushed) and reads one answer frame.
async fn round_trip(stream: &mut Stream, frame: &[u8]) -> io::Result<Bytes> {
    stream.write_all(frame).await?;
    stream.flush().await?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let size = usize::try_from(u32::from_be_bytes(size)).unwrap_or(usize::MAX);
    if size > RESPONSE_BYTES_MAX {
        return Err(invalid(format!("an answer of {size} bytes")));
    }
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}
