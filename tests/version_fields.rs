//! Field by field, at every version the broker advertises (issue 10): the
//! answers of Produce, Fetch, ListOffsets, Metadata, OffsetCommit and
//! OffsetFetch, and the group APIs at their oldest and newest versions,
//! carry what Kafka sets in each field that version has (offsets, leader
//! epochs, -1 where a version lacks a value, throttle times, topic ids,
//! protocol names), decoded as a client decodes them at that version.
//! `version_matrix.rs` checks that every version answers and decodes; this
//! checks what the answers say.

mod common;

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use net::handlers::HANDLERS;

use common::{call, create_topic_raw, free_addr, start_configured, topic_name};

const TOPIC: &str = "fields";
/// Records per produced batch.
const BATCH_RECORDS: i32 = 3;

fn versions(api_key: ApiKey) -> RangeInclusive<i16> {
    let handler = HANDLERS
        .iter()
        .find(|h| h.api_key == api_key)
        .unwrap_or_else(|| panic!("{api_key:?} is served"));
    handler.min_version..=handler.max_version
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn broker(dir: &std::path::Path, addr: SocketAddr) -> common::Broker {
    start_configured(dir, addr, "group-initial-rebalance-delay-ms = 0\n")
}

/// Produces one batch at `version`; returns the partition's answer.
fn produce(addr: SocketAddr, version: i16) -> produce_response::PartitionProduceResponse {
    let batch = engine::batch::builder::simple_batch(BATCH_RECORDS, 16, 1_700_000_000_000, b'f');
    let request = common::produce_request(TOPIC, batch);
    let response: ProduceResponse = call(addr, ApiKey::Produce, version, &request);
    assert_eq!(response.throttle_time_ms, 0, "v{version}");
    assert_eq!(response.responses.len(), 1);
    let topic = &response.responses[0];
    assert_eq!(topic.name.0.as_str(), TOPIC, "v{version}");
    assert_eq!(topic.partition_responses.len(), 1);
    topic.partition_responses[0].clone()
}

#[test]
fn produce_fetch_list_offsets_and_metadata_answer_as_kafka_at_every_version() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = broker(tmp.path(), addr);
    create_topic_raw(addr, TOPIC, 1);

    // Produce: v0-2 are refused (message format v0/v1); v3 up store.
    let mut end = 0i64;
    for version in versions(ApiKey::Produce).filter(|v| *v >= 3) {
        let answer = produce(addr, version);
        assert_eq!(answer.error_code, 0, "v{version}");
        assert_eq!(answer.index, 0);
        assert_eq!(answer.base_offset, end, "v{version}: base offset");
        assert_eq!(
            answer.log_append_time_ms, -1,
            "v{version}: CreateTime topic"
        );
        // v5+ carry the log start offset; below, the decoded default.
        let start = if version >= 5 { 0 } else { -1 };
        assert_eq!(answer.log_start_offset, start, "v{version}");
        assert!(answer.record_errors.is_empty(), "v{version}");
        assert_eq!(answer.error_message, None, "v{version}");
        end += i64::from(BATCH_RECORDS);
    }
    println!("produce: {end} records at every version");

    check_fetch(addr, end);
    check_list_offsets(addr, end);
    check_metadata(addr);
}

/// Fetch at every version and both isolation levels: all `end` records.
fn check_fetch(addr: SocketAddr, end: i64) {
    let topic_id = metadata(addr, 12).topics[0].topic_id;
    for version in versions(ApiKey::Fetch) {
        let mut fetch_topic = FetchTopic::default().with_partitions(vec![
            FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1),
        ]);
        fetch_topic = if version >= 13 {
            fetch_topic.with_topic_id(topic_id)
        } else {
            fetch_topic.with_topic(topic_name(TOPIC))
        };
        for isolation in [0i8, 1] {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_isolation_level(isolation)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_topic.clone()]);
            let response: FetchResponse = call(addr, ApiKey::Fetch, version, &request);
            let at = format!("v{version} isolation {isolation}");
            assert_eq!(response.throttle_time_ms, 0, "{at}");
            assert_eq!(response.error_code, 0, "{at}");
            assert_eq!(response.session_id, 0, "{at}: sessions are declined");
            let topic = &response.responses[0];
            if version >= 13 {
                assert_eq!(topic.topic_id, topic_id, "{at}");
            } else {
                assert_eq!(topic.topic.0.as_str(), TOPIC, "{at}");
            }
            let partition = &topic.partitions[0];
            assert_eq!(partition.error_code, 0, "{at}");
            assert_eq!(partition.high_watermark, end, "{at}");
            assert_eq!(partition.last_stable_offset, end, "{at}");
            let start = if version >= 5 { 0 } else { -1 };
            assert_eq!(partition.log_start_offset, start, "{at}");
            // Kafka: null for read_uncommitted, a list for read_committed.
            let aborted = partition.aborted_transactions.as_ref().map(Vec::len);
            let expected = if isolation == 1 { Some(0) } else { None };
            assert_eq!(aborted, expected, "{at}: aborted transactions");
            assert_eq!(partition.preferred_read_replica, BrokerId(-1), "{at}");
            let records = partition.records.clone().unwrap_or_default();
            let stored: i64 =
                engine::batch::validate(&records, 0, engine::batch::ValidateMode::Stored)
                    .map(|b| i64::from(b.unwrap().1.header().record_count()))
                    .sum();
            assert_eq!(stored, end, "{at}: every record");
        }
    }
    println!("fetch: every version, both isolation levels");
}

/// ListOffsets at every version: the ends of the log.
fn check_list_offsets(addr: SocketAddr, end: i64) {
    for version in versions(ApiKey::ListOffsets) {
        // -4 (earliest local, v8+) is the log start: all of it is local;
        // -5 (latest tiered, v9+) finds nothing: no tiered storage.
        let mut lookups = vec![(-2i64, 0i64), (-1, end)];
        if version >= 8 {
            lookups.push((-4, 0));
        }
        if version >= 9 {
            lookups.push((-5, -1));
        }
        for (timestamp, offset) in lookups {
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name(TOPIC))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(timestamp)
                                .with_current_leader_epoch(-1),
                        ]),
                ]);
            let response: ListOffsetsResponse = call(addr, ApiKey::ListOffsets, version, &request);
            let at = format!("v{version} timestamp {timestamp}");
            assert_eq!(response.throttle_time_ms, 0, "{at}");
            let partition = &response.topics[0].partitions[0];
            assert_eq!(partition.error_code, 0, "{at}");
            assert_eq!(partition.offset, offset, "{at}");
            assert_eq!(partition.timestamp, -1, "{at}");
            let epoch = if version >= 4 && offset >= 0 { 0 } else { -1 };
            assert_eq!(partition.leader_epoch, epoch, "{at}: leader epoch");
        }
    }
    println!("list offsets: earliest and latest at every version");
}

/// Metadata at every version: the broker, the topic and its partition.
fn check_metadata(addr: SocketAddr) {
    for version in versions(ApiKey::Metadata) {
        let metadata = metadata(addr, version);
        let at = format!("v{version}");
        assert_eq!(metadata.throttle_time_ms, 0, "{at}");
        assert_eq!(metadata.brokers.len(), 1, "{at}");
        let node = &metadata.brokers[0];
        assert_eq!(node.node_id, BrokerId(0), "{at}");
        assert_eq!(node.host.as_str(), "127.0.0.1", "{at}");
        assert_eq!(node.port, i32::from(addr.port()), "{at}");
        assert_eq!(node.rack, None, "{at}");
        let controller = if version >= 1 { 0 } else { -1 };
        assert_eq!(metadata.controller_id, BrokerId(controller), "{at}");
        assert_eq!(
            metadata.cluster_id.is_some(),
            version >= 2,
            "{at}: cluster id"
        );
        let topic = &metadata.topics[0];
        assert_eq!(topic.error_code, 0, "{at}");
        assert_eq!(
            topic.name.as_ref().map(|n| n.0.as_str()),
            Some(TOPIC),
            "{at}"
        );
        assert!(!topic.is_internal, "{at}");
        assert_eq!(topic.topic_id.is_nil(), version < 10, "{at}: topic id");
        // Not asked for: Kafka's "unknown" (i32::MIN) from v8, which is
        // also what a client decodes below v8.
        assert_eq!(topic.topic_authorized_operations, i32::MIN, "{at}");
        let partition = &topic.partitions[0];
        assert_eq!(partition.error_code, 0, "{at}");
        assert_eq!(partition.leader_id, BrokerId(0), "{at}");
        let epoch = if version >= 7 { 0 } else { -1 };
        assert_eq!(partition.leader_epoch, epoch, "{at}: leader epoch");
        assert_eq!(partition.replica_nodes, vec![BrokerId(0)], "{at}");
        assert_eq!(partition.isr_nodes, vec![BrokerId(0)], "{at}");
        assert!(partition.offline_replicas.is_empty(), "{at}");
        if version >= 10 {
            // By id (KIP-516): the same topic; an unknown id is
            // UNKNOWN_TOPIC_ID, not created.
            let unknown = uuid::Uuid::from_bytes([0x5a; 16]);
            let request = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_topic_id(topic.topic_id),
                MetadataRequestTopic::default().with_topic_id(unknown),
            ]));
            let by_id: MetadataResponse = call(addr, ApiKey::Metadata, version, &request);
            let found = &by_id.topics[0];
            assert_eq!(found.error_code, 0, "{at} by id");
            assert_eq!(
                found.name.as_ref().map(|n| n.0.as_str()),
                Some(TOPIC),
                "{at}"
            );
            assert_eq!(found.partitions.len(), 1, "{at} by id");
            let missing = &by_id.topics[1];
            assert_eq!(
                (missing.error_code, missing.topic_id),
                (100, unknown),
                "{at}"
            );
            // The name is nullable from v12.
            let none = (version < 12).then(|| topic_name(""));
            assert_eq!(missing.name, none, "{at}");
        }
    }
    println!("metadata: every version");
}

fn metadata(addr: SocketAddr, version: i16) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
        ]))
        // A v4+ field; the topic exists anyway.
        .with_allow_auto_topic_creation(version < 4);
    call(addr, ApiKey::Metadata, version, &request)
}

#[test]
fn committed_offsets_read_back_at_every_version_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = broker(tmp.path(), addr);
    create_topic_raw(addr, TOPIC, 1);
    for commit_version in versions(ApiKey::OffsetCommit) {
        let group = format!("commit-v{commit_version}");
        let offset = 100 + i64::from(commit_version);
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(text(&group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(text(""))
            .with_retention_time_ms(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(TOPIC))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(7)
                            .with_committed_metadata(Some(text("meta"))),
                    ]),
            ]);
        let response: OffsetCommitResponse =
            call(addr, ApiKey::OffsetCommit, commit_version, &request);
        assert_eq!(response.throttle_time_ms, 0, "commit v{commit_version}");
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0, "commit v{commit_version}");
        // The leader epoch travels from OffsetCommit v6.
        let epoch = if commit_version >= 6 { 7 } else { -1 };
        for fetch_version in versions(ApiKey::OffsetFetch) {
            let at = format!("commit v{commit_version}, fetch v{fetch_version}");
            let (error, partition) = offset_fetch(addr, fetch_version, &group);
            assert_eq!(error, 0, "{at}");
            assert_eq!(partition.0, offset, "{at}: offset");
            assert_eq!(partition.1.as_deref(), Some("meta"), "{at}: metadata");
            let shown = if fetch_version >= 5 { epoch } else { -1 };
            assert_eq!(partition.2, shown, "{at}: leader epoch");
        }
    }
    // A group with nothing committed: offset -1, no error.
    for fetch_version in versions(ApiKey::OffsetFetch) {
        let (error, partition) = offset_fetch(addr, fetch_version, "nothing-committed");
        assert_eq!(error, 0, "fetch v{fetch_version}");
        assert_eq!(partition.0, -1, "fetch v{fetch_version}");
    }
}

/// OffsetFetch of partition 0: the group's error code, and (offset,
/// metadata, leader epoch).
fn offset_fetch(addr: SocketAddr, version: i16, group: &str) -> (i16, (i64, Option<String>, i32)) {
    let request = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(text(group)))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(TOPIC))
                        .with_partition_indexes(vec![0]),
                ])),
        ])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(TOPIC))
                    .with_partition_indexes(vec![0]),
            ]))
    };
    let response: OffsetFetchResponse = call(addr, ApiKey::OffsetFetch, version, &request);
    assert_eq!(response.throttle_time_ms, 0, "v{version}");
    if version >= 8 {
        let group = &response.groups[0];
        let p = &group.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let metadata = p.metadata.as_ref().map(|m| m.to_string());
        (
            group.error_code,
            (p.committed_offset, metadata, p.committed_leader_epoch),
        )
    } else {
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let metadata = p.metadata.as_ref().map(|m| m.to_string());
        (
            response.error_code,
            (p.committed_offset, metadata, p.committed_leader_epoch),
        )
    }
}

/// A group through its life at the oldest and the newest version of each
/// group API: join (v4+: MEMBER_ID_REQUIRED first), sync, heartbeat, leave.
#[test]
fn a_group_lives_and_ends_at_the_oldest_and_newest_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = broker(tmp.path(), addr);
    let edges = |key| {
        let range = versions(key);
        [*range.start(), *range.end()]
    };
    for join in edges(ApiKey::JoinGroup) {
        for sync in edges(ApiKey::SyncGroup) {
            for heartbeat in edges(ApiKey::Heartbeat) {
                for leave in edges(ApiKey::LeaveGroup) {
                    let group = format!("g-{join}-{sync}-{heartbeat}-{leave}");
                    group_life(addr, &group, [join, sync, heartbeat, leave]);
                }
            }
        }
    }
}

fn group_life(addr: SocketAddr, group: &str, [join, sync, heartbeat, leave]: [i16; 4]) {
    let at = format!("{group}: join v{join} sync v{sync} heartbeat v{heartbeat} leave v{leave}");
    let subscription = Bytes::from_static(b"\x00\x01subscription");
    let join_request = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(text(member))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(subscription.clone()),
            ])
    };
    let mut joined: JoinGroupResponse = call(addr, ApiKey::JoinGroup, join, &join_request(""));
    if join >= 4 {
        assert_eq!(joined.error_code, 79, "{at}: MEMBER_ID_REQUIRED");
        assert!(!joined.member_id.is_empty(), "{at}");
        let member = joined.member_id.to_string();
        joined = call(addr, ApiKey::JoinGroup, join, &join_request(&member));
    }
    assert_eq!(joined.error_code, 0, "{at}");
    assert_eq!(joined.throttle_time_ms, 0, "{at}");
    assert_eq!(joined.generation_id, 1, "{at}");
    assert_eq!(joined.protocol_name.as_deref(), Some("range"), "{at}");
    let protocol_type = (join >= 7).then_some("consumer");
    assert_eq!(joined.protocol_type.as_deref(), protocol_type, "{at}");
    assert_eq!(
        joined.leader, joined.member_id,
        "{at}: the only member leads"
    );
    assert!(!joined.skip_assignment, "{at}");
    assert_eq!(joined.members.len(), 1, "{at}");
    assert_eq!(joined.members[0].member_id, joined.member_id, "{at}");
    assert_eq!(joined.members[0].metadata, subscription, "{at}");
    let member = joined.member_id.clone();

    let assignment = Bytes::from_static(b"\x00\x01assignment");
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(1)
        .with_member_id(member.clone())
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(member.clone())
                .with_assignment(assignment.clone()),
        ]);
    let synced: SyncGroupResponse = call(addr, ApiKey::SyncGroup, sync, &request);
    assert_eq!(synced.error_code, 0, "{at}");
    assert_eq!(synced.throttle_time_ms, 0, "{at}");
    assert_eq!(synced.assignment, assignment, "{at}");
    let (protocol_type, protocol_name) = if sync >= 5 {
        (Some("consumer"), Some("range"))
    } else {
        (None, None)
    };
    assert_eq!(synced.protocol_type.as_deref(), protocol_type, "{at}");
    assert_eq!(synced.protocol_name.as_deref(), protocol_name, "{at}");

    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(1)
        .with_member_id(member.clone());
    let beat: HeartbeatResponse = call(addr, ApiKey::Heartbeat, heartbeat, &request);
    assert_eq!(beat.error_code, 0, "{at}");
    assert_eq!(beat.throttle_time_ms, 0, "{at}");

    let request = if leave >= 3 {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(member.clone()),
            ])
    } else {
        LeaveGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_member_id(member.clone())
    };
    let left: LeaveGroupResponse = call(addr, ApiKey::LeaveGroup, leave, &request);
    assert_eq!(left.error_code, 0, "{at}");
    assert_eq!(left.throttle_time_ms, 0, "{at}");
    if leave >= 3 {
        assert_eq!(left.members.len(), 1, "{at}");
        assert_eq!(left.members[0].member_id, member, "{at}");
        assert_eq!(left.members[0].error_code, 0, "{at}");
    }
    // The group is empty now: a heartbeat is answered UNKNOWN_MEMBER_ID.
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(1)
        .with_member_id(member);
    let beat: HeartbeatResponse = call(addr, ApiKey::Heartbeat, heartbeat, &request);
    assert_eq!(beat.error_code, 25, "{at}: UNKNOWN_MEMBER_ID after leaving");
}
