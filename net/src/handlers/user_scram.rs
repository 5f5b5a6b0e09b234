//! AlterUserScramCredentials (key 51, v0) and DescribeUserScramCredentials
//! (key 50, v0): users' SCRAM credentials in the cluster metadata (KIP-554),
//! as `kafka-configs.sh --entity-type users` and every admin client manage
//! them. The client salts and iterates the password; the broker keeps only
//! RFC 5802's StoredKey and ServerKey derived from it, and Describe tells
//! mechanisms and iterations, never a key.
//!
//! Each user gets one result: DUPLICATE_RESOURCE when a request alters the
//! same user and mechanism twice (nothing of that user is changed),
//! UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL (an empty name, too
//! few or too many iterations, an empty salt, a salted password that is
//! not the mechanism's hash length), RESOURCE_NOT_FOUND (deleting or
//! describing a credential that does not exist), or the first failure of
//! its changes, which are applied in order.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::{Command, acl};

use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, DUPLICATE_RESOURCE, NONE, RESOURCE_NOT_FOUND,
    UNACCEPTABLE_CREDENTIAL, UNSUPPORTED_SASL_MECHANISM, command_error_code,
};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};
use crate::sasl::scram::{ITERATIONS_MAX, ITERATIONS_MIN};
use crate::sasl::{ScramCredential, ScramMechanism};

pub const ALTER: Handler = Handler {
    api_key: ApiKey::AlterUserScramCredentials,
    min_version: 0,
    max_version: 0,
};

pub const DESCRIBE: Handler = Handler {
    api_key: ApiKey::DescribeUserScramCredentials,
    min_version: 0,
    max_version: 0,
};

/// A refusal: a Kafka error code and why.
type Refusal = (i16, String);
/// A change, checked into a metadata command or refused.
type Checked = Result<Command, Refusal>;

/// One change a request asks for, checked into a metadata command.
fn upsertion(
    upsertion: &kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion,
) -> Checked {
    let unacceptable = |why: &str| (UNACCEPTABLE_CREDENTIAL, why.to_string());
    let mechanism = ScramMechanism::from_kafka_type(upsertion.mechanism).ok_or_else(|| {
        (
            UNSUPPORTED_SASL_MECHANISM,
            format!("unknown SCRAM mechanism {}", upsertion.mechanism),
        )
    })?;
    let iterations = u32::try_from(upsertion.iterations).unwrap_or(0);
    if iterations < ITERATIONS_MIN {
        return Err(unacceptable("too few iterations (at least 4096)"));
    }
    if iterations > ITERATIONS_MAX {
        return Err(unacceptable("too many iterations (at most 16384)"));
    }
    if upsertion.salt.is_empty() {
        return Err(unacceptable("the salt is empty"));
    }
    if upsertion.salted_password.len() != mechanism.hash_len() {
        return Err(unacceptable(
            "the salted password is not the mechanism's hash length",
        ));
    }
    let credential = ScramCredential::from_salted_password(
        mechanism,
        &upsertion.salted_password,
        upsertion.salt.to_vec(),
        iterations,
    );
    Ok(Command::UpsertScramCredential {
        user: upsertion.name.to_string(),
        mechanism: upsertion.mechanism,
        credential: credential.to_stored(),
    })
}

pub async fn alter(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let body: AlterUserScramCredentialsRequest = decode_body(request)?;
    // Each user's changes in request order (deletions first, as the
    // request lists them), and whether one of its pairs came twice.
    let mut users: Vec<(String, Vec<Checked>)> = Vec::new();
    let mut seen: BTreeMap<(String, i8), usize> = BTreeMap::new();
    let mut duplicated = Vec::new();
    let deletions = body.deletions.iter().map(|d| {
        let command = match ScramMechanism::from_kafka_type(d.mechanism) {
            Some(_) => Ok(Command::DeleteScramCredential {
                user: d.name.to_string(),
                mechanism: d.mechanism,
            }),
            None => Err((
                UNSUPPORTED_SASL_MECHANISM,
                format!("unknown SCRAM mechanism {}", d.mechanism),
            )),
        };
        (&d.name, d.mechanism, command)
    });
    let upsertions = body
        .upsertions
        .iter()
        .map(|u| (&u.name, u.mechanism, upsertion(u)));
    for (name, mechanism, command) in deletions.chain(upsertions) {
        let user = name.to_string();
        let index = match users.iter().position(|(u, _)| *u == user) {
            Some(index) => index,
            None => {
                users.push((user.clone(), Vec::new()));
                users.len() - 1
            }
        };
        if seen.insert((user, mechanism), index).is_some() {
            duplicated.push(index);
        }
        if let Some((_, commands)) = users.get_mut(index) {
            commands.push(command);
        }
    }
    let permitted = shard.allowed_cluster(request, acl::operation::ALTER);
    let mut results = Vec::with_capacity(users.len());
    for (index, (user, commands)) in users.into_iter().enumerate() {
        let outcome = if !permitted {
            Err((
                CLUSTER_AUTHORIZATION_FAILED,
                "the principal may not alter users' credentials".into(),
            ))
        } else if duplicated.contains(&index) {
            Err((
                DUPLICATE_RESOURCE,
                "a user's credential for a mechanism is altered twice in one request".into(),
            ))
        } else if user.is_empty() {
            Err((UNACCEPTABLE_CREDENTIAL, "the user name is empty".into()))
        } else {
            apply(shard, commands).await
        };
        results.push(user_result(&user, outcome));
    }
    let response = AlterUserScramCredentialsResponse::default().with_results(results);
    encode_response(
        ApiKey::AlterUserScramCredentials,
        request.version(),
        request.correlation_id(),
        &response,
    )
}

/// A user's checked changes, in order, up to the first that fails (none
/// when one of them failed its checks).
async fn apply(shard: &Shard, commands: Vec<Checked>) -> Result<(), Refusal> {
    let commands: Vec<Command> = commands.into_iter().collect::<Result<_, _>>()?;
    for command in commands {
        shard
            .execute(command)
            .await
            .map_err(|e| (command_error_code(&e), e.to_string()))?;
    }
    Ok(())
}

fn user_result(user: &str, outcome: Result<(), Refusal>) -> AlterUserScramCredentialsResult {
    let result =
        AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user.into()));
    match outcome {
        Ok(()) => result.with_error_code(NONE),
        Err((code, message)) => result
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}

pub fn describe(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let body: DescribeUserScramCredentialsRequest = decode_body(request)?;
    if !shard.allowed_cluster(request, acl::operation::DESCRIBE) {
        let response = DescribeUserScramCredentialsResponse::default()
            .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(
                "the principal may not describe users' credentials",
            )));
        return encode_response(
            ApiKey::DescribeUserScramCredentials,
            request.version(),
            request.correlation_id(),
            &response,
        );
    }
    let metadata = shard.metadata();
    let mut credentials: BTreeMap<&str, Vec<CredentialInfo>> = BTreeMap::new();
    for (user, mechanism, stored) in metadata.scram_credentials() {
        credentials.entry(user).or_default().push(
            CredentialInfo::default()
                .with_mechanism(mechanism)
                .with_iterations(i32::try_from(stored.iterations).unwrap_or(i32::MAX)),
        );
    }
    // No names (or none given): every user with a credential.
    let asked: Vec<String> = match body.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => credentials.keys().map(|u| u.to_string()).collect(),
    };
    let results = asked
        .iter()
        .map(|user| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            let error = |code, message: &'static str| {
                result
                    .clone()
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_static_str(message)))
            };
            if asked.iter().filter(|u| *u == user).count() > 1 {
                return error(
                    DUPLICATE_RESOURCE,
                    "a user is described twice in one request",
                );
            }
            match credentials.get(user.as_str()) {
                Some(infos) => result.with_credential_infos(infos.clone()),
                None => error(
                    RESOURCE_NOT_FOUND,
                    "attempt to describe a user credential that does not exist",
                ),
            }
        })
        .collect();
    let response = DescribeUserScramCredentialsResponse::default().with_results(results);
    encode_response(
        ApiKey::DescribeUserScramCredentials,
        request.version(),
        request.correlation_id(),
        &response,
    )
}
