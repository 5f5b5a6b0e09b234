//! SaslHandshake (key 17, v1) and SaslAuthenticate (key 36, v0-2) on a
//! listener with SASL (SASL_PLAINTEXT: `sasl-enabled-mechanisms` and
//! `sasl-users` set), as Kafka's broker serves them (KIP-43, KIP-152):
//! the connection answers only ApiVersions, SaslHandshake and
//! SaslAuthenticate until a [`crate::sasl`] exchange authenticates it; any
//! other request before that closes it, as does a failed authentication
//! (after its answer). On a listener without SASL both APIs answer
//! ILLEGAL_SASL_STATE, as Kafka's do on a PLAINTEXT listener.
//!
//! Re-authentication (KIP-368, `connections-max-reauth-ms`): a session
//! lasts that long (SaslAuthenticate v1+ tells the client); the client
//! authenticates again on the same connection before it ends, with the
//! same mechanism and as the same principal, or the connection closes at
//! its first request after the session ended.
//!
//! Credentials: the users' SCRAM credentials in the cluster metadata
//! (AlterUserScramCredentials, `shardlog user`), then the listener's
//! `sasl-users` (`name:password`, the broker's own bootstrap users, as
//! Kafka's JAAS-configured ones: each derived into SCRAM-SHA-256 and
//! SCRAM-SHA-512 credentials at start, random salts, 4096 iterations).
//! PLAIN checks the password against the user's SCRAM credential.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::ClusterMetadata;

use super::errors::{ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM};
use super::{Handler, decode_body};
use crate::frame::{FrameError, Request, encode_response};
use crate::sasl::{
    Credentials, Exchange, Mechanism, ScramCredential, ScramMechanism, Step, fresh_nonce,
};

pub const HANDSHAKE: Handler = Handler {
    api_key: ApiKey::SaslHandshake,
    min_version: 1,
    max_version: 1,
};

pub const AUTHENTICATE: Handler = Handler {
    api_key: ApiKey::SaslAuthenticate,
    min_version: 0,
    max_version: 2,
};

/// Iterations of the credentials derived from `sasl-users`.
const ITERATIONS: u32 = crate::sasl::scram::ITERATIONS_MIN;

/// A listener's SASL: its mechanisms and its users' credentials.
#[derive(Debug, Clone, Default)]
pub struct SaslConfig {
    pub mechanisms: Vec<Mechanism>,
    pub users: BTreeMap<(String, ScramMechanism), ScramCredential>,
    /// How long an authentication holds (`connections.max.reauth.ms`);
    /// `None`: for the connection's life.
    pub session_lifetime: Option<std::time::Duration>,
}

impl SaslConfig {
    /// `mechanisms` for `users` ((name, password) pairs).
    pub fn new(mechanisms: Vec<Mechanism>, users: &[(String, String)]) -> SaslConfig {
        let mut credentials = BTreeMap::new();
        for (name, password) in users {
            for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
                let salt = crate::sasl::fresh_salt();
                let credential =
                    ScramCredential::derive(mechanism, password.as_bytes(), salt, ITERATIONS);
                credentials.insert((name.clone(), mechanism), credential);
            }
        }
        SaslConfig {
            mechanisms,
            users: credentials,
            session_lifetime: None,
        }
    }
}

impl Credentials for SaslConfig {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users.get(&(user.to_string(), mechanism)).cloned()
    }
}

/// The users a connection authenticates against: the metadata's, then
/// the listener's configured ones.
#[derive(Debug)]
pub struct Users<'a> {
    pub metadata: &'a ClusterMetadata,
    pub configured: &'a SaslConfig,
}

impl Credentials for Users<'_> {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.metadata
            .scram_credential(user, mechanism.kafka_type())
            .map(|stored| ScramCredential::from_stored(mechanism, stored))
            .or_else(|| self.configured.scram(user, mechanism))
    }
}

/// Where a connection is in its authentication.
#[derive(Debug)]
pub enum SaslState {
    /// The listener has no SASL: every request is served.
    Off,
    /// Waiting for the client's SaslHandshake.
    Start,
    /// The handshake chose a mechanism; SaslAuthenticate steps it (to
    /// authenticate again as `again`'s principal when it is set).
    Exchanging(Box<Exchange>, Option<Session>),
    /// Authenticated.
    Authenticated(Session),
}

/// An authenticated session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Kafka's `User:NAME`.
    pub principal: String,
    pub mechanism: Mechanism,
    /// When it ends (KIP-368), if it does.
    pub expires: Option<std::time::Instant>,
}

impl Session {
    fn expired(&self) -> bool {
        self.expires
            .is_some_and(|at| std::time::Instant::now() >= at)
    }
}

/// The largest frame a connection may send before it authenticates
/// (Kafka's `sasl.server.max.receive.size` default).
const UNAUTHENTICATED_BYTES_MAX: usize = 512 * 1024;

impl SaslState {
    /// The largest request frame taken now: small until authenticated.
    pub fn frame_bytes_max(&self, configured: usize) -> usize {
        match self {
            SaslState::Off | SaslState::Authenticated(_) => configured,
            SaslState::Start | SaslState::Exchanging(..) => {
                configured.min(UNAUTHENTICATED_BYTES_MAX)
            }
        }
    }

    /// Whether a request of `api_key` may be served now: after
    /// authenticating, while the session lasts (a SaslHandshake that
    /// starts the next one comes after it ended).
    pub fn admits(&self, api_key: ApiKey) -> bool {
        let sasl = matches!(
            api_key,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        );
        match self {
            SaslState::Off => true,
            SaslState::Authenticated(session) => {
                !session.expired() || api_key == ApiKey::SaslHandshake
            }
            SaslState::Start | SaslState::Exchanging(..) => sasl,
        }
    }

    /// The session's principal, once authenticated.
    pub fn principal(&self) -> Option<&str> {
        match self {
            SaslState::Authenticated(session) => Some(&session.principal),
            _ => None,
        }
    }
}

/// A SASL request's answer, and whether the connection closes after it.
#[derive(Debug)]
pub struct SaslAnswer {
    pub frame: Result<Bytes, FrameError>,
    pub close: bool,
    /// Why it failed, for the log.
    pub failure: Option<String>,
}

/// Serves a SaslHandshake or SaslAuthenticate on a connection in `state`,
/// its users those of `metadata` and `config`.
pub async fn handle(
    request: &Request,
    state: &mut SaslState,
    config: Option<&SaslConfig>,
    metadata: &ClusterMetadata,
) -> SaslAnswer {
    match request.api_key {
        ApiKey::SaslHandshake => handshake(request, state, config),
        _ => authenticate(request, state, config, metadata).await,
    }
}

fn handshake(request: &Request, state: &mut SaslState, config: Option<&SaslConfig>) -> SaslAnswer {
    let body: SaslHandshakeRequest = match decode_body(request) {
        Ok(body) => body,
        Err(e) => return closing(Err(e), None),
    };
    let enabled: Vec<StrBytes> = config
        .map(|c| {
            c.mechanisms
                .iter()
                .map(|m| StrBytes::from_static_str(m.name()))
                .collect()
        })
        .unwrap_or_default();
    let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
    let answer = |response: &SaslHandshakeResponse| {
        encode_response(
            ApiKey::SaslHandshake,
            request.version(),
            request.correlation_id(),
            response,
        )
    };
    // A first handshake, or one that starts a session's next (KIP-368).
    let (config, again) = match (config, &*state) {
        (Some(config), SaslState::Start) => (config, None),
        (Some(config), SaslState::Authenticated(session)) if config.session_lifetime.is_some() => {
            (config, Some(session.clone()))
        }
        _ => {
            let response = response.with_error_code(ILLEGAL_SASL_STATE);
            return out_of_turn(state, answer(&response), "a SaslHandshake out of turn");
        }
    };
    let chosen =
        Mechanism::from_name(body.mechanism.as_str()).filter(|m| config.mechanisms.contains(m));
    let Some(mechanism) = chosen else {
        let response = response.with_error_code(UNSUPPORTED_SASL_MECHANISM);
        let why = format!("mechanism {} is not enabled", body.mechanism.as_str());
        return closing(answer(&response), Some(why));
    };
    if let Some(session) = &again
        && session.mechanism != mechanism
    {
        let response = response.with_error_code(UNSUPPORTED_SASL_MECHANISM);
        let why = format!(
            "re-authentication with {} after {}",
            mechanism.name(),
            session.mechanism.name()
        );
        return closing(answer(&response), Some(why));
    }
    *state = SaslState::Exchanging(Box::new(Exchange::new(mechanism, fresh_nonce())), again);
    SaslAnswer {
        frame: answer(&response),
        close: false,
        failure: None,
    }
}

async fn authenticate(
    request: &Request,
    state: &mut SaslState,
    config: Option<&SaslConfig>,
    metadata: &ClusterMetadata,
) -> SaslAnswer {
    let body: SaslAuthenticateRequest = match decode_body(request) {
        Ok(body) => body,
        Err(e) => return closing(Err(e), None),
    };
    let answer = |response: &SaslAuthenticateResponse| {
        encode_response(
            ApiKey::SaslAuthenticate,
            request.version(),
            request.correlation_id(),
            response,
        )
    };
    let (Some(config), SaslState::Exchanging(exchange, again)) = (config, &mut *state) else {
        let response = SaslAuthenticateResponse::default()
            .with_error_code(ILLEGAL_SASL_STATE)
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate without a SaslHandshake first",
            )));
        return out_of_turn(state, answer(&response), "a SaslAuthenticate out of turn");
    };
    let users = Users {
        metadata,
        configured: config,
    };
    let ended = match exchange.step(&body.auth_bytes, &users) {
        Step::Continue(bytes) => {
            return SaslAnswer {
                frame: answer(
                    &SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(bytes)),
                ),
                close: false,
                failure: None,
            };
        }
        Step::Done { principal, reply } => Ok((principal, reply)),
        // PBKDF2 off the shard: it would hold every connection here.
        Step::Verify(check) => engine::rt::spawn_blocking(move || check.run())
            .await
            .map(|principal| (principal, Vec::new())),
        Step::Failed(why) => Err(why),
    };
    let mechanism = exchange.mechanism();
    let ended = ended.and_then(|(principal, reply)| match again.take() {
        Some(before) if before.principal != principal => Err(format!(
            "re-authenticated as {principal}, not {}",
            before.principal
        )),
        _ => Ok((principal, reply)),
    });
    match ended {
        Ok((principal, reply)) => {
            let lifetime = config.session_lifetime;
            *state = SaslState::Authenticated(Session {
                principal,
                mechanism,
                expires: lifetime.map(|l| std::time::Instant::now() + l),
            });
            let lifetime_ms =
                lifetime.map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
            SaslAnswer {
                frame: answer(
                    &SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(reply))
                        .with_session_lifetime_ms(lifetime_ms),
                ),
                close: false,
                failure: None,
            }
        }
        Err(why) => {
            let message = format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                mechanism.name()
            );
            let response = SaslAuthenticateResponse::default()
                .with_error_code(SASL_AUTHENTICATION_FAILED)
                .with_error_message(Some(StrBytes::from_string(message)));
            closing(answer(&response), Some(why))
        }
    }
}

/// ILLEGAL_SASL_STATE: the connection closes while it authenticates; on a
/// listener without SASL, or once authenticated, it goes on (as Kafka's
/// request handler answers there).
fn out_of_turn(state: &SaslState, frame: Result<Bytes, FrameError>, why: &str) -> SaslAnswer {
    match state {
        SaslState::Off | SaslState::Authenticated(_) => SaslAnswer {
            frame,
            close: false,
            failure: None,
        },
        SaslState::Start | SaslState::Exchanging(..) => closing(frame, Some(why.to_string())),
    }
}

fn closing(frame: Result<Bytes, FrameError>, failure: Option<String>) -> SaslAnswer {
    SaslAnswer {
        frame,
        close: true,
        failure,
    }
}

thread_local! {
    /// When this shard last logged a failed authentication, and how many
    /// it left out since.
    static LAST_LOGGED: std::cell::Cell<(Option<std::time::Instant>, u64)> =
        const { std::cell::Cell::new((None, 0)) };
}

/// Logs a failed authentication (`what`: SASL's, a TLS handshake) with
/// the client's address: at most one line a second per shard (a client
/// guessing passwords cannot flood the log), saying how many were left
/// out.
pub fn log_failure(what: &'static str, peer: &str, why: &str) {
    let now = std::time::Instant::now();
    let (last, left_out) = LAST_LOGGED.get();
    if last.is_some_and(|at| now.duration_since(at) < std::time::Duration::from_secs(1)) {
        LAST_LOGGED.set((last, left_out + 1));
        return;
    }
    LAST_LOGGED.set((Some(now), 0));
    tracing::warn!(%peer, why, failures_not_logged = left_out, "{what}");
}
