//! The error codes a response carries, as Kafka's `errorCounts()` walks
//! them: the top-level code and each topic's, partition's, group's or
//! member's. Every response is encoded through
//! [`crate::frame::encode_response_into`], which counts its codes that
//! are not NONE for the metrics (`shardlog_request_errors_total` by API,
//! version and error); a response type without an impl here does not
//! compile there.

use kafka_protocol::messages::*;

/// The error codes of a response, each given to `each` (NONE too).
pub trait ErrorCodes {
    fn error_codes(&self, each: &mut dyn FnMut(i16));
}

/// Responses with one top-level code.
macro_rules! top_level {
    ($($response:ty),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                each(self.error_code);
            }
        })*
    };
}

top_level!(
    ApiVersionsResponse,
    DescribeClusterResponse,
    ListPartitionReassignmentsResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
    ConsumerGroupHeartbeatResponse,
    InitProducerIdResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    ListTransactionsResponse,
    SaslHandshakeResponse,
    SaslAuthenticateResponse,
    DescribeAclsResponse,
);

/// Responses with a code per item of one list (`$list`, each item's
/// `$code`), and none at the top.
macro_rules! per_item {
    ($($response:ty => $list:ident . $code:ident),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                for item in &self.$list {
                    each(item.$code);
                }
            }
        })*
    };
}

per_item!(
    CreateTopicsResponse => topics.error_code,
    DeleteTopicsResponse => responses.error_code,
    CreatePartitionsResponse => results.error_code,
    DescribeConfigsResponse => results.error_code,
    AlterConfigsResponse => responses.error_code,
    IncrementalAlterConfigsResponse => responses.error_code,
    DescribeGroupsResponse => groups.error_code,
    DeleteGroupsResponse => results.error_code,
    ConsumerGroupDescribeResponse => groups.error_code,
    DescribeTransactionsResponse => transaction_states.error_code,
    AlterUserScramCredentialsResponse => results.error_code,
    CreateAclsResponse => results.error_code,
);

/// Responses with a code per partition of each topic.
macro_rules! per_partition {
    ($($response:ty => $topics:ident . $partitions:ident),* $(,)?) => {
        $(impl ErrorCodes for $response {
            fn error_codes(&self, each: &mut dyn FnMut(i16)) {
                for topic in &self.$topics {
                    for partition in &topic.$partitions {
                        each(partition.error_code);
                    }
                }
            }
        })*
    };
}

per_partition!(
    ProduceResponse => responses.partition_responses,
    ListOffsetsResponse => topics.partitions,
    OffsetForLeaderEpochResponse => topics.partitions,
    DeleteRecordsResponse => topics.partitions,
    OffsetCommitResponse => topics.partitions,
    TxnOffsetCommitResponse => topics.partitions,
    DescribeProducersResponse => topics.partitions,
);

impl ErrorCodes for DeleteAclsResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        for result in &self.filter_results {
            each(result.error_code);
            for acl in &result.matching_acls {
                each(acl.error_code);
            }
        }
    }
}

impl ErrorCodes for DescribeUserScramCredentialsResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for result in &self.results {
            each(result.error_code);
        }
    }
}

impl ErrorCodes for FetchResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.responses {
            for partition in &topic.partitions {
                each(partition.error_code);
            }
        }
    }
}

impl ErrorCodes for MetadataResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        for topic in &self.topics {
            each(topic.error_code);
            for partition in &topic.partitions {
                each(partition.error_code);
            }
        }
    }
}

impl ErrorCodes for DescribeLogDirsResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for result in &self.results {
            each(result.error_code);
        }
    }
}

impl ErrorCodes for ElectLeadersResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.replica_election_results {
            for partition in &topic.partition_result {
                each(partition.error_code);
            }
        }
    }
}

impl ErrorCodes for AlterPartitionReassignmentsResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.responses {
            for partition in &topic.partitions {
                each(partition.error_code);
            }
        }
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        if self.coordinators.is_empty() {
            each(self.error_code);
        }
        for coordinator in &self.coordinators {
            each(coordinator.error_code);
        }
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for member in &self.members {
            each(member.error_code);
        }
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.topics {
            for partition in &topic.partitions {
                each(partition.error_code);
            }
        }
        for group in &self.groups {
            each(group.error_code);
            for topic in &group.topics {
                for partition in &topic.partitions {
                    each(partition.error_code);
                }
            }
        }
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        for topic in &self.topics {
            for partition in &topic.partitions {
                each(partition.error_code);
            }
        }
    }
}

impl ErrorCodes for AddPartitionsToTxnResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        each(self.error_code);
        let topics = self
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .chain(&self.results_by_topic_v3_and_below);
        for topic in topics {
            for partition in &topic.results_by_partition {
                each(partition.partition_error_code);
            }
        }
    }
}

impl ErrorCodes for WriteTxnMarkersResponse {
    fn error_codes(&self, each: &mut dyn FnMut(i16)) {
        for marker in &self.markers {
            for topic in &marker.topics {
                for partition in &topic.partitions {
                    each(partition.error_code);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(response: &impl ErrorCodes) -> Vec<i16> {
        let mut out = Vec::new();
        response.error_codes(&mut |code| out.push(code));
        out
    }

    #[test]
    fn nested_codes_are_each_given() {
        let produce = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_error_code(6),
                produce_response::PartitionProduceResponse::default(),
            ]),
        ]);
        assert_eq!(codes(&produce), [6, 0]);
        let metadata = MetadataResponse::default().with_topics(vec![
            metadata_response::MetadataResponseTopic::default()
                .with_error_code(3)
                .with_partitions(vec![
                    metadata_response::MetadataResponsePartition::default().with_error_code(5),
                ]),
        ]);
        assert_eq!(codes(&metadata), [3, 5]);
        assert_eq!(
            codes(&HeartbeatResponse::default().with_error_code(27)),
            [27]
        );
    }
}
