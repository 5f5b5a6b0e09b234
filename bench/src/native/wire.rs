//! The native client's connections: request framing, one pipelined
//! connection per broker (a writer task and a reader task that hands each
//! response to whoever waits for its correlation id), version negotiation
//! and topic metadata.
//!
//! This file and `run`/`spawn`/`sleep` below are the only places the native
//! driver touches glommio: a port to another runtime replaces them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf};
use glommio::net::TcpStream;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const CLIENT_ID: &str = "shardlog-bench-native";
/// The largest response frame read (a fetch answers at most its max_bytes).
const RESPONSE_BYTES_MAX: usize = 256 << 20;

/// Runs `make()`'s future on an executor thread of its own until it ends.
pub fn run<T, F, G>(name: &str, make: G) -> anyhow::Result<T>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = anyhow::Result<T>> + 'static,
    T: Send + 'static,
{
    engine::rt::run_on_client_executor(name, make)?
}

/// Runs `future` beside the current task, on the same executor.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(future).detach();
}

pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// Lets the executor's other tasks run when this one has run long.
pub async fn yield_if_needed() {
    glommio::yield_if_needed().await;
}

/// A request's framing: size, header, body.
fn frame<R: Encodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, api.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads one response frame: its correlation id and the frame's bytes
/// (header still in front).
async fn read_frame(reader: &mut ReadHalf<TcpStream>) -> anyhow::Result<(i32, Bytes)> {
    let mut size = [0u8; 4];
    reader.read_exact(&mut size).await?;
    let size = usize::try_from(i32::from_be_bytes(size))?;
    anyhow::ensure!(
        (4..=RESPONSE_BYTES_MAX).contains(&size),
        "response of {size} bytes"
    );
    let mut body = vec![0u8; size];
    reader.read_exact(&mut body).await?;
    let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Ok((correlation, Bytes::from(body)))
}

/// A response on its way: the body after its header.
pub type Reply = oneshot::Receiver<Bytes>;

/// Requests waiting for their answer, by correlation id: the response
/// header version to read, and who waits.
type Waiting = Rc<RefCell<HashMap<i32, (i16, oneshot::Sender<Bytes>)>>>;

/// One pipelined connection to a broker. Lives on the executor that
/// opened it; dropping it closes the socket once queued requests are out.
#[derive(Debug)]
pub struct Connection {
    address: String,
    outgoing: mpsc::UnboundedSender<Bytes>,
    waiting: Waiting,
    next_correlation: Cell<i32>,
}

impl Connection {
    pub async fn open(address: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {address}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| anyhow::anyhow!("TCP_NODELAY: {e}"))?;
        let (mut reader, mut writer) = stream.split();
        let (outgoing, mut queue) = mpsc::unbounded::<Bytes>();
        spawn(async move {
            while let Some(frame) = queue.next().await {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
            }
            let _ = writer.close().await;
        });
        let waiting: Waiting = Rc::default();
        let answers = Rc::clone(&waiting);
        spawn(async move {
            while let Ok((correlation, mut frame)) = read_frame(&mut reader).await {
                let Some((header_version, reply)) = answers.borrow_mut().remove(&correlation)
                else {
                    continue;
                };
                if ResponseHeader::decode(&mut frame, header_version).is_ok() {
                    let _ = reply.send(frame);
                }
            }
            // The connection is gone: every waiter hears it (Canceled).
            answers.borrow_mut().clear();
        });
        Ok(Connection {
            address: address.to_string(),
            outgoing,
            waiting,
            next_correlation: Cell::new(0),
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn next_frame<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> anyhow::Result<(i32, Bytes)> {
        let correlation = self.next_correlation.get().wrapping_add(1);
        self.next_correlation.set(correlation);
        crate::cost::count_request();
        Ok((correlation, frame(api, version, correlation, body)?))
    }

    /// Queues a request; its answer comes through the returned `Reply`
    /// (Canceled if the connection closes first).
    pub fn send<R: Encodable>(&self, api: ApiKey, version: i16, body: &R) -> anyhow::Result<Reply> {
        let (correlation, bytes) = self.next_frame(api, version, body)?;
        let (reply, answer) = oneshot::channel();
        self.waiting
            .borrow_mut()
            .insert(correlation, (api.response_header_version(version), reply));
        self.outgoing
            .unbounded_send(bytes)
            .map_err(|_| anyhow::anyhow!("connection to {} closed", self.address))?;
        Ok(answer)
    }

    /// Queues a request no answer comes to (Produce with acks=0).
    pub fn send_unanswered<R: Encodable>(
        &self,
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> anyhow::Result<()> {
        let (_, bytes) = self.next_frame(api, version, body)?;
        self.outgoing
            .unbounded_send(bytes)
            .map_err(|_| anyhow::anyhow!("connection to {} closed", self.address))
    }

    /// One request and its decoded answer.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        let mut body = self
            .send(api, version, request)?
            .await
            .map_err(|_| anyhow::anyhow!("connection to {} closed", self.address))?;
        Resp::decode(&mut body, version)
    }
}

/// The versions a broker serves, and the highest one both sides speak.
#[derive(Debug, Clone)]
pub struct Versions(HashMap<i16, (i16, i16)>);

impl Versions {
    pub async fn of(connection: &Connection) -> anyhow::Result<Versions> {
        let answer: ApiVersionsResponse = connection
            .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
            .await?;
        anyhow::ensure!(
            answer.error_code == 0,
            "ApiVersions of {}: error {}",
            connection.address(),
            answer.error_code
        );
        Ok(Versions(
            answer
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        ))
    }

    /// The highest version in `ours` the broker serves.
    pub fn pick(&self, api: ApiKey, ours: std::ops::RangeInclusive<i16>) -> anyhow::Result<i16> {
        let (min, max) = self
            .0
            .get(&(api as i16))
            .copied()
            .ok_or_else(|| anyhow::anyhow!("the broker does not serve {api:?}"))?;
        let version = max.min(*ours.end());
        anyhow::ensure!(
            version >= min.max(*ours.start()),
            "the broker serves {api:?} {min}-{max}, this client {ours:?}"
        );
        Ok(version)
    }
}

/// Each topic's partitions, by index: the address of the leader.
pub type Leaders = HashMap<String, Vec<String>>;

/// The leaders of `topics`' partitions.
pub async fn leaders(
    connection: &Connection,
    versions: &Versions,
    topics: &[String],
) -> anyhow::Result<Leaders> {
    let version = versions.pick(ApiKey::Metadata, 1..=9)?;
    let request = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
            })
            .collect(),
    ));
    let answer: MetadataResponse = connection.call(ApiKey::Metadata, version, &request).await?;
    let mut leaders = Leaders::new();
    for name in topics {
        let topic = answer
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .ok_or_else(|| anyhow::anyhow!("no metadata for topic {name}"))?;
        anyhow::ensure!(
            topic.error_code == 0,
            "metadata of {name}: error {}",
            topic.error_code
        );
        let mut addresses = vec![String::new(); topic.partitions.len()];
        for partition in &topic.partitions {
            let broker = answer
                .brokers
                .iter()
                .find(|b| b.node_id == partition.leader_id)
                .ok_or_else(|| {
                    anyhow::anyhow!("{name}/{} has no leader", partition.partition_index)
                })?;
            if let Some(slot) = usize::try_from(partition.partition_index)
                .ok()
                .and_then(|i| addresses.get_mut(i))
            {
                *slot = format!("{}:{}", broker.host.as_str(), broker.port);
            }
        }
        anyhow::ensure!(
            addresses.iter().all(|a| !a.is_empty()),
            "metadata of {name} lacks partitions"
        );
        leaders.insert(name.clone(), addresses);
    }
    Ok(leaders)
}

/// Opens connections on demand, one per broker address, and keeps them.
#[derive(Debug)]
pub struct Pool {
    bootstrap: String,
    connections: HashMap<String, Rc<Connection>>,
}

impl Pool {
    pub fn new(bootstrap: &str) -> Pool {
        Pool {
            bootstrap: bootstrap.to_string(),
            connections: HashMap::new(),
        }
    }

    /// A connection to a broker the client was pointed at: the first of
    /// the comma-separated bootstrap addresses that answers.
    pub async fn bootstrap(&mut self) -> anyhow::Result<Rc<Connection>> {
        let addresses: Vec<String> = self
            .bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        let mut failure = anyhow::anyhow!("no bootstrap address in {:?}", self.bootstrap);
        for address in addresses {
            match self.get(&address).await {
                Ok(connection) => return Ok(connection),
                Err(e) => failure = e.context(format!("bootstrap {address}")),
            }
        }
        Err(failure)
    }

    pub async fn get(&mut self, address: &str) -> anyhow::Result<Rc<Connection>> {
        if let Some(connection) = self.connections.get(address) {
            return Ok(Rc::clone(connection));
        }
        let connection = Rc::new(Connection::open(address).await?);
        self.connections
            .insert(address.to_string(), Rc::clone(&connection));
        Ok(connection)
    }

    /// Drops a connection that failed; the next `get` opens a new one.
    pub fn forget(&mut self, address: &str) {
        self.connections.remove(address);
    }
}
