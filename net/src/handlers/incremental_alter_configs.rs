//! IncrementalAlterConfigs (key 44): SET and DELETE of single configs.
//! APPEND and SUBTRACT (for list configs) are refused with INVALID_CONFIG.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::config_resource::{ResourceError, alter, resource, topic_key};
use super::errors::{INVALID_CONFIG, NONE};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::IncrementalAlterConfigs,
    min_version: 0,
    max_version: 1,
};

const SET: i8 = 0;
const DELETE: i8 = 1;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: IncrementalAlterConfigsRequest = decode_body(request)?;
    let mut responses = Vec::with_capacity(body.resources.len());
    for wanted in body.resources {
        let outcome: Result<(), ResourceError> = async {
            let resource = resource(shard, wanted.resource_type, &wanted.resource_name)?;
            let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
            for config in &wanted.configs {
                let key = topic_key(&resource, &config.name)?.to_string();
                match (config.config_operation, &config.value) {
                    (SET, Some(value)) => {
                        set.insert(key, value.to_string());
                    }
                    (DELETE, _) => delete.push(key),
                    (op, _) => {
                        return Err((
                            INVALID_CONFIG,
                            format!("operation {op} on {key} is not supported"),
                        ));
                    }
                }
            }
            alter(shard, resource, set, delete, body.validate_only).await
        }
        .await;
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(wanted.resource_type)
            .with_resource_name(wanted.resource_name);
        responses.push(match outcome {
            Ok(()) => response.with_error_code(NONE).with_error_message(None),
            Err((code, message)) => response
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    let response = IncrementalAlterConfigsResponse::default().with_responses(responses);
    encode_response(
        ApiKey::IncrementalAlterConfigs,
        version,
        request.correlation_id(),
        &response,
    )
}
