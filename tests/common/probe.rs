//! Sending a request followed by an ApiVersions probe on the same
//! connection, and telling what became of it: answered (with the responses
//! that came before the probe's), closed by the broker, or still held when
//! the probe gave up (a long poll, a held join).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

const PROBE_CORRELATION: i32 = -77;

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The probe was answered: these responses (whole frames without their
    /// size prefix) came before it.
    Answered(Vec<Bytes>),
    Closed,
    Held,
}

/// What became of the requests sent.
#[derive(Debug, Default)]
pub struct Tally {
    pub answered: usize,
    pub closed: usize,
    pub held: usize,
}

/// One connection at a time to the broker, reopened whenever the broker
/// closes it (or holds a request past the probe's patience).
pub struct Prober {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    pub tally: Tally,
}

/// ApiVersions v0: header v1 (key, version, correlation, null client id).
pub fn probe_frame() -> Vec<u8> {
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(0);
    frame.put_i32(PROBE_CORRELATION);
    frame.put_i16(-1);
    frame.to_vec()
}

/// An ApiVersions v0 round trip on an open connection (the probe's
/// request; its answer read and dropped).
pub fn api_versions_v0(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(&probe_frame())?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body)
}

/// A request frame: size, header (v0: key, version, correlation; v1 adds
/// the client id; v2 adds tagged fields), body.
pub fn request_frame(api_key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    let header_version = ApiKey::try_from(api_key).map_or(1, |k| k.request_header_version(version));
    let mut header = BytesMut::new();
    header.put_i16(api_key);
    header.put_i16(version);
    header.put_i32(correlation);
    if header_version >= 1 {
        header.put_i16(4);
        header.put_slice(b"test");
    }
    if header_version >= 2 {
        header.put_u8(0);
    }
    let mut out = Vec::with_capacity(4 + header.len() + body.len());
    out.extend_from_slice(&((header.len() + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

impl Prober {
    pub fn new(addr: SocketAddr) -> Prober {
        Prober {
            addr,
            stream: None,
            tally: Tally::default(),
        }
    }

    fn connect(&mut self) -> &mut TcpStream {
        self.stream.get_or_insert_with(|| {
            let stream = TcpStream::connect(self.addr).expect("the broker accepts connections");
            let patience = Some(Duration::from_millis(1500));
            stream.set_read_timeout(patience).unwrap();
            stream.set_write_timeout(patience).unwrap();
            stream
        })
    }

    /// Sends `frame`, then a probe; reads until the probe's answer.
    pub fn send(&mut self, frame: &[u8]) -> Fate {
        let probe = probe_frame();
        let stream = self.connect();
        let sent = stream
            .write_all(frame)
            .and_then(|()| stream.write_all(&probe));
        let fate = match sent {
            Err(_) => Fate::Closed,
            Ok(()) => read_until_probe(stream),
        };
        match fate {
            Fate::Answered(_) => self.tally.answered += 1,
            Fate::Closed => {
                self.tally.closed += 1;
                self.stream = None;
            }
            Fate::Held => {
                self.tally.held += 1;
                self.stream = None;
            }
        }
        fate
    }
}

fn read_until_probe(stream: &mut TcpStream) -> Fate {
    let mut responses = Vec::new();
    loop {
        let mut size = [0u8; 4];
        if let Err(e) = stream.read_exact(&mut size) {
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Fate::Held,
                _ => Fate::Closed,
            };
        }
        let size = u32::from_be_bytes(size) as usize;
        assert!((4..64 << 20).contains(&size), "response size {size}");
        let mut response = vec![0u8; size];
        if stream.read_exact(&mut response).is_err() {
            return Fate::Closed;
        }
        let correlation = i32::from_be_bytes(response[..4].try_into().unwrap());
        if correlation == PROBE_CORRELATION {
            return Fate::Answered(responses);
        }
        responses.push(Bytes::from(response));
    }
}
