//! The HTTP listener (`--http-listen`, config `http-listen`; off unless
//! set), served by every shard like the Kafka listener (SO_REUSEPORT), with
//! hyper's HTTP/1.1 server over the shard's own sockets through a small
//! adapter ([`Io`]): `GET /metrics` (Prometheus, [`crate::metrics`]), the
//! produce API ([`produce`]), `/offsets`, `/fetch`, `/commit` and
//! `/committed` ([`consume`]), group members (`/consume`, [`member`]),
//! basic authentication ([`HttpSecurity`]: `http-users`, and with SASL on
//! the Kafka listeners the same users as Kafka clients), HTTPS with the
//! Kafka listeners' certificate (`http-ssl`). Errors are JSON `{error,
//! message}` with the Kafka error name, 4xx for bad input and 5xx only for
//! the broker's own failures. In a cluster, partitions another broker
//! leads are written and read there (`broker::forward`). Connections are
//! bounded per shard and
//! closed when idle as the Kafka listener's are (the same accept loop).

mod consume;
mod member;
mod produce;

pub(crate) use member::consume_here;
pub use member::{ConsumeAnswer, ConsumeCall, Members, Reset};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::AsyncRead as _;
use futures::AsyncWrite as _;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};

use crate::broker::Shard;
use crate::metrics::{self, PartitionSize, Scrape};

/// The content type of the prometheus-client text encoder's output.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The largest request body taken (Kafka's default max.message.bytes).
const BODY_BYTES_MAX: usize = 1_048_588;

/// An answer that is an error: its status, Kafka error name and message.
#[derive(Debug, Clone)]
pub struct HttpError {
    status: StatusCode,
    name: String,
    message: String,
    /// The Kafka error code it came from, if one.
    code: Option<i16>,
}

impl HttpError {
    fn new(status: StatusCode, name: &str, message: impl Into<String>) -> HttpError {
        HttpError {
            status,
            name: name.to_string(),
            message: message.into(),
            code: None,
        }
    }

    fn bad_request(name: &str, message: impl Into<String>) -> HttpError {
        HttpError::new(StatusCode::BAD_REQUEST, name, message)
    }

    /// A Kafka error code as an answer: the broker's own failures (storage,
    /// leadership, replicas, timeouts) are 5xx, the rest 4xx.
    fn from_kafka(code: i16, context: String) -> HttpError {
        use crate::handlers::errors::{
            CLUSTER_AUTHORIZATION_FAILED, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
            GROUP_AUTHORIZATION_FAILED, KAFKA_STORAGE_ERROR, LEADER_NOT_AVAILABLE,
            MESSAGE_TOO_LARGE, NOT_COORDINATOR, NOT_ENOUGH_REPLICAS,
            NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT,
            TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            UNKNOWN_SERVER_ERROR, UNKNOWN_TOPIC_OR_PARTITION,
        };
        let status = match code {
            NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            NOT_LEADER_OR_FOLLOWER
            | LEADER_NOT_AVAILABLE
            | NOT_ENOUGH_REPLICAS
            | NOT_ENOUGH_REPLICAS_AFTER_APPEND
            | REQUEST_TIMED_OUT => StatusCode::SERVICE_UNAVAILABLE,
            KAFKA_STORAGE_ERROR | UNKNOWN_SERVER_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
            MESSAGE_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            TOPIC_AUTHORIZATION_FAILED
            | GROUP_AUTHORIZATION_FAILED
            | CLUSTER_AUTHORIZATION_FAILED
            | TRANSACTIONAL_ID_AUTHORIZATION_FAILED => StatusCode::FORBIDDEN,
            UNKNOWN_TOPIC_OR_PARTITION => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        let name = crate::metrics::error_name(code);
        let message = format!("{context}: {name}");
        HttpError {
            status,
            name,
            message,
            code: Some(code),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({"error": self.name, "message": self.message})
    }

    fn response(&self) -> Response<Full<Bytes>> {
        json_response(self.status, &self.json())
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    if let Ok(content_type) = "application/json".parse() {
        response.headers_mut().insert("content-type", content_type);
    }
    response
}

/// Who may use the HTTP listener, and whether it speaks TLS.
#[derive(Debug, Clone, Default)]
pub struct HttpSecurity {
    /// `http-users`: (name, password) pairs.
    pub users: Vec<(String, String)>,
    /// The Kafka listeners' SASL: its users (the cluster metadata's SCRAM
    /// users and `sasl-users`) authenticate here too, their passwords
    /// checked as PLAIN's are.
    pub sasl: Option<std::sync::Arc<crate::handlers::sasl::SaslConfig>>,
    /// HTTPS (`http-ssl`).
    pub tls: Option<std::sync::Arc<crate::server::tls::Tls>>,
}

impl HttpSecurity {
    /// Whether requests must authenticate.
    fn required(&self) -> bool {
        !self.users.is_empty() || self.sasl.is_some()
    }
}

/// Who sent an HTTP request, as the ACLs see a Kafka client: the
/// principal its basic authentication proves (`User:ANONYMOUS` on a
/// listener that asks for none) and its address.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    principal: String,
    host: String,
}

impl Caller {
    /// Nothing, if the caller may do `op` (Kafka's AclOperation) on the
    /// resource of `resource_type` named `name`; else 403 with the Kafka
    /// error a client would get.
    fn may(&self, shard: &Shard, op: i8, resource_type: i8, name: &str) -> Result<(), HttpError> {
        use crate::handlers::errors::{
            CLUSTER_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED,
            TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        };
        use replication::metadata::acl::resource;
        if shard.allowed_as(&self.principal, &self.host, op, resource_type, name) {
            return Ok(());
        }
        let (code, kind) = match resource_type {
            resource::TOPIC => (TOPIC_AUTHORIZATION_FAILED, "topic"),
            resource::GROUP => (GROUP_AUTHORIZATION_FAILED, "group"),
            resource::TRANSACTIONAL_ID => {
                (TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional id")
            }
            _ => (CLUSTER_AUTHORIZATION_FAILED, "cluster"),
        };
        Err(HttpError::from_kafka(
            code,
            format!("{} on {kind} {name}", self.principal),
        ))
    }

    fn may_topic(&self, shard: &Shard, op: i8, topic: &str) -> Result<(), HttpError> {
        self.may(
            shard,
            op,
            replication::metadata::acl::resource::TOPIC,
            topic,
        )
    }

    fn may_group(&self, shard: &Shard, op: i8, group: &str) -> Result<(), HttpError> {
        self.may(
            shard,
            op,
            replication::metadata::acl::resource::GROUP,
            group,
        )
    }
}

/// Passwords this shard checked against SCRAM credentials, so a client
/// sending basic authentication with every request costs one key
/// derivation (PBKDF2), not one per request: per user, a keyed digest of
/// the password (never the password) and the stored key it matched (a
/// changed credential misses).
#[derive(Debug)]
struct Verified {
    key: Vec<u8>,
    passwords: std::collections::HashMap<String, (Vec<u8>, Vec<u8>)>,
}

/// Users whose passwords a shard remembers at most.
const VERIFIED_USERS_MAX: usize = 4096;

impl Verified {
    fn new() -> Verified {
        Verified {
            key: crate::sasl::fresh_salt(),
            passwords: std::collections::HashMap::new(),
        }
    }

    fn digest(&self, password: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(password);
        mac.finalize().into_bytes().to_vec()
    }

    fn holds(&self, user: &str, digest: &[u8], stored_key: &[u8]) -> bool {
        self.passwords.get(user).is_some_and(|(d, k)| {
            crate::sasl::constant_time_eq(d, digest) && crate::sasl::constant_time_eq(k, stored_key)
        })
    }

    fn insert(&mut self, user: &str, digest: Vec<u8>, stored_key: Vec<u8>) {
        if self.passwords.len() >= VERIFIED_USERS_MAX {
            self.passwords.clear();
        }
        self.passwords
            .insert(user.to_string(), (digest, stored_key));
    }
}

/// A shard's HTTP listener.
#[derive(Debug)]
pub struct HttpListener {
    listener: glommio::net::TcpListener,
    security: Rc<HttpSecurity>,
    verified: Rc<std::cell::RefCell<Verified>>,
    /// The Kafka listener's settings: its idle limit, its count of
    /// connections per address (over both listeners), its stop poll.
    config: crate::server::ListenerConfig,
}

/// Binds `addr` on this shard (SO_REUSEPORT: every shard binds it), with
/// `security`'s authentication and TLS. Connections are bounded and
/// closed when idle as `kafka`'s (the Kafka listener's settings) are, and
/// count towards the same `max.connections.per.ip`.
pub fn bind(
    addr: SocketAddr,
    security: HttpSecurity,
    kafka: &crate::server::ListenerConfig,
) -> std::io::Result<HttpListener> {
    let mut config = kafka.clone();
    config.listen = addr;
    Ok(HttpListener {
        listener: crate::server::listen_reuseport(addr)?,
        security: Rc::new(security),
        verified: Rc::new(std::cell::RefCell::new(Verified::new())),
        config,
    })
}

/// The principal `request`'s basic authentication proves (`User:NAME`):
/// one of `http-users` (every one compared in full, in constant time per
/// byte), else a SASL user whose SCRAM credential the password matches.
async fn authenticated<B>(
    shard: &Shard,
    security: &HttpSecurity,
    verified: &std::cell::RefCell<Verified>,
    request: &Request<B>,
) -> Option<String> {
    use base64::Engine as _;
    let credentials = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })?;
    let mut found = false;
    for (name, password) in &security.users {
        let wanted = format!("{name}:{password}");
        found |= crate::sasl::constant_time_eq(wanted.as_bytes(), &credentials);
    }
    let colon = credentials.iter().position(|&b| b == b':')?;
    let (user, password) = (credentials.get(..colon)?, credentials.get(colon + 1..)?);
    let user = std::str::from_utf8(user).ok()?.to_string();
    if found {
        return Some(format!("User:{user}"));
    }
    let sasl = security.sasl.as_ref()?;
    let metadata = shard.metadata();
    let users = crate::handlers::sasl::Users {
        metadata: &metadata,
        configured: sasl,
    };
    let credential = crate::sasl::plain_credential(&users, &user)?;
    let digest = verified.borrow().digest(password);
    if verified
        .borrow()
        .holds(&user, &digest, &credential.stored_key)
    {
        return Some(format!("User:{user}"));
    }
    let check = crate::sasl::PasswordCheck::new(&user, credential, password);
    let stored_key = check.stored_key().to_vec();
    // PBKDF2 off the shard, as a Kafka client's PLAIN.
    let principal = engine::rt::spawn_blocking(move || check.run()).await.ok()?;
    verified.borrow_mut().insert(&user, digest, stored_key);
    Some(principal)
}

impl HttpListener {
    /// Serves connections until `stopped()`; each connection is a task.
    pub async fn serve(self, shard: Rc<Shard>, stopped: impl Fn() -> bool) {
        let connections =
            crate::server::admission::Connections::new(self.config.connections_max_idle);
        let serve_one = |stream, peer, activity| {
            let security = (Rc::clone(&self.security), Rc::clone(&self.verified));
            serve_connection(Rc::clone(&shard), security, stream, peer, activity)
        };
        crate::server::accept_loop(
            &self.listener,
            &self.config,
            &connections,
            stopped,
            serve_one,
        )
        .await;
    }
}

/// One HTTP connection: hyper's HTTP/1.1 server over it; each request is
/// under way (not idle) until answered.
async fn serve_connection(
    shard: Rc<Shard>,
    (security, verified): (Rc<HttpSecurity>, Rc<std::cell::RefCell<Verified>>),
    stream: glommio::net::TcpStream,
    peer: SocketAddr,
    activity: Rc<crate::server::admission::Activity>,
) {
    let stream = match &security.tls {
        None => crate::server::Stream::Plain(stream),
        Some(tls) => match crate::server::tls::accept(stream, tls, &peer.to_string()).await {
            Some((stream, _)) => stream,
            None => return,
        },
    };
    let service = hyper::service::service_fn(move |request| {
        let shard = Rc::clone(&shard);
        let (security, verified) = (Rc::clone(&security), Rc::clone(&verified));
        let under_way = activity.begin();
        async move {
            let _under_way = under_way;
            let principal = if security.required() {
                match authenticated(&shard, &security, &verified, &request).await {
                    Some(principal) => principal,
                    None => {
                        tracing::info!(%peer, path = %request.uri().path(), "HTTP request refused: no valid basic authentication");
                        return Ok::<_, Infallible>(unauthorized());
                    }
                }
            } else {
                crate::frame::ANONYMOUS.to_string()
            };
            let caller = Caller {
                principal,
                host: peer.ip().to_string(),
            };
            Ok::<_, Infallible>(route(&shard, &caller, request).await)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .serve_connection(Io(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Routes a request.
async fn route(
    shard: &Shard,
    caller: &Caller,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    use replication::metadata::acl::{CLUSTER_NAME, operation, resource};
    let path = request.uri().path().to_string();
    if path == "/produce" || path.starts_with("/produce/") {
        return match produce_route(shard, caller, request).await {
            Ok(response) => response,
            Err(e) => e.response(),
        };
    }
    if path.starts_with("/consume/") {
        return match consume_route(shard, caller, request).await {
            Ok(value) => json_response(StatusCode::OK, &value),
            Err(e) => e.response(),
        };
    }
    if path == "/fetch"
        || path.starts_with("/offsets/")
        || path.starts_with("/commit/")
        || path.starts_with("/committed/")
    {
        return match read_route(shard, caller, request).await {
            Ok(value) => json_response(StatusCode::OK, &value),
            Err(e) => e.response(),
        };
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            // Every topic's size and every group's lag: Describe on the
            // cluster, as DescribeCluster asks.
            let cluster = caller.may(shard, operation::DESCRIBE, resource::CLUSTER, CLUSTER_NAME);
            if let Err(e) = cluster {
                return e.response();
            }
            let text = metrics::encode(scrape(shard).await);
            Response::builder()
                .header("content-type", OPENMETRICS)
                .body(Full::new(Bytes::from(text)))
                .unwrap_or_else(|_| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "UNKNOWN_SERVER_ERROR",
                        "response",
                    )
                })
        }
        (_, "/metrics") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_REQUEST",
            "/metrics answers GET",
        ),
        (_, path) => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("no such resource: {path}"),
        ),
    }
}

/// 401 with the basic-auth challenge.
fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "SASL_AUTHENTICATION_FAILED",
        "this listener needs HTTP basic authentication of a user",
    );
    if let Ok(challenge) = "Basic realm=\"shardlog\"".parse() {
        response
            .headers_mut()
            .insert(hyper::header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// A JSON error: the Kafka-style error name and a message.
fn error(status: StatusCode, name: &str, message: &str) -> Response<Full<Bytes>> {
    HttpError::new(status, name, message).response()
}

/// `/produce`, `/produce/TOPIC` and `/produce/TOPIC/MESSAGE`.
async fn produce_route(
    shard: &Shard,
    caller: &Caller,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, HttpError> {
    if !matches!(*request.method(), Method::GET | Method::POST) {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_REQUEST",
            "/produce answers GET and POST",
        ));
    }
    let segments = path_segments(&request)?;
    let query = Query::of(&request)?;
    let (topic, in_path) = match segments.as_slice() {
        [] => (None, None),
        [topic] => (Some(topic.clone()), None),
        [topic, message] => (Some(topic.clone()), Some(message.clone())),
        _ => {
            return Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "/produce, /produce/TOPIC or /produce/TOPIC/MESSAGE",
            ));
        }
    };
    if topic.as_deref().is_some_and(str::is_empty) {
        return Err(HttpError::bad_request(
            "INVALID_REQUEST",
            "an empty topic name",
        ));
    }
    let body = match in_path {
        Some(_) => Bytes::new(),
        None => read_body(request).await?,
    };
    let (messages, array) = match in_path {
        Some(value) => {
            let message = produce::Message {
                topic: None,
                partition: None,
                timestamp: None,
                key: query.get("key").map(|k| k.to_string().into()),
                value: Some(value.into()),
                headers: Vec::new(),
            };
            (vec![message], false)
        }
        None => produce::parse(&body).map_err(|e| {
            HttpError::bad_request(
                "INVALID_REQUEST",
                format!("the body is not a JSON message or an array of them: {e}"),
            )
        })?,
    };
    let write = replication::metadata::acl::operation::WRITE;
    if let Some(topic) = &topic {
        caller.may_topic(shard, write, topic)?;
    }
    for named in messages.iter().filter_map(|m| m.topic.as_deref()) {
        caller.may_topic(shard, write, named)?;
    }
    let answers = produce::produce(shard, topic.as_deref(), messages).await?;
    if array {
        let items: Vec<serde_json::Value> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|e| e.json()))
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            &serde_json::Value::Array(items),
        ));
    }
    match answers.into_iter().next() {
        Some(Ok(answer)) => Ok(json_response(StatusCode::OK, &answer)),
        Some(Err(e)) => Err(e),
        None => Err(HttpError::bad_request("INVALID_REQUEST", "no message")),
    }
}

/// The longest `/consume` wait.
const CONSUME_TIMEOUT_MAX_MS: u64 = 30_000;
/// A `/consume` waits this long for records when the request does not say.
const CONSUME_TIMEOUT_DEFAULT_MS: u64 = 1_000;

/// `GET|POST /consume/TOPIC/GROUP/INSTANCE?timeout=MS&max_bytes=N&reset=earliest|latest`,
/// `DELETE` to leave.
async fn consume_route(
    shard: &Shard,
    caller: &Caller,
    request: Request<hyper::body::Incoming>,
) -> Result<serde_json::Value, HttpError> {
    let leave = match *request.method() {
        Method::GET | Method::POST => false,
        Method::DELETE => true,
        _ => {
            return Err(HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_REQUEST",
                "/consume/TOPIC/GROUP/INSTANCE answers GET, POST and DELETE",
            ));
        }
    };
    let segments = path_segments(&request)?;
    let [topic, group, instance] = segments.as_slice() else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "/consume/TOPIC/GROUP/INSTANCE",
        ));
    };
    if [topic, group, instance].iter().any(|s| s.is_empty()) {
        return Err(HttpError::bad_request(
            "INVALID_REQUEST",
            "/consume/TOPIC/GROUP/INSTANCE with none of them empty",
        ));
    }
    // A member reads the topic and commits for the group: Read on both,
    // as a Kafka consumer in a group needs.
    let read = replication::metadata::acl::operation::READ;
    caller.may_group(shard, read, group)?;
    caller.may_topic(shard, read, topic)?;
    if shard.metadata().topic(topic).is_none() {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "UNKNOWN_TOPIC_OR_PARTITION",
            format!("no topic {topic}"),
        ));
    }
    let query = Query::of(&request)?;
    let reset = match query.get("reset") {
        None | Some("latest") => Reset::Latest,
        Some("earliest") => Reset::Earliest,
        Some(other) => {
            return Err(HttpError::bad_request(
                "INVALID_REQUEST",
                format!("reset is earliest or latest, not {other}"),
            ));
        }
    };
    let timeout_ms = query
        .number::<u64>("timeout")?
        .unwrap_or(CONSUME_TIMEOUT_DEFAULT_MS)
        .min(CONSUME_TIMEOUT_MAX_MS);
    let max_bytes = query
        .number::<u64>("max_bytes")?
        .and_then(|b| usize::try_from(b).ok())
        .unwrap_or(consume::FETCH_BYTES_DEFAULT)
        .clamp(1, consume::FETCH_BYTES_MAX);
    let call = ConsumeCall {
        topic: topic.clone(),
        group: group.clone(),
        instance: instance.clone(),
        timeout: Duration::from_millis(timeout_ms),
        max_bytes,
        reset,
        leave,
        client_host: String::new(),
    };
    let context = format!("group {group}");
    shard
        .http_consume(call)
        .await
        .unwrap_or_else(|code| Err(HttpError::from_kafka(code, context)))
}

/// `GET /offsets/TOPIC` and `GET|POST /fetch` (query or JSON body).
async fn read_route(
    shard: &Shard,
    caller: &Caller,
    request: Request<hyper::body::Incoming>,
) -> Result<serde_json::Value, HttpError> {
    use replication::metadata::acl::operation::{DESCRIBE, READ};
    let path = request.uri().path().to_string();
    if let Some(group) = path.strip_prefix("/committed/") {
        // OffsetFetch's rule: Describe on the group, and only the topics
        // the caller may describe.
        let group = percent_decode(group)?;
        caller.may_group(shard, DESCRIBE, &group)?;
        let describable = |topic: &str| caller.may_topic(shard, DESCRIBE, topic).is_ok();
        return consume::committed(shard, &group, describable).await;
    }
    if let Some(group) = path.strip_prefix("/commit/") {
        if request.method() != Method::POST {
            return Err(HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_REQUEST",
                "/commit/GROUP answers POST",
            ));
        }
        let group = percent_decode(group)?;
        caller.may_group(shard, READ, &group)?;
        let body = read_body(request).await?;
        let commits: Vec<consume::Commit> = serde_json::from_slice(&body).map_err(|e| {
            HttpError::bad_request(
                "INVALID_REQUEST",
                format!("the body is not [{{topic, partition, offset, metadata?}}]: {e}"),
            )
        })?;
        for commit in &commits {
            caller.may_topic(shard, READ, &commit.topic)?;
        }
        return consume::commit(shard, &group, commits).await;
    }
    if let Some(topic) = path.strip_prefix("/offsets/") {
        if request.method() != Method::GET {
            return Err(HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_REQUEST",
                "/offsets/TOPIC answers GET",
            ));
        }
        let topic = percent_decode(topic)?;
        caller.may_topic(shard, DESCRIBE, &topic)?;
        return consume::offsets(shard, &topic).await;
    }
    if !matches!(*request.method(), Method::GET | Method::POST) {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_REQUEST",
            "/fetch answers GET and POST",
        ));
    }
    let query = Query::of(&request)?;
    let fetch = if query.0.is_empty() {
        let body = read_body(request).await?;
        serde_json::from_slice::<consume::FetchRequest>(&body).map_err(|e| {
            HttpError::bad_request(
                "INVALID_REQUEST",
                format!("the body is not {{topic, partition, offset, max_bytes?}}: {e}"),
            )
        })?
    } else {
        let number = |name: &str| query.number::<i64>(name);
        let required =
            |name: &str| HttpError::bad_request("INVALID_REQUEST", format!("/fetch needs {name}"));
        consume::FetchRequest {
            topic: query
                .get("topic")
                .ok_or_else(|| required("topic"))?
                .to_string(),
            partition: number("partition")?
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| required("partition"))?,
            offset: number("offset")?.ok_or_else(|| required("offset"))?,
            max_bytes: number("max_bytes")?.and_then(|b| usize::try_from(b).ok()),
        }
    };
    caller.may_topic(shard, READ, &fetch.topic)?;
    consume::fetch(shard, fetch).await
}

/// The path's segments after the first (`/produce/T/M`: `[T, M]`),
/// percent-decoded.
fn path_segments<B>(request: &Request<B>) -> Result<Vec<String>, HttpError> {
    request
        .uri()
        .path()
        .split('/')
        .skip(2)
        .map(percent_decode)
        .collect()
}

/// The whole body, at most [`BODY_BYTES_MAX`].
async fn read_body(request: Request<hyper::body::Incoming>) -> Result<Bytes, HttpError> {
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MESSAGE_TOO_LARGE",
            format!("the body is larger than {BODY_BYTES_MAX} bytes"),
        )
    };
    // A declared length past the limit is refused before a byte is read.
    if hyper::body::Body::size_hint(request.body()).lower() > BODY_BYTES_MAX as u64 {
        return Err(too_large());
    }
    let limited = Limited::new(request.into_body(), BODY_BYTES_MAX);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(HttpError::bad_request(
            "INVALID_REQUEST",
            format!("reading the body: {e}"),
        )),
    }
}

/// A path segment or query part, percent-decoded (`+` is a space in a query).
fn percent_decode(s: &str) -> Result<String, HttpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| HttpError::bad_request("INVALID_REQUEST", "a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::bad_request("INVALID_REQUEST", "not UTF-8"))
}

/// A request's query, its pairs percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn of<B>(request: &Request<B>) -> Result<Query, HttpError> {
        request
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((
                    percent_decode(&k.replace('+', " "))?,
                    percent_decode(&v.replace('+', " "))?,
                ))
            })
            .collect::<Result<_, _>>()
            .map(Query)
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` as a number, if given; a bad one is 400.
    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, HttpError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    HttpError::bad_request("INVALID_REQUEST", format!("{name} is not a number"))
                })
            })
            .transpose()
    }
}

/// Every shard's counts, and the size of every partition this broker holds.
async fn scrape(shard: &Shard) -> Scrape {
    let shards = shard.gather_metrics().await;
    let metadata = shard.metadata();
    let mut partitions = Vec::new();
    for topic in metadata.topics() {
        for (partition, size) in shard.replica_sizes(&topic.name, 0..topic.partitions).await {
            if let Some(bytes) = size {
                partitions.push(PartitionSize {
                    topic: topic.name.clone(),
                    partition,
                    bytes,
                });
            }
        }
    }
    let node = shard.node.node_id;
    let under_replicated = metadata
        .partitions()
        .filter(|(_, _, state)| state.leader == node && state.isr.len() < state.replicas.len())
        .count() as u64;
    // Each committed partition's log end, asked once.
    let mut ends: std::collections::BTreeMap<(String, i32), Option<i64>> = Default::default();
    let mut lag = std::collections::BTreeMap::new();
    for metrics in &shards {
        for (group, topic, partition, offset) in &metrics.committed {
            let key = (topic.clone(), *partition);
            if !ends.contains_key(&key) {
                let end = consume::log_end(shard, topic, *partition).await;
                ends.insert(key.clone(), end);
            }
            if let Some(Some(end)) = ends.get(&key) {
                lag.insert(
                    (group.clone(), topic.clone(), *partition),
                    (end - offset).max(0),
                );
            }
        }
    }
    Scrape {
        shards,
        partitions,
        under_replicated,
        lag,
    }
}

/// A shard's socket as hyper's IO: glommio's stream is a futures
/// `AsyncRead`/`AsyncWrite`; reads go through a small buffer into hyper's
/// (uninitialized) one.
struct Io(crate::server::Stream);

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut chunk = [0u8; 8192];
        let room = buf.remaining().min(chunk.len());
        let Some(target) = chunk.get_mut(..room) else {
            return Poll::Ready(Ok(()));
        };
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, target))?;
        if let Some(read) = chunk.get(..n) {
            buf.put_slice(read);
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
