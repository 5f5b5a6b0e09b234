//! A blocking Kafka-protocol connection for the CLI's admin commands that
//! librdkafka does not expose (users' SCRAM credentials): one request at
//! a time over a std TCP stream, kafka-protocol's messages, the version
//! picked from the broker's ApiVersions, TLS (rustls) and SASL (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512) when the listener asks for them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net::sasl::{Mechanism, ScramMechanism, fresh_nonce, scram::ClientExchange};

const CLIENT_ID: &str = "shardlog-cli";
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response read (admin answers are small).
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// TLS to the broker: the CAs to trust, and a client certificate and key
/// (PEM files).
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: std::path::PathBuf,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The socket, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

fn tls_client(tls: &Tls, host: &str, stream: TcpStream) -> anyhow::Result<Transport> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let certificates = |path: &std::path::Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .with_context(|| format!("reading certificates from {}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(&tls.ca)? {
        roots.add(certificate)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &tls.client {
        Some((cert, key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading the key {}", key.display()))?;
            builder.with_client_auth_cert(certificates(cert)?, key)?
        }
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.to_string())?;
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name)?;
    Ok(Transport::Tls(Box::new(rustls::StreamOwned::new(
        connection, stream,
    ))))
}

/// How the CLI authenticates: a SASL mechanism, user and password.
#[derive(Debug, Clone)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

pub struct Connection {
    stream: Transport,
    correlation: i32,
    /// The broker's (min, max) version per API key.
    versions: Vec<(i16, i16, i16)>,
}

impl Connection {
    /// Connects to `address` (over TLS when `tls` says how),
    /// authenticates when `sasl` says how, and learns the broker's
    /// versions.
    pub fn open(
        address: &str,
        tls: Option<&Tls>,
        sasl: Option<&Sasl>,
    ) -> anyhow::Result<Connection> {
        let socket =
            TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.set_write_timeout(Some(TIMEOUT))?;
        let stream = match tls {
            None => Transport::Plain(socket),
            Some(tls) => {
                let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
                tls_client(tls, host.trim_matches(['[', ']']), socket)?
            }
        };
        let mut connection = Connection {
            stream,
            correlation: 0,
            versions: Vec::new(),
        };
        let versions: ApiVersionsResponse =
            connection.request(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
        if versions.error_code != 0 {
            bail!("ApiVersions: error {}", versions.error_code);
        }
        connection.versions = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        if let Some(sasl) = sasl {
            connection.authenticate(sasl)?;
        }
        Ok(connection)
    }

    /// The highest version of `api` both sides speak.
    pub fn version(&self, api: ApiKey, ours: std::ops::RangeInclusive<i16>) -> anyhow::Result<i16> {
        let (_, min, max) = self
            .versions
            .iter()
            .find(|(key, _, _)| *key == api as i16)
            .copied()
            .with_context(|| format!("the broker does not serve {api:?}"))?;
        let version = max.min(*ours.end());
        if version < min.max(*ours.start()) {
            bail!("no version of {api:?} in common (broker {min}-{max}, ours {ours:?})");
        }
        Ok(version)
    }

    /// Sends `body` at the highest common version of `api` (within
    /// `ours`) and decodes the answer.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        ours: std::ops::RangeInclusive<i16>,
        body: &Req,
    ) -> anyhow::Result<Resp> {
        let version = self.version(api, ours)?;
        self.request(api, version, body)
    }

    fn request<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> anyhow::Result<Resp> {
        self.correlation += 1;
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
            .encode(&mut frame, api.request_header_version(version))?;
        body.encode(&mut frame, version)?;
        let size = i32::try_from(frame.len() - 4)?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .with_context(|| format!("sending {api:?}"))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("reading the answer to {api:?} (closed: refused?)"))?;
        let size = usize::try_from(i32::from_be_bytes(size))?;
        if size > RESPONSE_BYTES_MAX {
            bail!("a {size}-byte answer to {api:?}");
        }
        let mut response = vec![0u8; size];
        self.stream.read_exact(&mut response)?;
        let mut response = Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, api.response_header_version(version))?;
        if header.correlation_id != self.correlation {
            bail!("an answer to another request ({})", header.correlation_id);
        }
        let body = Resp::decode(&mut response, version)?;
        if response.has_remaining() {
            bail!("{} bytes after the answer to {api:?}", response.remaining());
        }
        Ok(body)
    }

    /// SaslHandshake, then the mechanism's SaslAuthenticate exchange.
    fn authenticate(&mut self, sasl: &Sasl) -> anyhow::Result<()> {
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name()));
        let answer: SaslHandshakeResponse = self.request(ApiKey::SaslHandshake, 1, &handshake)?;
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "the broker does not take SASL {} (error {}; it offers {offered:?})",
                sasl.mechanism.name(),
                answer.error_code
            );
        }
        let version = self.version(ApiKey::SaslAuthenticate, 0..=2)?;
        let mut step = |bytes: Vec<u8>| -> anyhow::Result<Bytes> {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
            let answer: SaslAuthenticateResponse =
                self.request(ApiKey::SaslAuthenticate, version, &request)?;
            if answer.error_code != 0 {
                let message = answer.error_message.as_ref().map_or("", |m| m.as_str());
                bail!(
                    "SASL authentication failed (error {}): {message}",
                    answer.error_code
                );
            }
            Ok(answer.auth_bytes)
        };
        match sasl.mechanism {
            Mechanism::Plain => {
                let message = format!("\0{}\0{}", sasl.user, sasl.password);
                step(message.into_bytes())?;
            }
            Mechanism::Scram(mechanism) => scram(mechanism, sasl, &mut step)?,
        }
        Ok(())
    }
}

fn scram(
    mechanism: ScramMechanism,
    sasl: &Sasl,
    step: &mut dyn FnMut(Vec<u8>) -> anyhow::Result<Bytes>,
) -> anyhow::Result<()> {
    let (mut exchange, first) = ClientExchange::new(
        mechanism,
        &sasl.user,
        sasl.password.as_bytes(),
        fresh_nonce(),
    );
    let server_first = step(first.into_bytes())?;
    let last = exchange
        .respond(&server_first)
        .map_err(|why| anyhow::anyhow!("SCRAM: {why}"))?;
    let server_final = step(last.into_bytes())?;
    exchange
        .verify(&server_final)
        .map_err(|why| anyhow::anyhow!("SCRAM: {why}"))
}
