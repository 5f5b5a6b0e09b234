//! DeleteRecords (key 21): moves each partition's log start offset forward
//! (offset -1 means the high watermark), on its owning shard; whole segments
//! below it are deleted.

use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};

use replication::metadata::acl;

use super::errors::{NONE, UNKNOWN_SERVER_ERROR, partition_error_code};
use super::{Handler, decode_body};
use crate::broker::Shard;
use crate::broker::partition_call::{PartitionOp, PartitionReply};
use crate::frame::{FrameError, Request, encode_response};

pub const HANDLER: Handler = Handler {
    api_key: ApiKey::DeleteRecords,
    min_version: 0,
    max_version: 2,
};

pub async fn handle(shard: &Shard, request: &Request) -> Result<Bytes, FrameError> {
    let version = request.version();
    let body: DeleteRecordsRequest = decode_body(request)?;
    let mut topics = Vec::with_capacity(body.topics.len());
    for topic in body.topics {
        let ops = topic.partitions.iter().map(|p| {
            (
                p.partition_index,
                PartitionOp::DeleteRecords { offset: p.offset },
            )
        });
        let partitions = shard
            .per_partition_as(request, acl::operation::DELETE, &topic.name.0, ops)
            .await
            .into_iter()
            .map(|(index, result)| {
                let response = DeleteRecordsPartitionResult::default().with_partition_index(index);
                match result {
                    Ok(PartitionReply::Offset(low_watermark, _)) => response
                        .with_error_code(NONE)
                        .with_low_watermark(low_watermark),
                    Ok(_) => response
                        .with_error_code(UNKNOWN_SERVER_ERROR)
                        .with_low_watermark(-1),
                    Err(e) => response
                        .with_error_code(partition_error_code(&e))
                        .with_low_watermark(-1),
                }
            })
            .collect();
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let response = DeleteRecordsResponse::default().with_topics(topics);
    encode_response(
        ApiKey::DeleteRecords,
        version,
        request.correlation_id(),
        &response,
    )
}
