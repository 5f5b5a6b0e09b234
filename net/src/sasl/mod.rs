//! SASL on the Kafka listener (issue 17, in progress): the mechanisms as
//! sans-IO server exchanges, fed the bytes of each SaslAuthenticate (or
//! of each raw token after a v0 SaslHandshake) and answering with the
//! bytes to send back:
//! - PLAIN (RFC 4616): `authzid NUL authcid NUL password`, checked
//!   against the user's SCRAM credential (the password is never stored).
//! - SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, 7677): salted and
//!   iterated (PBKDF2), the client's proof checked in constant time, the
//!   nonce the server made checked in the client's final message, the
//!   server's signature sent back.
//!
//! Failures say why for the broker's log only; the client is told what
//! Kafka tells it (authentication failed), so an unknown user and a wrong
//! password look alike to it.

pub mod scram;

pub use scram::{ScramCredential, ScramMechanism};

/// The mechanisms a listener can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    /// Every mechanism, as SaslHandshake lists them.
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    /// The mechanism a client names (as SaslHandshake carries it).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Where an exchange finds a user's credentials.
pub trait Credentials {
    /// The user's SCRAM credential for `mechanism`, if it has one.
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// What a step of an exchange asks for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes; the client answers with the next step's.
    Continue(Vec<u8>),
    /// Authenticated as `principal` (Kafka's `User:NAME`); send `reply`.
    Done { principal: String, reply: Vec<u8> },
    /// PLAIN: the password is checked by deriving its key (PBKDF2, a few
    /// milliseconds): the caller runs [`PasswordCheck::run`] off the
    /// shard; it ends the exchange (authenticated, or failed).
    Verify(PasswordCheck),
    /// Not authenticated; why, for the log (the client is told only that
    /// authentication failed).
    Failed(String),
}

/// One authentication exchange on a connection.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    scram: Option<scram::ServerExchange>,
    nonce: String,
    over: bool,
}

impl Exchange {
    /// An exchange of `mechanism`; `nonce` is the server's part of SCRAM's
    /// nonce (fresh and unpredictable per exchange: [`fresh_nonce`]).
    pub fn new(mechanism: Mechanism, nonce: String) -> Exchange {
        Exchange {
            mechanism,
            scram: None,
            nonce,
            over: false,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The client's next message.
    pub fn step(&mut self, input: &[u8], credentials: &dyn Credentials) -> Step {
        if self.over {
            return Step::Failed("the exchange is over".into());
        }
        let step = match self.mechanism {
            Mechanism::Plain => plain(input, credentials),
            Mechanism::Scram(mechanism) => match &mut self.scram {
                None => {
                    match scram::ServerExchange::first(mechanism, input, &self.nonce, credentials) {
                        Ok((exchange, server_first)) => {
                            self.scram = Some(exchange);
                            Step::Continue(server_first.into_bytes())
                        }
                        Err(why) => Step::Failed(why),
                    }
                }
                Some(exchange) => match exchange.last(input) {
                    Ok((user, server_final)) => Step::Done {
                        principal: format!("User:{user}"),
                        reply: server_final.into_bytes(),
                    },
                    Err(why) => Step::Failed(why),
                },
            },
        };
        if !matches!(step, Step::Continue(_)) {
            self.over = true;
        }
        step
    }
}

/// PLAIN: one message, `authzid NUL authcid NUL password`; the
/// authorization id, if given, must be the user (as Kafka requires).
fn plain(input: &[u8], credentials: &dyn Credentials) -> Step {
    let mut parts = input.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed("PLAIN: not authzid NUL authcid NUL password".into());
    };
    let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
        return Step::Failed("PLAIN: a name is not UTF-8".into());
    };
    if user.is_empty() || password.is_empty() {
        return Step::Failed("PLAIN: an empty user name or password".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Step::Failed(format!(
            "PLAIN: authorization id {authzid} is not the user {user}"
        ));
    }
    match plain_credential(credentials, user) {
        Some(credential) => Step::Verify(PasswordCheck::new(user, credential, password)),
        None => Step::Failed(format!("PLAIN: no credential for {user}")),
    }
}

/// The credential a PLAIN password of `user` is checked against: its
/// SCRAM-SHA-256 one, else its SCRAM-SHA-512 one.
pub fn plain_credential(credentials: &dyn Credentials, user: &str) -> Option<ScramCredential> {
    credentials
        .scram(user, ScramMechanism::Sha256)
        .or_else(|| credentials.scram(user, ScramMechanism::Sha512))
}

/// A PLAIN password to check against the user's SCRAM credential.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCheck {
    user: String,
    credential: ScramCredential,
    password: Vec<u8>,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "PasswordCheck({})", self.user)
    }
}

impl PasswordCheck {
    pub fn new(user: &str, credential: ScramCredential, password: &[u8]) -> PasswordCheck {
        PasswordCheck {
            user: user.to_string(),
            credential,
            password: password.to_vec(),
        }
    }

    /// The stored key the password is checked against.
    pub fn stored_key(&self) -> &[u8] {
        &self.credential.stored_key
    }

    /// Derives the password's key and compares (constant time): the
    /// principal, or why not.
    pub fn run(self) -> Result<String, String> {
        if self.credential.matches_password(&self.password) {
            Ok(format!("User:{}", self.user))
        } else {
            Err(format!("PLAIN: a wrong password for {}", self.user))
        }
    }
}

/// A server nonce: 128 random bits (the operating system's generator),
/// printable.
pub fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A salt for a new credential: 128 random bits (the operating system's
/// generator).
pub fn fresh_salt() -> Vec<u8> {
    uuid::Uuid::new_v4().as_bytes().to_vec()
}

/// Whether `a` and `b` are equal, looking at every byte whatever it finds
/// (no early exit an attacker could time).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(String, ScramCredential);

    impl Credentials for One {
        fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
            (user == self.0 && mechanism == self.1.mechanism).then(|| self.1.clone())
        }
    }

    fn alice() -> One {
        let credential =
            ScramCredential::derive(ScramMechanism::Sha256, b"s3cret", b"salty".to_vec(), 4096);
        One("alice".into(), credential)
    }

    #[test]
    fn plain_takes_the_right_password_only() {
        let users = alice();
        let done = |input: &[u8]| match Exchange::new(Mechanism::Plain, String::new())
            .step(input, &users)
        {
            Step::Verify(check) => check.run().is_ok(),
            _ => false,
        };
        assert!(done(b"\0alice\0s3cret"));
        assert!(done(b"alice\0alice\0s3cret"));
        for bad in [
            &b"\0alice\0wrong"[..],
            b"\0bob\0s3cret",
            b"bob\0alice\0s3cret",
            b"\0alice\0",
            b"alice\0s3cret",
            b"\0alice\0s3cret\0more",
        ] {
            assert!(!done(bad), "{bad:?}");
        }
    }

    /// alice's credentials for both SCRAM mechanisms (derived once: PBKDF2
    /// is slow in a debug build).
    #[derive(Clone)]
    struct Both(ScramCredential, ScramCredential);

    impl Credentials for Both {
        fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
            let credential = match mechanism {
                ScramMechanism::Sha256 => &self.0,
                ScramMechanism::Sha512 => &self.1,
            };
            (user == "alice").then(|| credential.clone())
        }
    }

    thread_local! {
        static SALTED: Both = Both(
            ScramCredential::derive(ScramMechanism::Sha256, b"s3cret", b"salty".to_vec(), 4096),
            ScramCredential::derive(ScramMechanism::Sha512, b"s3cret", b"salty".to_vec(), 4096),
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 128,
            rng_seed: proptest::test_runner::RngSeed::Fixed(368),
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Random client messages (a first one of random bytes, or a valid
        /// first one and then random or cut final ones) never panic and
        /// never authenticate, whatever the mechanism. Seed 368.
        #[test]
        fn random_and_truncated_exchanges_never_authenticate(
            mechanism in 0usize..3,
            first in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            last in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cut in 0usize..200,
            valid_first in proptest::prelude::any::<bool>(),
        ) {
            let mechanism = Mechanism::ALL[mechanism];
            let users = SALTED.with(|users| users.clone());
            let mut exchange = Exchange::new(mechanism, "server-nonce".into());
            // A real client's exchange (SCRAM), its final message cut short.
            let mut client = match mechanism {
                Mechanism::Scram(scram) if valid_first => Some(scram::ClientExchange::new(
                    scram, "alice", b"s3cret", "client-nonce".into())),
                _ => None,
            };
            let first = match &client {
                Some((_, real_first)) => real_first.as_bytes().to_vec(),
                None => first,
            };
            let mut steps = vec![exchange.step(&first, &users)];
            if let Step::Continue(server_first) = &steps[0] {
                let last = match &mut client {
                    Some((client, _)) => {
                        let mut real = client.respond(server_first).unwrap().into_bytes();
                        real.truncate(cut.min(real.len().saturating_sub(1)));
                        real
                    }
                    None => last,
                };
                steps.push(exchange.step(&last, &users));
            }
            for step in steps {
                let authenticated = match step {
                    Step::Done { .. } => true,
                    Step::Verify(check) => check.run().is_ok(),
                    Step::Continue(_) | Step::Failed(_) => false,
                };
                proptest::prop_assert!(!authenticated);
            }
        }
    }

    #[test]
    fn mechanisms_are_named_as_kafka_names_them() {
        let names: Vec<&str> = Mechanism::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
        assert_eq!(
            Mechanism::from_name("SCRAM-SHA-512"),
            Some(Mechanism::Scram(ScramMechanism::Sha512))
        );
        assert_eq!(Mechanism::from_name("GSSAPI"), None);
    }
}
