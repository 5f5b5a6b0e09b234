//! DescribeCluster (key 60): this broker, the controller (itself) and the
//! cluster id.

use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use replication::metadata::acl;

use super::errors::{CLUSTER_AUTHORIZATION_FAILED, NONE, UNSUPPORTED_ENDPOINT_TYPE};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::DescribeCluster,
    min_version: 0,
    max_version: 2,
};

/// The endpoint type of brokers (v1+); 2 would be controllers.
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DescribeClusterRequest = decode_body(request)?;
    let node = &shard.node;
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(node.cluster_id.clone()))
        .with_controller_id(BrokerId(node.node_id))
        .with_endpoint_type(body.endpoint_type);
    response = if !shard.allowed_cluster(request, acl::operation::DESCRIBE) {
        response
            .with_error_code(CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(
                "the principal may not describe the cluster",
            )))
    } else if version >= 1 && body.endpoint_type != ENDPOINT_BROKERS {
        response
            .with_error_code(UNSUPPORTED_ENDPOINT_TYPE)
            .with_error_message(Some(StrBytes::from_static_str(
                "only broker endpoints are served",
            )))
    } else {
        let brokers = shard
            .live_brokers(&shard.metadata(), &request.listener)
            .into_iter()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(b.port)
            })
            .collect();
        response.with_error_code(NONE).with_brokers(brokers)
    };
    encode_response(
        ApiKey::DescribeCluster,
        version,
        request.correlation_id(),
        &response,
    )
}
