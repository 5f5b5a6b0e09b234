//! AlterConfigs (key 33): replaces a resource's dynamic configs with the
//! ones given (Kafka's non-incremental semantics: the rest return to their
//! defaults).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::config_resource::{Resource, ResourceError, alter, resource, topic_key};
use super::errors::NONE;
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::AlterConfigs,
    min_version: 0,
    max_version: 2,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: AlterConfigsRequest = decode_body(request)?;
    let mut responses = Vec::with_capacity(body.resources.len());
    for wanted in body.resources {
        let outcome = async {
            let resource = resource(
                shard,
                request,
                acl::operation::ALTER_CONFIGS,
                wanted.resource_type,
                &wanted.resource_name,
            )?;
            let mut set = BTreeMap::new();
            for config in &wanted.configs {
                let key = topic_key(&resource, &config.name)?;
                if let Some(value) = &config.value {
                    set.insert(key.to_string(), value.to_string());
                }
            }
            let metadata = shard.metadata();
            let current = match &resource {
                Resource::Topic(name) => metadata
                    .topic(name)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default(),
                Resource::Broker => metadata.broker_configs().clone(),
            };
            let delete = current
                .keys()
                .filter(|k| !set.contains_key(*k))
                .cloned()
                .collect();
            alter(shard, resource, set, delete, body.validate_only).await
        };
        let outcome = outcome.await;
        responses.push(response(
            wanted.resource_type,
            wanted.resource_name,
            outcome,
        ));
    }
    let response = AlterConfigsResponse::default().with_responses(responses);
    encode_response(
        ApiKey::AlterConfigs,
        version,
        request.correlation_id(),
        &response,
    )
}

pub(super) fn response(
    resource_type: i8,
    name: StrBytes,
    outcome: Result<(), ResourceError>,
) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(name);
    match outcome {
        Ok(()) => response.with_error_code(NONE).with_error_message(None),
        Err((code, message)) => response
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}
