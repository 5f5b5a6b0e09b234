//! `shardlog acl add|list|remove`: ACLs on any Kafka-compatible broker
//! with an authorizer (CreateAcls, DescribeAcls, DeleteAcls), as
//! `kafka-acls.sh` manages them: `shardlog acl add topic orders
//! --principal User:alice --operation read --operation write`.

use anyhow::{Context, bail};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::acl::{CLUSTER_NAME, operation, pattern, permission, resource};

use crate::cli::Target;
use crate::wire::Connection;

#[derive(Debug, clap::Args)]
pub struct Binding {
    /// topic, group, cluster or transactional-id.
    resource: String,
    /// The resource's name (none for the cluster).
    name: Option<String>,
    /// `User:NAME` (or `User:*`).
    #[arg(long)]
    principal: String,
    /// read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write or all
    /// (repeatable).
    #[arg(long = "operation", required = true)]
    operations: Vec<String>,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
    /// The name is a prefix (every resource whose name starts with it).
    #[arg(long)]
    prefixed: bool,
    /// The client address the ACL applies to.
    #[arg(long, default_value = "*")]
    host: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum AclCommand {
    /// Adds ACLs: one per operation.
    Add {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        binding: Binding,
    },
    /// Every ACL (of a resource type, and name, when given).
    List {
        #[command(flatten)]
        target: Target,
        resource: Option<String>,
        name: Option<String>,
    },
    /// Removes the ACLs that match exactly.
    Remove {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        binding: Binding,
    },
}

const RESOURCES: [(&str, i8); 4] = [
    ("topic", resource::TOPIC),
    ("group", resource::GROUP),
    ("cluster", resource::CLUSTER),
    ("transactional-id", resource::TRANSACTIONAL_ID),
];

const OPERATIONS: [(&str, i8); 11] = [
    ("all", operation::ALL),
    ("read", operation::READ),
    ("write", operation::WRITE),
    ("create", operation::CREATE),
    ("delete", operation::DELETE),
    ("alter", operation::ALTER),
    ("describe", operation::DESCRIBE),
    ("cluster-action", operation::CLUSTER_ACTION),
    ("describe-configs", operation::DESCRIBE_CONFIGS),
    ("alter-configs", operation::ALTER_CONFIGS),
    ("idempotent-write", operation::IDEMPOTENT_WRITE),
];

fn code_of(table: &[(&str, i8)], name: &str, what: &str) -> anyhow::Result<i8> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, code)| *code)
        .with_context(|| format!("{name:?} is not a {what}"))
}

fn name_of(table: &[(&'static str, i8)], code: i8) -> String {
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| code.to_string(), |(n, _)| (*n).to_string())
}

/// (resource type, name, pattern type, permission, operations).
fn parts(binding: &Binding) -> anyhow::Result<(i8, String, i8, i8, Vec<i8>)> {
    let resource_type = code_of(&RESOURCES, &binding.resource, "resource type")?;
    let name = match (resource_type, &binding.name) {
        (resource::CLUSTER, _) => CLUSTER_NAME.to_string(),
        (_, Some(name)) => name.clone(),
        (_, None) => bail!("a {} needs a name", binding.resource),
    };
    let pattern_type = if binding.prefixed {
        pattern::PREFIXED
    } else {
        pattern::LITERAL
    };
    let permission = if binding.deny {
        permission::DENY
    } else {
        permission::ALLOW
    };
    let operations = binding
        .operations
        .iter()
        .map(|o| code_of(&OPERATIONS, o, "operation"))
        .collect::<anyhow::Result<_>>()?;
    Ok((resource_type, name, pattern_type, permission, operations))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn connect(target: &Target) -> anyhow::Result<Connection> {
    Connection::open(
        &target.bootstrap,
        target.tls().as_ref(),
        target.sasl()?.as_ref(),
    )
}

fn failed(code: i16, message: Option<&StrBytes>) -> anyhow::Error {
    anyhow::anyhow!("error {code}: {}", message.map_or("", |m| m.as_str()))
}

pub fn run(command: AclCommand) -> anyhow::Result<()> {
    match command {
        AclCommand::Add { target, binding } => add(&target, &binding),
        AclCommand::List {
            target,
            resource,
            name,
        } => list(&target, resource.as_deref(), name.as_deref()),
        AclCommand::Remove { target, binding } => remove(&target, &binding),
    }
}

fn add(target: &Target, binding: &Binding) -> anyhow::Result<()> {
    let (resource_type, name, pattern_type, permission, operations) = parts(binding)?;
    let creations = operations
        .into_iter()
        .map(|op| {
            AclCreation::default()
                .with_resource_type(resource_type)
                .with_resource_name(text(&name))
                .with_resource_pattern_type(pattern_type)
                .with_principal(text(&binding.principal))
                .with_host(text(&binding.host))
                .with_operation(op)
                .with_permission_type(permission)
        })
        .collect();
    let request = CreateAclsRequest::default().with_creations(creations);
    let response: CreateAclsResponse =
        connect(target)?.call(ApiKey::CreateAcls, 1..=3, &request)?;
    for result in response.results {
        if result.error_code != 0 {
            return Err(failed(result.error_code, result.error_message.as_ref()));
        }
    }
    println!("added");
    Ok(())
}

fn list(target: &Target, resource: Option<&str>, name: Option<&str>) -> anyhow::Result<()> {
    let resource_type = match resource {
        Some(r) => code_of(&RESOURCES, r, "resource type")?,
        None => resource::ANY,
    };
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(resource_type)
        .with_resource_name_filter(name.map(text))
        .with_pattern_type_filter(if name.is_some() {
            pattern::MATCH
        } else {
            pattern::ANY
        })
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(operation::ANY)
        .with_permission_type(permission::ANY);
    let response: DescribeAclsResponse =
        connect(target)?.call(ApiKey::DescribeAcls, 1..=3, &request)?;
    if response.error_code != 0 {
        return Err(failed(response.error_code, response.error_message.as_ref()));
    }
    for r in response.resources {
        let kind = name_of(&RESOURCES, r.resource_type);
        let prefixed = if r.pattern_type == pattern::PREFIXED {
            "prefixed"
        } else {
            "literal"
        };
        for acl in r.acls {
            let allow = if acl.permission_type == permission::DENY {
                "deny"
            } else {
                "allow"
            };
            println!(
                "{kind}\t{}\t{prefixed}\t{}\t{}\t{}\t{allow}",
                r.resource_name.as_str(),
                acl.principal.as_str(),
                acl.host.as_str(),
                name_of(&OPERATIONS, acl.operation)
            );
        }
    }
    Ok(())
}

fn remove(target: &Target, binding: &Binding) -> anyhow::Result<()> {
    let (resource_type, name, pattern_type, permission, operations) = parts(binding)?;
    let filters = operations
        .into_iter()
        .map(|op| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(resource_type)
                .with_resource_name_filter(Some(text(&name)))
                .with_pattern_type_filter(pattern_type)
                .with_principal_filter(Some(text(&binding.principal)))
                .with_host_filter(Some(text(&binding.host)))
                .with_operation(op)
                .with_permission_type(permission)
        })
        .collect();
    let request = DeleteAclsRequest::default().with_filters(filters);
    let response: DeleteAclsResponse =
        connect(target)?.call(ApiKey::DeleteAcls, 1..=3, &request)?;
    let mut removed = 0;
    for result in response.filter_results {
        if result.error_code != 0 {
            return Err(failed(result.error_code, result.error_message.as_ref()));
        }
        removed += result.matching_acls.len();
    }
    println!("removed {removed}");
    Ok(())
}
