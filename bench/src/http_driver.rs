//! Producers over shardlog's HTTP API (`--driver http --http HOST:PORT`):
//! each producer keeps one HTTP/1.1 connection and posts the messages due
//! as a JSON array to `/produce/TOPIC` (what fell due while the previous
//! request was out goes in the next, up to `batch-bytes`, as a Kafka
//! client's batching would), each with its partition (round-robin) or its
//! key. A message's latency is from its due time to the answer naming its
//! offset. JSON carries text: the payload goes as its bytes mapped to
//! lowercase letters, the same length, so consumers read no bench header
//! from it (runs with this driver have no consumers).

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::message::Generator;
use crate::rdkafka_driver::ProducerPlan;
use crate::tally::ProducerHandle;

/// The largest body the HTTP listener takes.
const BODY_BYTES_MAX: usize = 1_048_576;

/// A message sent and not yet answered.
struct Sent {
    sequence: u64,
    due_ns: u64,
    bytes: usize,
}

/// The HTTP connection of one producer.
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: &str) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr)
            .map_err(|e| anyhow::anyhow!("connecting to the HTTP listener {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Connection {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// POSTs `body` to `path`; the answer's status and body.
    fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: shardlog\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut answer = vec![0u8; length];
        self.reader.read_exact(&mut answer)?;
        Ok((status, answer))
    }
}

/// The payload as JSON text of the same length.
fn as_text(payload: &[u8]) -> String {
    payload.iter().map(|b| char::from(b'a' + b % 26)).collect()
}

pub fn produce(
    plan: &ProducerPlan<'_>,
    http: &str,
    tally: ProducerHandle,
    mut generator: Generator,
) -> anyhow::Result<()> {
    let workload = plan.workload;
    anyhow::ensure!(
        !workload.idempotence && workload.transaction_messages.is_none(),
        "the HTTP API has no producer ids or transactions (use --driver librdkafka)"
    );
    anyhow::ensure!(
        workload.acks == crate::workload::Acks::All,
        "HTTP produces are durable as acks=all; set acks = \"all\""
    );
    let mut connection = Connection::open(http)?;
    let path = format!("/produce/{}", plan.topic);
    let clock = tally.clock();
    // The listener takes bodies of up to 1 MiB (Kafka's max.message.bytes).
    let batch_bytes = (workload.batch_bytes as usize).min(BODY_BYTES_MAX);
    let mut sequence = 0u64;
    let mut partition = plan.first_partition;
    let mut body = Vec::with_capacity(batch_bytes + 1024);
    let mut sent: Vec<Sent> = Vec::new();
    // A message made for a request it did not fit in.
    let mut carried: Option<(Option<Vec<u8>>, Vec<u8>)> = None;
    loop {
        let now = Instant::now();
        let due_at = plan.schedule.due(sequence).unwrap_or(now);
        if due_at >= plan.end {
            break;
        }
        if due_at > now {
            std::thread::sleep((due_at - now).min(Duration::from_micros(200)));
            continue;
        }
        // Everything due now, up to a batch.
        body.clear();
        body.push(b'[');
        sent.clear();
        loop {
            let due_at = plan.schedule.due(sequence).unwrap_or(now);
            if due_at > Instant::now() || due_at >= plan.end {
                break;
            }
            let due_ns = clock.ns(due_at);
            let (key, payload) = match carried.take() {
                Some(message) => message,
                None => generator.message(sequence, due_ns),
            };
            let room = body.len() + payload.len() + key.as_ref().map_or(0, Vec::len) + 64;
            if !sent.is_empty() && room > batch_bytes {
                // It goes first in the next request.
                carried = Some((key, payload));
                break;
            }
            let message = match &key {
                Some(key) => serde_json::json!({"key": as_text(key), "value": as_text(&payload)}),
                None => {
                    let chosen = partition;
                    partition = (partition + 1) % plan.partitions.max(1);
                    serde_json::json!({"partition": chosen, "value": as_text(&payload)})
                }
            };
            if !sent.is_empty() {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &message)?;
            sent.push(Sent {
                sequence,
                due_ns,
                bytes: payload.len(),
            });
            tally.sent();
            sequence += 1;
        }
        body.push(b']');
        let (status, answer) = connection.post(&path, &body)?;
        let answered = Instant::now();
        let answers: Vec<serde_json::Value> = if status == 200 {
            serde_json::from_slice(&answer)?
        } else {
            Vec::new()
        };
        for (i, message) in sent.iter().enumerate() {
            let ok = answers.get(i).is_some_and(|a| a.get("offset").is_some());
            tally.acked(
                message.sequence,
                message.due_ns,
                message.bytes,
                ok,
                answered,
            );
        }
        if status != 200 {
            eprintln!(
                "HTTP produce answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    Ok(())
}
