//! `shardlog user list|set|delete`: users' SCRAM credentials on any
//! Kafka-compatible broker (DescribeUserScramCredentials and
//! AlterUserScramCredentials, as `kafka-configs.sh --entity-type users`).
//! The password is salted and iterated here; the broker is sent the
//! salted password and keeps only the keys derived from it.

use std::io::BufRead;

use anyhow::{Context, bail};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::sasl::ScramMechanism;

use crate::cli::Target;
use crate::wire::Connection;

const MECHANISMS: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Users with SCRAM credentials: mechanism and iterations of each.
    List {
        #[command(flatten)]
        target: Target,
        /// Only these users (each must exist).
        names: Vec<String>,
    },
    /// Sets a user's password: a SCRAM credential per mechanism.
    Set {
        #[command(flatten)]
        target: Target,
        name: String,
        /// The password (else one line read from stdin).
        #[arg(long)]
        password: Option<String>,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; default both).
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
        #[arg(long, default_value_t = 4096)]
        iterations: u32,
    },
    /// Deletes a user's credentials (every mechanism, or those named).
    Delete {
        #[command(flatten)]
        target: Target,
        name: String,
        #[arg(long = "mechanism")]
        mechanisms: Vec<String>,
    },
}

pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::List { target, names } => {
            let mut connection = connect(&target)?;
            for (user, mechanism, iterations) in describe(&mut connection, &names)? {
                println!("{user}\t{mechanism}\t{iterations}");
            }
            Ok(())
        }
        UserCommand::Set {
            target,
            name,
            password,
            mechanisms,
            iterations,
        } => {
            let password = match password {
                Some(password) => password,
                None => read_password()?,
            };
            let upsertions = mechanisms_of(&mechanisms)?
                .into_iter()
                .map(|mechanism| {
                    let salt = net::sasl::fresh_salt();
                    let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(mechanism.kafka_type())
                        .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        .with_salt(salt.into())
                        .with_salted_password(salted.into())
                })
                .collect();
            let request = AlterUserScramCredentialsRequest::default().with_upsertions(upsertions);
            alter(&mut connect(&target)?, &request)?;
            println!("set {name}");
            Ok(())
        }
        UserCommand::Delete {
            target,
            name,
            mechanisms,
        } => {
            let mut connection = connect(&target)?;
            let mechanisms: Vec<i8> = if mechanisms.is_empty() {
                // Every mechanism the user has.
                describe(&mut connection, std::slice::from_ref(&name))?
                    .into_iter()
                    .filter_map(|(_, mechanism, _)| ScramMechanism::from_name(&mechanism))
                    .map(ScramMechanism::kafka_type)
                    .collect()
            } else {
                mechanisms_of(&mechanisms)?
                    .into_iter()
                    .map(ScramMechanism::kafka_type)
                    .collect()
            };
            let deletions = mechanisms
                .into_iter()
                .map(|mechanism| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(mechanism)
                })
                .collect();
            let request = AlterUserScramCredentialsRequest::default().with_deletions(deletions);
            alter(&mut connection, &request)?;
            println!("deleted {name}");
            Ok(())
        }
    }
}

fn connect(target: &Target) -> anyhow::Result<Connection> {
    Connection::open(
        &target.bootstrap,
        target.tls().as_ref(),
        target.sasl()?.as_ref(),
    )
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password (--password, or one line on stdin)");
    }
    Ok(password)
}

/// The mechanisms named (both when none is).
fn mechanisms_of(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    if names.is_empty() {
        return Ok(MECHANISMS.to_vec());
    }
    names
        .iter()
        .map(|name| {
            ScramMechanism::from_name(name)
                .with_context(|| format!("{name:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect()
}

/// (user, mechanism, iterations) of every credential of `names` (every
/// user when empty).
fn describe(
    connection: &mut Connection,
    names: &[String],
) -> anyhow::Result<Vec<(String, String, i32)>> {
    let users = (!names.is_empty()).then(|| {
        names
            .iter()
            .map(|n| UserName::default().with_name(StrBytes::from_string(n.clone())))
            .collect()
    });
    let request = DescribeUserScramCredentialsRequest::default().with_users(users);
    let response: DescribeUserScramCredentialsResponse =
        connection.call(ApiKey::DescribeUserScramCredentials, 0..=0, &request)?;
    if response.error_code != 0 {
        bail!(
            "DescribeUserScramCredentials: error {}: {}",
            response.error_code,
            response.error_message.as_ref().map_or("", |m| m.as_str())
        );
    }
    let mut out = Vec::new();
    for result in response.results {
        if result.error_code != 0 {
            bail!(
                "user {}: error {}: {}",
                result.user.as_str(),
                result.error_code,
                result.error_message.as_ref().map_or("", |m| m.as_str())
            );
        }
        for info in result.credential_infos {
            let mechanism = ScramMechanism::from_kafka_type(info.mechanism).map_or_else(
                || format!("mechanism {}", info.mechanism),
                |m| m.name().into(),
            );
            out.push((result.user.to_string(), mechanism, info.iterations));
        }
    }
    Ok(out)
}

fn alter(
    connection: &mut Connection,
    request: &AlterUserScramCredentialsRequest,
) -> anyhow::Result<()> {
    let response: AlterUserScramCredentialsResponse =
        connection.call(ApiKey::AlterUserScramCredentials, 0..=0, request)?;
    for result in response.results {
        if result.error_code != 0 {
            bail!(
                "user {}: error {}: {}",
                result.user.as_str(),
                result.error_code,
                result.error_message.as_ref().map_or("", |m| m.as_str())
            );
        }
    }
    Ok(())
}
