//! IncrementalAlterConfigs (key 44): SET and DELETE of single configs;
//! APPEND and SUBTRACT of items of list configs (`cleanup.policy`, the
//! replication throttles), against
//! the resource's current value, as Kafka applies them (on other configs
//! they are INVALID_CONFIG).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::config_resource::{Resource, ResourceError, alter, resource, topic_key};
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
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Whether `key` is a list config, the kind APPEND and SUBTRACT apply to.
fn is_list(key: &str) -> bool {
    engine::topic_config(key).is_some_and(|k| k.config_type() == engine::ConfigType::List)
}

/// `current` (comma-separated items) with `items` appended (those not in
/// it yet) or subtracted.
fn combine(current: &str, items: &str, op: i8) -> String {
    let split = |list: &str| -> Vec<String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (mut list, items) = (split(current), split(items));
    if op == APPEND {
        for item in items {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    } else {
        list.retain(|item| !items.contains(item));
    }
    list.join(",")
}

/// The value a config has now on `resource` (its override, else the
/// default it inherits).
fn current_value(shard: &Shard, resource: &Resource, key: &str) -> String {
    let metadata = shard.metadata();
    shard
        .log_config(&metadata, resource.topic())
        .get(key)
        .unwrap_or_default()
}

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: IncrementalAlterConfigsRequest = decode_body(request)?;
    let mut responses = Vec::with_capacity(body.resources.len());
    for wanted in body.resources {
        let outcome: Result<(), ResourceError> = async {
            let resource = resource(
                shard,
                request,
                acl::operation::ALTER_CONFIGS,
                wanted.resource_type,
                &wanted.resource_name,
            )?;
            let (mut set, mut delete) = (BTreeMap::new(), Vec::new());
            for config in &wanted.configs {
                let key = topic_key(&resource, &config.name)?.to_string();
                match (config.config_operation, &config.value) {
                    (SET, Some(value)) => {
                        set.insert(key, value.to_string());
                    }
                    (DELETE, _) => delete.push(key),
                    (APPEND | SUBTRACT, Some(items)) if is_list(&key) => {
                        let op = config.config_operation;
                        let current = match set.get(&key) {
                            Some(pending) => String::clone(pending),
                            None => current_value(shard, &resource, &key),
                        };
                        set.insert(key, combine(&current, items, op));
                    }
                    (op @ (APPEND | SUBTRACT), _) => {
                        return Err((
                            INVALID_CONFIG,
                            format!("operation {op} applies to list configs, and {key} is not one"),
                        ));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_adds_missing_items_and_subtract_removes_them() {
        assert_eq!(combine("delete", "compact", APPEND), "delete,compact");
        assert_eq!(
            combine("delete,compact", "compact", APPEND),
            "delete,compact"
        );
        assert_eq!(combine("delete,compact", "delete", SUBTRACT), "compact");
        assert_eq!(combine("compact", "compact", SUBTRACT), "");
        assert_eq!(combine("", "compact, delete", APPEND), "compact,delete");
    }
}
