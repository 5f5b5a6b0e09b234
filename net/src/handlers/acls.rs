//! CreateAcls (key 30), DescribeAcls (key 29) and DeleteAcls (key 31),
//! v1-3, as `kafka-acls.sh` and every admin client use them: ACLs kept in
//! the cluster metadata (`replication::metadata::acl`). Creating needs
//! Alter on the cluster, describing Describe, deleting Alter
//! (CLUSTER_AUTHORIZATION_FAILED otherwise); without an authorizer
//! configured they answer SECURITY_DISABLED, as Kafka's do. A binding
//! that is not a valid ACL (or a filter that matches nothing sensible)
//! gets INVALID_REQUEST; creating one that exists succeeds.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use replication::metadata::acl::{AclFilter, operation};
use replication::metadata::{AclBinding, Command, MetadataError};

use super::errors::{
    CLUSTER_AUTHORIZATION_FAILED, INVALID_REQUEST, NONE, SECURITY_DISABLED, command_error_code,
};
use super::{Handler, decode_body};
use crate::broker::{CommandError, Shard};
use crate::frame::{FrameError, Request, encode_response};

pub const DESCRIBE: Handler = Handler {
    api_key: ApiKey::DescribeAcls,
    min_version: 1,
    max_version: 3,
};

pub const CREATE: Handler = Handler {
    api_key: ApiKey::CreateAcls,
    min_version: 1,
    max_version: 3,
};

pub const DELETE: Handler = Handler {
    api_key: ApiKey::DeleteAcls,
    min_version: 1,
    max_version: 3,
};

const NO_AUTHORIZER: &str = "no authorizer is configured on the broker (authorizer-enabled)";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Whether the request may go on: `Err` with the code every result gets.
fn gate(shard: &Shard, request: &Request, op: i8) -> Result<(), (i16, &'static str)> {
    if !shard.authorizing() {
        return Err((SECURITY_DISABLED, NO_AUTHORIZER));
    }
    if !shard.allowed_cluster(request, op) {
        return Err((
            CLUSTER_AUTHORIZATION_FAILED,
            "the principal may not manage ACLs (cluster authorization)",
        ));
    }
    Ok(())
}

pub async fn create(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let body: CreateAclsRequest = decode_body(request)?;
    let gate = gate(shard, request, operation::ALTER);
    let mut results = Vec::with_capacity(body.creations.len());
    for creation in body.creations {
        let acl = AclBinding {
            resource_type: creation.resource_type,
            resource_name: creation.resource_name.to_string(),
            pattern_type: creation.resource_pattern_type,
            principal: creation.principal.to_string(),
            host: creation.host.to_string(),
            operation: creation.operation,
            permission: creation.permission_type,
        };
        let outcome = match gate {
            Err((code, message)) => Err((code, message.to_string())),
            Ok(()) => match acl.invalid() {
                Some(why) => Err((INVALID_REQUEST, why.to_string())),
                None if shard.metadata().acls().any(|a| *a == acl) => Ok(()),
                None => shard
                    .execute(Command::CreateAcl(acl))
                    .await
                    .map(|_| ())
                    .map_err(|e| (command_error_code(&e), e.to_string())),
            },
        };
        results.push(match outcome {
            Ok(()) => AclCreationResult::default().with_error_code(NONE),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    let response = CreateAclsResponse::default().with_results(results);
    encode_response(
        ApiKey::CreateAcls,
        request.version(),
        request.correlation_id(),
        &response,
    )
}

/// A request's filter fields as an [`AclFilter`].
macro_rules! filter {
    ($f:expr) => {
        AclFilter {
            resource_type: $f.resource_type_filter,
            resource_name: $f.resource_name_filter.as_ref().map(|s| s.to_string()),
            pattern_type: $f.pattern_type_filter,
            principal: $f.principal_filter.as_ref().map(|s| s.to_string()),
            host: $f.host_filter.as_ref().map(|s| s.to_string()),
            operation: $f.operation,
            permission: $f.permission_type,
        }
    };
}

pub fn describe(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let body: DescribeAclsRequest = decode_body(request)?;
    let filter = filter!(body);
    let response = DescribeAclsResponse::default();
    let response = match gate(shard, request, operation::DESCRIBE).and_then(|()| {
        filter
            .invalid()
            .map_or(Ok(()), |why| Err((INVALID_REQUEST, why)))
    }) {
        Err((code, message)) => response
            .with_error_code(code)
            .with_error_message(Some(text(message))),
        Ok(()) => {
            let metadata = shard.metadata();
            let mut resources: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
            for acl in metadata.acls().filter(|acl| filter.matches(acl)) {
                let key = (
                    acl.resource_type,
                    acl.resource_name.as_str(),
                    acl.pattern_type,
                );
                resources.entry(key).or_default().push(
                    AclDescription::default()
                        .with_principal(text(&acl.principal))
                        .with_host(text(&acl.host))
                        .with_operation(acl.operation)
                        .with_permission_type(acl.permission),
                );
            }
            let resources = resources
                .into_iter()
                .map(|((resource_type, name, pattern_type), acls)| {
                    DescribeAclsResource::default()
                        .with_resource_type(resource_type)
                        .with_resource_name(text(name))
                        .with_pattern_type(pattern_type)
                        .with_acls(acls)
                })
                .collect();
            response.with_error_code(NONE).with_resources(resources)
        }
    };
    encode_response(
        ApiKey::DescribeAcls,
        request.version(),
        request.correlation_id(),
        &response,
    )
}

pub async fn delete(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let body: DeleteAclsRequest = decode_body(request)?;
    let gate = gate(shard, request, operation::ALTER);
    let mut results = Vec::with_capacity(body.filters.len());
    for requested in &body.filters {
        let filter = filter!(requested);
        let checked = gate.and_then(|()| {
            filter
                .invalid()
                .map_or(Ok(()), |why| Err((INVALID_REQUEST, why)))
        });
        if let Err((code, message)) = checked {
            results.push(
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(text(message))),
            );
            continue;
        }
        let matching: Vec<AclBinding> = shard
            .metadata()
            .acls()
            .filter(|acl| filter.matches(acl))
            .cloned()
            .collect();
        let mut deleted = Vec::with_capacity(matching.len());
        for acl in matching {
            let outcome = match shard.execute(Command::DeleteAcl(acl.clone())).await {
                // Deleted meanwhile (another filter of this request).
                Ok(_) | Err(CommandError::Refused(MetadataError::UnknownAcl)) => Ok(()),
                Err(e) => Err((command_error_code(&e), e.to_string())),
            };
            let matched = DeleteAclsMatchingAcl::default()
                .with_resource_type(acl.resource_type)
                .with_resource_name(text(&acl.resource_name))
                .with_pattern_type(acl.pattern_type)
                .with_principal(text(&acl.principal))
                .with_host(text(&acl.host))
                .with_operation(acl.operation)
                .with_permission_type(acl.permission);
            deleted.push(match outcome {
                Ok(()) => matched.with_error_code(NONE),
                Err((code, message)) => matched
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            });
        }
        results.push(
            DeleteAclsFilterResult::default()
                .with_error_code(NONE)
                .with_matching_acls(deleted),
        );
    }
    let response = DeleteAclsResponse::default().with_filter_results(results);
    encode_response(
        ApiKey::DeleteAcls,
        request.version(),
        request.correlation_id(),
        &response,
    )
}
