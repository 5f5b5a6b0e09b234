//! The group APIs at the protocol level against a real broker: the error
//! codes Kafka documents for commits from strangers and stale generations,
//! a JoinGroup flood on one connection that leaves other groups alone, and
//! a fresh broker's first joins, which find their coordinator ready.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, RequestHeader, ResponseHeader, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use common::{call, free_addr, start_configured, topic_name};

const CONFIG: &str = "group-initial-rebalance-delay-ms = 300\noffsets-topic-num-partitions = 4\n";
const JOIN_VERSION: i16 = 5;

fn group(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.into()))
}

fn join_request(group_id: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member_id.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0")),
        ])
}

/// Joins `group_id` as its only member: (member id, generation).
fn join_alone(addr: SocketAddr, group_id: &str) -> (String, i32) {
    let first: JoinGroupResponse = call(
        addr,
        ApiKey::JoinGroup,
        JOIN_VERSION,
        &join_request(group_id, ""),
    );
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.to_string();
    let joined: JoinGroupResponse = call(
        addr,
        ApiKey::JoinGroup,
        JOIN_VERSION,
        &join_request(group_id, &member),
    );
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member, "alone, so the leader");
    let sync = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(joined.generation_id)
        .with_member_id(StrBytes::from_string(member.clone()))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member.clone()))
                .with_assignment(Bytes::from_static(b"mine")),
        ]);
    let synced: SyncGroupResponse = call(addr, ApiKey::SyncGroup, 3, &sync);
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"mine"));
    (member, joined.generation_id)
}

/// Commits offset 1 of partition 0 of `topic`; returns its error code.
fn commit(addr: SocketAddr, group_id: &str, member: &str, generation: i32, topic: &str) -> i16 {
    commit_at(addr, group_id, member, generation, topic, 1)
}

/// Commits `offset` for partition 0 of `topic`; returns its error code.
fn commit_at(
    addr: SocketAddr,
    group_id: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offset: i64,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let response: OffsetCommitResponse = call(addr, ApiKey::OffsetCommit, 8, &request);
    response.topics[0].partitions[0].error_code
}

fn heartbeat(addr: SocketAddr, group_id: &str, member: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()));
    let response: HeartbeatResponse = call(addr, ApiKey::Heartbeat, 4, &request);
    response.error_code
}

#[test]
fn commits_from_strangers_and_stale_generations_get_kafkas_error_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    common::create_topic_raw(addr, "committed", 1);
    let (member, generation) = join_alone(addr, "members");
    assert_eq!(heartbeat(addr, "members", &member, generation), 0);
    assert_eq!(commit(addr, "members", &member, generation, "committed"), 0);
    assert_eq!(
        commit(addr, "members", &member, generation - 1, "committed"),
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        commit(addr, "members", "stranger", generation, "committed"),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    assert_eq!(
        heartbeat(addr, "members", &member, generation + 1),
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        commit(addr, "nobody-here", "", 3, "committed"),
        22,
        "an unknown group with a generation: ILLEGAL_GENERATION"
    );
    assert_eq!(
        commit(addr, "nobody-here", "", -1, "committed"),
        0,
        "a standalone consumer's commit"
    );
    assert_eq!(
        commit(addr, "members", &member, generation, "no-such-topic"),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(heartbeat(addr, "members", "stranger", generation), 25);
}

#[test]
fn a_join_group_flood_on_one_connection_does_not_hold_up_other_groups() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    common::create_topic_raw(addr, "calm-topic", 1);
    // 5000 first joins written back to back on one connection.
    let floods = 5_000;
    let mut wire = BytesMut::new();
    for i in 0..floods {
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::JoinGroup as i16)
            .with_request_api_version(JOIN_VERSION)
            .with_correlation_id(i)
            .encode(
                &mut body,
                ApiKey::JoinGroup.request_header_version(JOIN_VERSION),
            )
            .unwrap();
        join_request("flooded", "")
            .encode(&mut body, JOIN_VERSION)
            .unwrap();
        wire.put_i32(body.len() as i32);
        wire.extend_from_slice(&body);
    }
    let mut flood = TcpStream::connect(addr).unwrap();
    flood
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let writer = {
        let mut flood = flood.try_clone().unwrap();
        std::thread::spawn(move || flood.write_all(&wire).unwrap())
    };
    // Meanwhile another group joins, syncs and commits.
    let (member, generation) = join_alone(addr, "calm");
    assert_eq!(commit(addr, "calm", &member, generation, "calm-topic"), 0);
    writer.join().unwrap();
    for i in 0..floods {
        let mut size = [0u8; 4];
        flood.read_exact(&mut size).unwrap();
        let mut frame = vec![0u8; u32::from_be_bytes(size) as usize];
        flood.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(
            &mut frame,
            ApiKey::JoinGroup.response_header_version(JOIN_VERSION),
        )
        .unwrap();
        assert_eq!(header.correlation_id, i);
        let response = JoinGroupResponse::decode(&mut frame, JOIN_VERSION).unwrap();
        assert_eq!(
            response.error_code, 79,
            "MEMBER_ID_REQUIRED, each with its own id"
        );
    }
}

/// The offset `group` committed for partition 0 of `topic` (OffsetFetch v7).
fn committed(addr: SocketAddr, group_id: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]));
    let response: OffsetFetchResponse = call(addr, ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions[0].committed_offset
}

#[test]
fn consumer_offsets_are_compacted_and_the_latest_commits_survive_a_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    // Small segments and a busy cleaner: the log cleaner compacts the
    // offsets topic like any compacted topic.
    let config =
        format!("{CONFIG}offsets-topic-segment-bytes = 1024\nlog-cleaner-backoff-ms = 100\n");
    let broker = start_configured(tmp.path(), addr, &config);
    common::create_topic_raw(addr, "compacted", 1);
    for group_id in ["alpha", "beta"] {
        for offset in 1..=120 {
            assert_eq!(commit_at(addr, group_id, "", -1, "compacted", offset), 0);
        }
    }
    let partition = net::broker::groups::offsets_partition("alpha", 4);
    // 120 commits of each group (maybe both in this partition): what is
    // left is each key's latest and the active segment.
    common::wait_compacted(addr, "__consumer_offsets", partition, 40);
    drop(broker); // SIGKILL
    let _broker = start_configured(tmp.path(), addr, &config);
    assert_eq!(committed(addr, "alpha", "compacted"), 120);
    assert_eq!(committed(addr, "beta", "compacted"), 120);
    assert_eq!(committed(addr, "gamma", "compacted"), -1, "never committed");
}

#[test]
fn clients_cannot_delete_grow_or_write_the_offsets_topic() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    common::create_topic_raw(addr, "t", 1);
    assert_eq!(
        commit(addr, "someone", "", -1, "t"),
        0,
        "creates __consumer_offsets"
    );
    let offsets = "__consumer_offsets";
    let metadata: MetadataResponse = call(
        addr,
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(offsets))),
        ])),
    );
    assert!(metadata.topics[0].is_internal);
    assert_eq!(metadata.topics[0].partitions.len(), 4);
    let deleted: DeleteTopicsResponse = call(
        addr,
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default().with_topic_names(vec![topic_name(offsets)]),
    );
    assert_eq!(
        deleted.responses[0].error_code, 17,
        "INVALID_TOPIC_EXCEPTION"
    );
    let grown: CreatePartitionsResponse = call(
        addr,
        ApiKey::CreatePartitions,
        2,
        &CreatePartitionsRequest::default().with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(topic_name(offsets))
                .with_count(8),
        ]),
    );
    assert_eq!(grown.results[0].error_code, 17);
    let batch = engine::batch::builder::simple_batch(1, 10, 1_700_000_000_000, b'z');
    let produced: ProduceResponse = call(
        addr,
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(offsets))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ]),
    );
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 17);
    assert_eq!(
        commit(addr, "someone", "", -1, "t"),
        0,
        "the coordinator still writes"
    );
}

/// The first group requests of a fresh broker, from many connections (on
/// both shards) while `__consumer_offsets` is being created: each is
/// answered as Kafka answers a first join (MEMBER_ID_REQUIRED), none
/// COORDINATOR_NOT_AVAILABLE. Requests keep coming while the shard that
/// created the topic creates its partitions and before the other shard has
/// the topic: one routed there by the newer metadata waits for it there.
#[test]
fn the_first_joins_of_a_fresh_broker_find_their_coordinator() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, "offsets-topic-num-partitions = 200\n");
    let start = std::time::Instant::now();
    let joins: Vec<_> = (0..8u64)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(i * 10));
                let mut codes = Vec::new();
                while start.elapsed() < Duration::from_millis(1500) {
                    let answer: JoinGroupResponse = call(
                        addr,
                        ApiKey::JoinGroup,
                        JOIN_VERSION,
                        &join_request(&format!("first-{i}-{}", codes.len()), ""),
                    );
                    codes.push(answer.error_code);
                }
                codes
            })
        })
        .collect();
    let codes: Vec<i16> = joins.into_iter().flat_map(|j| j.join().unwrap()).collect();
    let unavailable = codes.iter().filter(|&&code| code == 15).count();
    assert!(
        codes.iter().all(|&code| code == 79),
        "{unavailable} of {} joins COORDINATOR_NOT_AVAILABLE: {codes:?}",
        codes.len()
    );
}
