//! Kafka requests this broker sends to another broker's client listener, as
//! Kafka's brokers send them to each other: transaction markers
//! (WriteTxnMarkers) from a transaction coordinator to partition leaders,
//! and KIP-890's check of a partition in a transaction (AddPartitionsToTxn
//! verify_only) from a partition leader to the coordinator.
//!
//! Per shard, one connection per peer address, one request at a time on
//! it (callers queue), a deadline on each exchange; a connection that
//! failed or timed out is dropped and the next request opens a new one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may wait for its answer (markers wait for the
/// partition's in-sync replicas).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer taken: ours are a few bytes per partition.
const RESPONSE_BYTES_MAX: usize = 16 << 20;

type Slot = Rc<tokio::sync::Mutex<Option<TcpStream>>>;

/// This shard's connections to other brokers.
#[derive(Default)]
pub struct Peers {
    connections: RefCell<HashMap<SocketAddr, Slot>>,
    correlation: std::cell::Cell<i32>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("connections", &self.connections.borrow().len())
            .finish()
    }
}

impl Peers {
    /// Sends `request` (API `api_key` at `version`) to the broker at `addr`
    /// and decodes its answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        addr: SocketAddr,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> io::Result<Resp> {
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
            let exchange = std::pin::pin!(exchange(&mut connection, addr, &frame));
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
    connection: &mut Option<TcpStream>,
    addr: SocketAddr,
    frame: &[u8],
) -> io::Result<Bytes> {
    if connection.is_none() {
        let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(io::Error::from)?;
        let _ = stream.set_nodelay(true);
        *connection = Some(stream);
    }
    let Some(stream) = connection.as_mut() else {
        return Err(io::Error::from(io::ErrorKind::NotConnected));
    };
    stream.write_all(frame).await?;
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
