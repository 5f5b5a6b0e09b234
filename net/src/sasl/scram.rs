//! SCRAM-SHA-256 and SCRAM-SHA-512, the server's side (RFC 5802, RFC
//! 7677): the client's first message (`n,,n=USER,r=CNONCE`), the
//! server's (`r=CNONCE SNONCE,s=SALT,i=ITERATIONS`), the client's final
//! (`c=GS2,r=NONCE,p=PROOF`) checked, and the server's final
//! (`v=SIGNATURE`). What is stored per user is the credential: salt,
//! iterations, StoredKey and ServerKey, never the password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{Credentials, constant_time_eq};

/// The fewest and most iterations a credential may have (Kafka's bounds).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's number of the mechanism (ScramMechanism in the admin APIs).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => replication::metadata::SCRAM_SHA_256,
            ScramMechanism::Sha512 => replication::metadata::SCRAM_SHA_512,
        }
    }

    /// The mechanism of this name (`SCRAM-SHA-256`, `SCRAM-SHA-512`).
    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// The mechanism of Kafka's number.
    pub fn from_kafka_type(kafka_type: i8) -> Option<ScramMechanism> {
        [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .find(|m| m.kafka_type() == kafka_type)
    }

    /// The length of this mechanism's hash (and so of a salted password).
    pub fn hash_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A user's SCRAM credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential of `password` with `salt` and `iterations`.
    pub fn derive(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let salted = mechanism.salted_password(password, &salt, iterations);
        ScramCredential::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential of a salted password (`Hi(password, salt, i)`, as
    /// AlterUserScramCredentials carries it: the client salts and iterates).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            mechanism,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// The credential the metadata keeps for `mechanism`.
    pub fn from_stored(
        mechanism: ScramMechanism,
        stored: &replication::metadata::StoredScram,
    ) -> ScramCredential {
        ScramCredential {
            mechanism,
            salt: stored.salt.clone(),
            iterations: stored.iterations,
            stored_key: stored.stored_key.clone(),
            server_key: stored.server_key.clone(),
        }
    }

    /// The form the metadata keeps.
    pub fn to_stored(&self) -> replication::metadata::StoredScram {
        replication::metadata::StoredScram {
            salt: self.salt.clone(),
            iterations: self.iterations,
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
        }
    }

    /// Whether `password` is the one this credential was derived from
    /// (PLAIN), compared in constant time.
    pub fn matches_password(&self, password: &[u8]) -> bool {
        let again =
            ScramCredential::derive(self.mechanism, password, self.salt.clone(), self.iterations);
        constant_time_eq(&again.stored_key, &self.stored_key)
    }
}

/// A SCRAM exchange after the client's first message.
#[derive(Debug)]
pub(super) struct ServerExchange {
    user: String,
    credential: ScramCredential,
    /// client-first-message-bare "," server-first-message.
    said: String,
    nonce: String,
    gs2_header: String,
}

/// A saslname (RFC 5802): `=2C` is `,` and `=3D` is `=`; any other `=`
/// is an error.
fn decode_saslname(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(format!("a bad escape in the user name {name:?}")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ServerExchange {
    /// Takes the client's first message; returns the exchange and the
    /// server's first message.
    pub(super) fn first(
        mechanism: ScramMechanism,
        input: &[u8],
        server_nonce: &str,
        credentials: &dyn Credentials,
    ) -> Result<(ServerExchange, String), String> {
        let text = std::str::from_utf8(input).map_err(|_| "not UTF-8".to_string())?;
        // gs2-header: a channel-binding flag, an optional authzid, then
        // the bare message.
        let mut fields = text.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("not a client-first-message: {text:?}"));
        };
        match flag {
            "n" | "y" => {}
            _ => return Err(format!("channel binding {flag:?} is not supported")),
        }
        let mut user = None;
        let mut client_nonce = None;
        for (i, attribute) in bare.split(',').enumerate() {
            match (i, attribute.split_once('=')) {
                (0, Some(("n", name))) => user = Some(decode_saslname(name)?),
                (1, Some(("r", nonce))) if !nonce.is_empty() => client_nonce = Some(nonce),
                (0 | 1, _) => return Err(format!("not n=USER,r=NONCE: {bare:?}")),
                // Extensions (Kafka's tokenauth): delegation tokens are
                // not served.
                (_, Some(("tokenauth", value))) if value.eq_ignore_ascii_case("true") => {
                    return Err("delegation tokens are not supported".into());
                }
                _ => {}
            }
        }
        let (Some(user), Some(client_nonce)) = (user, client_nonce) else {
            return Err(format!("not n=USER,r=NONCE: {bare:?}"));
        };
        if let Some(authzid) = authzid.strip_prefix("a=")
            && decode_saslname(authzid)? != user
        {
            return Err(format!("authorization id {authzid} is not the user {user}"));
        }
        let credential = credentials
            .scram(&user, mechanism)
            .ok_or_else(|| format!("no {} credential for {user}", mechanism.name()))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = ServerExchange {
            user,
            credential,
            said: format!("{bare},{server_first}"),
            nonce,
            gs2_header: format!("{flag},{authzid},"),
        };
        Ok((exchange, server_first))
    }

    /// Takes the client's final message; returns the user and the
    /// server's final message once the proof holds.
    pub(super) fn last(&mut self, input: &[u8]) -> Result<(String, String), String> {
        let text = std::str::from_utf8(input).map_err(|_| "not UTF-8".to_string())?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| format!("no proof in the client's final message: {text:?}"))?;
        let mut attributes = without_proof.split(',');
        let binding = attributes.next().and_then(|a| a.strip_prefix("c="));
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
        if binding != Some(&B64.encode(&self.gs2_header)) {
            return Err("the channel binding is not the first message's header".into());
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err("the nonce is not the one the server gave".into());
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| "the proof is not base64".to_string())?;
        let mechanism = self.credential.mechanism;
        let auth_message = format!("{},{without_proof}", self.said);
        let client_signature = mechanism.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err("the proof has the wrong length".into());
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&mechanism.hash(&client_key), &self.credential.stored_key) {
            return Err(format!("a wrong proof for {}", self.user));
        }
        let server_signature = mechanism.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok((
            self.user.clone(),
            format!("v={}", B64.encode(server_signature)),
        ))
    }
}

/// A saslname (RFC 5802): `,` as `=2C` and `=` as `=3D`.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// A SCRAM exchange from the client's side (the CLI's, and the server's
/// tests'): the client's first message, its final one with the proof
/// once the server's first is in, and the server's signature checked.
#[derive(Debug)]
pub struct ClientExchange {
    mechanism: ScramMechanism,
    password: Vec<u8>,
    client_nonce: String,
    first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ClientExchange {
    /// The exchange of `user` and `password`, and the client's first
    /// message; `nonce` is the client's (fresh per exchange).
    pub fn new(
        mechanism: ScramMechanism,
        user: &str,
        password: &[u8],
        nonce: String,
    ) -> (ClientExchange, String) {
        let first_bare = format!("n={},r={nonce}", encode_saslname(user));
        let first = format!("n,,{first_bare}");
        let exchange = ClientExchange {
            mechanism,
            password: password.to_vec(),
            client_nonce: nonce,
            first_bare,
            server_signature: None,
        };
        (exchange, first)
    }

    /// The client's final message, answering the server's first.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "not UTF-8".to_string())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in text.split(',') {
            match attribute.split_once('=') {
                Some(("r", value)) => nonce = Some(value),
                Some(("s", value)) => salt = B64.decode(value).ok(),
                Some(("i", value)) => iterations = value.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("not a server-first-message: {text:?}"));
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(format!("{iterations} iterations is out of bounds"));
        }
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.first_bare);
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Whether the server's final message proves it knows the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let signature = std::str::from_utf8(server_final)
            .ok()
            .and_then(|text| text.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok());
        match (&self.server_signature, signature) {
            (Some(expected), Some(got)) if constant_time_eq(expected, &got) => Ok(()),
            _ => Err("the server's signature does not verify".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Exchange, Mechanism, Step};
    use super::*;

    struct One(ScramCredential);

    impl Credentials for One {
        fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
            (user == "user" && mechanism == self.0.mechanism).then(|| self.0.clone())
        }
    }

    /// RFC 7677's example exchange, byte for byte.
    #[test]
    fn rfc_7677_example() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = ScramCredential::derive(ScramMechanism::Sha256, b"pencil", salt, 4096);
        let users = One(credential);
        let mut exchange = Exchange::new(
            Mechanism::Scram(ScramMechanism::Sha256),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
        );
        let first = exchange.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &users);
        assert_eq!(
            first,
            Step::Continue(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .to_vec()
            )
        );
        let last = exchange.step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            &users,
        );
        assert_eq!(
            last,
            Step::Done {
                principal: "User:user".into(),
                reply: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
            }
        );
    }

    fn sha512_exchange(final_message: &dyn Fn(&str) -> String) -> Step {
        let credential =
            ScramCredential::derive(ScramMechanism::Sha512, b"pw", b"0123456789".to_vec(), 4096);
        let users = One(credential.clone());
        let mut exchange = Exchange::new(Mechanism::Scram(ScramMechanism::Sha512), "SN".into());
        let Step::Continue(server_first) = exchange.step(b"n,,n=user,r=CN", &users) else {
            panic!("no server-first-message");
        };
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=CNSN,s=MDEyMzQ1Njc4OQ==,i=4096"));
        exchange.step(final_message(&server_first).as_bytes(), &users)
    }

    /// A client's final message with its proof for `password`.
    fn client_final(password: &[u8], nonce: &str, server_first: &str) -> String {
        let m = ScramMechanism::Sha512;
        let salted = m.salted_password(password, b"0123456789", 4096);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("n=user,r=CN,{server_first},{without_proof}");
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    /// Our client and server agree with each other (and so the CLI
    /// authenticates), with a user name that needs escaping.
    #[test]
    fn the_client_exchange_authenticates_and_checks_the_server() {
        let credential =
            ScramCredential::derive(ScramMechanism::Sha512, b"pw", b"salt".to_vec(), 4096);
        struct Named(ScramCredential);
        impl Credentials for Named {
            fn scram(&self, user: &str, _: ScramMechanism) -> Option<ScramCredential> {
                (user == "a,b=c").then(|| self.0.clone())
            }
        }
        let users = Named(credential);
        for (password, ok) in [(&b"pw"[..], true), (b"nope", false)] {
            let (mut client, first) =
                ClientExchange::new(ScramMechanism::Sha512, "a,b=c", password, "CN".into());
            let mut server = Exchange::new(Mechanism::Scram(ScramMechanism::Sha512), "SN".into());
            let Step::Continue(server_first) = server.step(first.as_bytes(), &users) else {
                panic!("no server-first-message");
            };
            let last = client.respond(&server_first).unwrap();
            match server.step(last.as_bytes(), &users) {
                Step::Done { principal, reply } => {
                    assert!(ok);
                    assert_eq!(principal, "User:a,b=c");
                    client.verify(&reply).unwrap();
                    assert!(client.verify(b"v=AAAA").is_err());
                }
                Step::Failed(_) => assert!(!ok),
                other => panic!("not the last step: {other:?}"),
            }
        }
        let (mut client, _) = ClientExchange::new(ScramMechanism::Sha256, "u", b"p", "CN".into());
        for bad in [
            &b"r=XX,s=c2FsdA==,i=4096"[..],
            b"r=CN,s=c2FsdA==,i=4096",
            b"r=CNx,s=c2FsdA==,i=99999999",
        ] {
            assert!(client.respond(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sha512_proofs_are_checked() {
        let ok = sha512_exchange(&|first| client_final(b"pw", "CNSN", first));
        assert!(matches!(ok, Step::Done { .. }), "{ok:?}");
        let wrong_password = sha512_exchange(&|first| client_final(b"other", "CNSN", first));
        assert!(matches!(wrong_password, Step::Failed(_)));
        let wrong_nonce = sha512_exchange(&|first| client_final(b"pw", "CNXX", first));
        assert!(matches!(wrong_nonce, Step::Failed(_)));
        let binding = sha512_exchange(&|first| {
            client_final(b"pw", "CNSN", first).replacen("c=biws", "c=eSws", 1)
        });
        assert!(matches!(binding, Step::Failed(_)));
    }

    #[test]
    fn bad_first_messages_fail() {
        let credential = ScramCredential::derive(ScramMechanism::Sha256, b"pw", vec![1; 16], 4096);
        let users = One(credential);
        for bad in [
            &b"n,,n=nobody,r=abc"[..],
            b"p=tls-unique,,n=user,r=abc",
            b"n,,r=abc,n=user",
            b"n,,n=user",
            b"n,,n=us=4Cer,r=abc",
            b"n,a=other,n=user,r=abc",
            b"n,,n=user,r=abc,tokenauth=true",
            b"\xff\xfe",
        ] {
            let mut exchange = Exchange::new(Mechanism::Scram(ScramMechanism::Sha256), "s".into());
            assert!(
                matches!(exchange.step(bad, &users), Step::Failed(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
    }
}
