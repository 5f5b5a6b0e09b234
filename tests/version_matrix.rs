//! Every API and version the broker advertises, answered as a client at
//! that version reads it (issue 10): for each entry of the handler table
//! (what ApiVersions advertises) and each version in its range, requests
//! generated from the request tables (half their strings name a topic with
//! data, a group or the internal topic) go to a running broker. Each must
//! be answered (a response that fails to encode at the client's version
//! closes the connection: how ListOffsets v1-v3 failed every client below
//! v4), its header must carry the request's correlation id, and its body
//! must decode with `kafka-protocol` at the same version, consuming every
//! byte. Only Produce with acks=0 is answered with nothing.

mod common;

use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use net::handlers::HANDLERS;
use net::protocol::schema::generate::{self, Rng, Shape};

use common::probe::{Fate, Prober, request_frame};
use common::{create_topic_raw, free_addr, start_configured};

const SEED: u64 = 0x7e25_10a5;
const REQUESTS_PER_VERSION: usize = 12;
const WORDS: &[&str] = &[
    "matrix",
    "matrix-group",
    "__consumer_offsets",
    "consumer",
    "matrix-txn",
];

/// Produce v0-2 (message format v0/v1) is answered by its own encoder with
/// UNSUPPORTED_VERSION per partition; its bodies have no table: one fixed
/// request each (acks=1, one topic, one partition, an empty message set).
fn legacy_produce_body() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // topics
    body.extend_from_slice(&6i16.to_be_bytes());
    body.extend_from_slice(b"matrix");
    body.extend_from_slice(&1i32.to_be_bytes()); // partitions
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // message set bytes
    body
}

/// Produce v0-2 (no `kafka-protocol` type): one topic, one partition,
/// UNSUPPORTED_VERSION (35), base offset -1; v1 adds the throttle time, v2
/// the log append time.
fn check_legacy_produce_response(version: i16, mut body: Bytes) {
    assert_eq!(body.get_i32(), 1, "topics");
    let name_len = body.get_i16() as usize;
    assert_eq!(&body.split_to(name_len)[..], b"matrix");
    assert_eq!(body.get_i32(), 1, "partitions");
    assert_eq!(body.get_i32(), 0, "partition index");
    assert_eq!(body.get_i16(), 35, "UNSUPPORTED_VERSION");
    assert_eq!(body.get_i64(), -1, "base offset");
    if version >= 2 {
        assert_eq!(body.get_i64(), -1, "log append time");
    }
    if version >= 1 {
        assert_eq!(body.get_i32(), 0, "throttle time");
    }
    assert_eq!(
        body.remaining(),
        0,
        "Produce v{version}: bytes after the body"
    );
}

/// Produce's acks field (the first after the nullable transactional id).
fn produce_acks(body: &[u8], flexible: bool) -> Option<i16> {
    let mut rest = body;
    let skip = if flexible {
        let length = *rest.first()? as usize;
        1 + length.saturating_sub(1)
    } else {
        let length = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        2 + usize::try_from(length).unwrap_or(0)
    };
    rest = rest.get(skip..)?;
    Some(i16::from_be_bytes(rest.get(..2)?.try_into().ok()?))
}

/// Decodes a response body with `kafka-protocol`'s type for the API.
fn decode_response(api_key: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<()> {
    use kafka_protocol::messages::*;
    macro_rules! decode {
        ($($key:ident => $response:ty),* $(,)?) => {
            match api_key {
                $(ApiKey::$key => <$response>::decode(buf, version).map(drop),)*
                other => anyhow::bail!("the test has no decoder for {other:?}"),
            }
        };
    }
    decode!(
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
        Metadata => MetadataResponse,
        ApiVersions => ApiVersionsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        CreatePartitions => CreatePartitionsResponse,
        DescribeConfigs => DescribeConfigsResponse,
        AlterConfigs => AlterConfigsResponse,
        IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
        DeleteRecords => DeleteRecordsResponse,
        DescribeCluster => DescribeClusterResponse,
        DescribeLogDirs => DescribeLogDirsResponse,
        SaslHandshake => SaslHandshakeResponse,
        SaslAuthenticate => SaslAuthenticateResponse,
        DescribeUserScramCredentials => DescribeUserScramCredentialsResponse,
        AlterUserScramCredentials => AlterUserScramCredentialsResponse,
        DescribeAcls => DescribeAclsResponse,
        CreateAcls => CreateAclsResponse,
        DeleteAcls => DeleteAclsResponse,
        ElectLeaders => ElectLeadersResponse,
        AlterPartitionReassignments => AlterPartitionReassignmentsResponse,
        ListPartitionReassignments => ListPartitionReassignmentsResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        SyncGroup => SyncGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        ListGroups => ListGroupsResponse,
        DescribeGroups => DescribeGroupsResponse,
        DeleteGroups => DeleteGroupsResponse,
        OffsetDelete => OffsetDeleteResponse,
        InitProducerId => InitProducerIdResponse,
        AddPartitionsToTxn => AddPartitionsToTxnResponse,
        AddOffsetsToTxn => AddOffsetsToTxnResponse,
        EndTxn => EndTxnResponse,
        WriteTxnMarkers => WriteTxnMarkersResponse,
        TxnOffsetCommit => TxnOffsetCommitResponse,
        DescribeProducers => DescribeProducersResponse,
        DescribeTransactions => DescribeTransactionsResponse,
        ListTransactions => ListTransactionsResponse,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
        ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
    )
}

/// Checks one answered request: one response, the right correlation id,
/// a body that decodes at the request's version and leaves nothing.
fn check_response(api_key: ApiKey, version: i16, correlation: i32, responses: &[Bytes]) {
    let [response] = responses else {
        panic!("{api_key:?} v{version}: {} responses", responses.len());
    };
    let mut response = response.clone();
    let header = ResponseHeader::decode(&mut response, api_key.response_header_version(version))
        .unwrap_or_else(|e| panic!("{api_key:?} v{version} response header: {e}"));
    assert_eq!(header.correlation_id, correlation, "{api_key:?} v{version}");
    if api_key == ApiKey::Produce && version <= 2 {
        return check_legacy_produce_response(version, response);
    }
    if let Err(e) = decode_response(api_key, &mut response, version) {
        panic!("{api_key:?} v{version} response body: {e:#}");
    }
    assert_eq!(
        response.remaining(),
        0,
        "{api_key:?} v{version}: bytes after the response body"
    );
}

fn exchange(prober: &mut Prober, api_key: ApiKey, version: i16, correlation: i32, body: &[u8]) {
    let frame = request_frame(api_key as i16, version, correlation, body);
    match prober.send(&frame) {
        Fate::Answered(responses) => {
            let flexible = version >= 9;
            let silent = api_key == ApiKey::Produce && produce_acks(body, flexible) == Some(0);
            if silent && responses.is_empty() {
                return;
            }
            check_response(api_key, version, correlation, &responses);
        }
        fate => panic!("{api_key:?} v{version}: {fate:?} for {body:02x?}"),
    }
}

fn broker(dir: &std::path::Path, addr: SocketAddr) -> common::Broker {
    start_configured(dir, addr, "group-initial-rebalance-delay-ms = 0\n")
}

#[test]
fn every_advertised_api_version_is_answered_and_decodes_at_that_version() {
    eprintln!("seed {SEED:#x}");
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = broker(dir.path(), addr);
    create_topic_raw(addr, "matrix", 2);
    let mut rng = Rng::new(SEED);
    let mut prober = Prober::new(addr);
    let shape = Shape {
        words: WORDS,
        ..Shape::default()
    };
    let mut answered = 0;
    for handler in HANDLERS {
        let api_key = handler.api_key;
        for version in handler.min_version..=handler.max_version {
            let table =
                net::protocol::schema::request(api_key).filter(|m| m.versions.contains(version));
            let Some(message) = table else {
                assert_eq!(api_key, ApiKey::Produce, "v{version} has no table");
                exchange(&mut prober, api_key, version, 7, &legacy_produce_body());
                answered += 1;
                continue;
            };
            for n in 0..REQUESTS_PER_VERSION {
                let body = generate::body(message, version, shape, &mut rng);
                exchange(&mut prober, api_key, version, n as i32, &body.bytes);
                answered += 1;
            }
        }
    }
    eprintln!("{answered} requests answered: {:?}", prober.tally);
    assert_eq!(prober.tally.closed + prober.tally.held, 0);
}
