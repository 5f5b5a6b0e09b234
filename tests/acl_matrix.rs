//! The ACL matrix (issue 17): every API the broker serves that acts on a
//! resource, sent raw by a principal with no ACLs (`User:ANONYMOUS` on a
//! PLAINTEXT listener), then again after each ACL it needs is granted, in
//! the order the broker checks them. Before each grant the answer carries
//! the authorization error Kafka gives (TOPIC_, GROUP_, CLUSTER_ or
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED); with all of them it carries
//! the codes of the request itself. Writes refused first succeed as
//! first writes when allowed (a produce lands at offset 0, a create finds
//! no topic, a delete finds the topic), so nothing was written when
//! refused. The administrator grants and revokes over a SASL listener of
//! the same broker, as a super user.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::messages::{GroupId, ProducerId, TransactionalId};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net::handlers::error_codes::ErrorCodes;

use common::{Conn, free_addr, topic_name};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;
const AUTHORIZATION_CODES: [i16; 4] = [TOPIC_DENIED, GROUP_DENIED, CLUSTER_DENIED, TXN_DENIED];

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The administrator's connection: SASL PLAIN as `admin`.
fn admin_conn(addr: SocketAddr) -> Conn {
    let mut conn = Conn::open(addr);
    let handshake = SaslHandshakeRequest::default().with_mechanism(text("PLAIN"));
    let answer: SaslHandshakeResponse = conn.call(ApiKey::SaslHandshake, 1, &handshake);
    assert_eq!(answer.error_code, 0);
    let token = Bytes::from_static(b"\0admin\0adm1n");
    let authenticate = SaslAuthenticateRequest::default().with_auth_bytes(token);
    let answer: SaslAuthenticateResponse = conn.call(ApiKey::SaslAuthenticate, 2, &authenticate);
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    conn
}

/// An ACL the matrix grants `User:ANONYMOUS`: (resource type, name,
/// operation), Kafka's numbers.
type Grant = (i8, &'static str, i8);

/// Kafka's numbers, by the names the matrix uses.
mod acl {
    pub use replication::metadata::acl::operation::*;
    pub use replication::metadata::acl::resource::{
        CLUSTER, GROUP, TOPIC, TRANSACTIONAL_ID as TXN,
    };
}

fn acl_creation((resource_type, name, operation): Grant) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(if resource_type == acl::CLUSTER {
            "kafka-cluster"
        } else {
            name
        }))
        .with_resource_pattern_type(3)
        .with_principal(text("User:ANONYMOUS"))
        .with_host(text("*"))
        .with_operation(operation)
        .with_permission_type(3)
}

/// Every ACL of `User:ANONYMOUS`, as a DeleteAcls filter.
fn anonymous_filter() -> delete_acls_request::DeleteAclsFilter {
    delete_acls_request::DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(Some(text("User:ANONYMOUS")))
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

/// A request of the matrix: sends itself as the client and gives the
/// answer's codes (asserting what else it must hold).
type Exchange = Box<dyn Fn(&mut Conn) -> Vec<i16>>;

struct Case {
    name: &'static str,
    /// The ACLs it needs, in the order the broker checks them.
    grants: Vec<Grant>,
    /// The authorization error before each grant.
    denied: Vec<i16>,
    /// Its codes with every grant (sorted, each once).
    allowed: Vec<i16>,
    send: Exchange,
}

fn case(
    name: &'static str,
    needs: &[(Grant, i16)],
    allowed: &[i16],
    send: impl Fn(&mut Conn) -> Vec<i16> + 'static,
) -> Case {
    Case {
        name,
        grants: needs.iter().map(|&(grant, _)| grant).collect(),
        denied: needs.iter().map(|&(_, code)| code).collect(),
        allowed: allowed.to_vec(),
        send: Box::new(send),
    }
}

/// The codes of `response`, sorted, each once.
fn codes(response: &impl ErrorCodes) -> Vec<i16> {
    let mut codes = Vec::new();
    response.error_codes(&mut |code| codes.push(code));
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// Sends `request` and gives the codes of its answer.
fn ask<Req: Encodable + 'static, Resp: Decodable + ErrorCodes>(
    api_key: ApiKey,
    version: i16,
    request: Req,
) -> impl Fn(&mut Conn) -> Vec<i16> {
    move |conn: &mut Conn| codes(&conn.call::<Req, Resp>(api_key, version, &request))
}

/// Sends the request `request()` makes (at each call) and gives the codes
/// of its answer.
fn build<Req: Encodable, Resp: Decodable + ErrorCodes>(
    api_key: ApiKey,
    version: i16,
    request: impl Fn() -> Req + 'static,
) -> impl Fn(&mut Conn) -> Vec<i16> {
    move |conn: &mut Conn| codes(&conn.call::<Req, Resp>(api_key, version, &request()))
}

/// Runs `case`: refused before each grant, answered with its own codes
/// after all; the grants revoked after.
fn run(case: &Case, client: &mut Conn, admin: &mut Conn) {
    for (step, (&grant, &denied)) in case.grants.iter().zip(&case.denied).enumerate() {
        let got = (case.send)(client);
        assert!(
            got.contains(&denied),
            "{}: with {step} of its ACLs the answer has {got:?}, not {denied}",
            case.name
        );
        let create = CreateAclsRequest::default().with_creations(vec![acl_creation(grant)]);
        let created: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &create);
        assert_eq!(codes(&created), [0], "{}: granting {grant:?}", case.name);
    }
    let got = (case.send)(client);
    assert_eq!(got, case.allowed, "{}: with every ACL it needs", case.name);
    assert!(
        !got.iter().any(|c| AUTHORIZATION_CODES.contains(c)),
        "{}",
        case.name
    );
    let delete = DeleteAclsRequest::default().with_filters(vec![anonymous_filter()]);
    let deleted: DeleteAclsResponse = admin.call(ApiKey::DeleteAcls, 3, &delete);
    assert_eq!(codes(&deleted), [0], "{}: revoking", case.name);
}

const TOPIC: &str = "matrix";

/// Produce, Fetch, ListOffsets, Metadata, OffsetForLeaderEpoch,
/// DescribeProducers.
fn data_cases() -> Vec<Case> {
    use acl::{DESCRIBE, READ, TOPIC as T, WRITE};
    let batch = engine::batch::builder::simple_batch(1, 100, 1_700_000_000_000, b'm');
    let produce = common::produce_request(TOPIC, batch);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(TOPIC))),
        ]))
        .with_allow_auto_topic_creation(false);
    let epochs = OffsetForLeaderEpochRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0),
                ]),
        ]);
    let producers = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![0]),
    ]);
    vec![
        case(
            "Produce",
            &[((T, TOPIC, WRITE), TOPIC_DENIED)],
            &[0],
            move |conn| {
                let answer: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce);
                let partition = &answer.responses[0].partition_responses[0];
                if partition.error_code == 0 {
                    assert_eq!(partition.base_offset, 0, "nothing written when refused");
                }
                codes(&answer)
            },
        ),
        case(
            "Fetch",
            &[((T, TOPIC, READ), TOPIC_DENIED)],
            &[0],
            ask::<_, FetchResponse>(ApiKey::Fetch, 12, fetch),
        ),
        case(
            "ListOffsets",
            &[((T, TOPIC, DESCRIBE), TOPIC_DENIED)],
            &[0],
            ask::<_, ListOffsetsResponse>(ApiKey::ListOffsets, 7, list_offsets),
        ),
        case(
            "Metadata",
            &[((T, TOPIC, DESCRIBE), TOPIC_DENIED)],
            &[0],
            ask::<_, MetadataResponse>(ApiKey::Metadata, 12, metadata),
        ),
        case(
            "OffsetForLeaderEpoch",
            &[((T, TOPIC, DESCRIBE), TOPIC_DENIED)],
            &[0],
            ask::<_, OffsetForLeaderEpochResponse>(ApiKey::OffsetForLeaderEpoch, 4, epochs),
        ),
        case(
            "DescribeProducers",
            &[((T, TOPIC, READ), TOPIC_DENIED)],
            &[0],
            ask::<_, DescribeProducersResponse>(ApiKey::DescribeProducers, 0, producers),
        ),
    ]
}

/// CreateTopics, DeleteTopics, DeleteRecords, CreatePartitions and the
/// configs APIs.
fn topic_admin_cases() -> Vec<Case> {
    use acl::{ALTER, CREATE, DELETE, TOPIC as T};
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic_name("matrix-new"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let delete = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![topic_name("matrix-doomed")]);
    let delete_records = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0),
                ]),
        ]);
    let partitions = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic_name("matrix-grown"))
                .with_count(2)
                .with_assignments(None),
        ]);
    vec![
        case(
            "CreateTopics",
            &[((T, "matrix-new", CREATE), TOPIC_DENIED)],
            &[0],
            ask::<_, CreateTopicsResponse>(ApiKey::CreateTopics, 5, create),
        ),
        case(
            "DeleteTopics",
            &[((T, "matrix-doomed", DELETE), TOPIC_DENIED)],
            &[0],
            ask::<_, DeleteTopicsResponse>(ApiKey::DeleteTopics, 5, delete),
        ),
        case(
            "DeleteRecords",
            &[((T, TOPIC, DELETE), TOPIC_DENIED)],
            &[0],
            ask::<_, DeleteRecordsResponse>(ApiKey::DeleteRecords, 2, delete_records),
        ),
        case(
            "CreatePartitions",
            &[((T, "matrix-grown", ALTER), TOPIC_DENIED)],
            &[0],
            ask::<_, CreatePartitionsResponse>(ApiKey::CreatePartitions, 3, partitions),
        ),
    ]
}

/// DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
fn config_cases() -> Vec<Case> {
    use acl::{ALTER_CONFIGS, CLUSTER, DESCRIBE_CONFIGS, TOPIC as T};
    let describe_topic = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text(TOPIC))
            .with_configuration_keys(None),
    ]);
    let describe_broker = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(text("0"))
            .with_configuration_keys(None),
    ]);
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text(TOPIC))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("86400000"))),
            ]),
    ]);
    let incremental = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text(TOPIC))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(text("172800000"))),
            ]),
    ]);
    vec![
        case(
            "DescribeConfigs topic",
            &[((T, TOPIC, DESCRIBE_CONFIGS), TOPIC_DENIED)],
            &[0],
            ask::<_, DescribeConfigsResponse>(ApiKey::DescribeConfigs, 4, describe_topic),
        ),
        case(
            "DescribeConfigs broker",
            &[((CLUSTER, "", DESCRIBE_CONFIGS), CLUSTER_DENIED)],
            &[0],
            ask::<_, DescribeConfigsResponse>(ApiKey::DescribeConfigs, 4, describe_broker),
        ),
        case(
            "AlterConfigs",
            &[((T, TOPIC, ALTER_CONFIGS), TOPIC_DENIED)],
            &[0],
            ask::<_, AlterConfigsResponse>(ApiKey::AlterConfigs, 2, alter),
        ),
        case(
            "IncrementalAlterConfigs",
            &[((T, TOPIC, ALTER_CONFIGS), TOPIC_DENIED)],
            &[0],
            ask::<_, IncrementalAlterConfigsResponse>(
                ApiKey::IncrementalAlterConfigs,
                1,
                incremental,
            ),
        ),
    ]
}

/// The cluster APIs: Describe or Alter on the cluster.
fn cluster_cases() -> Vec<Case> {
    use acl::{ALTER, CLUSTER, DESCRIBE};
    let describe = ((CLUSTER, "", DESCRIBE), CLUSTER_DENIED);
    let alter = ((CLUSTER, "", ALTER), CLUSTER_DENIED);
    let elect = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(topic_name(TOPIC))
                .with_partitions(vec![0]),
        ]));
    let reassign = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(None),
                ]),
        ]);
    let list_reassignments = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(None);
    let log_dirs = DescribeLogDirsRequest::default().with_topics(None);
    vec![
        case(
            "DescribeCluster",
            &[describe],
            &[0],
            ask::<_, DescribeClusterResponse>(
                ApiKey::DescribeCluster,
                1,
                DescribeClusterRequest::default(),
            ),
        ),
        case(
            "DescribeLogDirs",
            &[describe],
            &[0],
            ask::<_, DescribeLogDirsResponse>(ApiKey::DescribeLogDirs, 4, log_dirs),
        ),
        case(
            "ElectLeaders",
            &[alter],
            &[0, 84],
            ask::<_, ElectLeadersResponse>(ApiKey::ElectLeaders, 2, elect),
        ),
        case(
            "AlterPartitionReassignments",
            &[alter],
            &[0, 85],
            ask::<_, AlterPartitionReassignmentsResponse>(
                ApiKey::AlterPartitionReassignments,
                0,
                reassign,
            ),
        ),
        case(
            "ListPartitionReassignments",
            &[describe],
            &[0],
            ask::<_, ListPartitionReassignmentsResponse>(
                ApiKey::ListPartitionReassignments,
                0,
                list_reassignments,
            ),
        ),
    ]
}

/// Users' credentials and the ACLs themselves: Describe or Alter on the
/// cluster.
fn acl_and_user_cases() -> Vec<Case> {
    use acl::{ALTER, CLUSTER, DESCRIBE};
    let describe = ((CLUSTER, "", DESCRIBE), CLUSTER_DENIED);
    let alter = ((CLUSTER, "", ALTER), CLUSTER_DENIED);
    let carol = alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
        .with_name(text("carol"))
        .with_mechanism(1)
        .with_iterations(4096)
        .with_salt(Bytes::from_static(b"0123456789abcdef"))
        .with_salted_password(Bytes::from(vec![7u8; 32]));
    let users = AlterUserScramCredentialsRequest::default().with_upsertions(vec![carol]);
    let bob = acl_creation((acl::TOPIC, "bobs", acl::READ)).with_principal(text("User:bob"));
    let create_acls = CreateAclsRequest::default().with_creations(vec![bob]);
    let bobs_filter = anonymous_filter().with_principal_filter(Some(text("User:bob")));
    let delete_acls = DeleteAclsRequest::default().with_filters(vec![bobs_filter]);
    let describe_acls = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    vec![
        case(
            "DescribeUserScramCredentials",
            &[describe],
            &[0],
            ask::<_, DescribeUserScramCredentialsResponse>(
                ApiKey::DescribeUserScramCredentials,
                0,
                DescribeUserScramCredentialsRequest::default().with_users(None),
            ),
        ),
        case(
            "AlterUserScramCredentials",
            &[alter],
            &[0],
            ask::<_, AlterUserScramCredentialsResponse>(
                ApiKey::AlterUserScramCredentials,
                0,
                users,
            ),
        ),
        case(
            "DescribeAcls",
            &[describe],
            &[0],
            ask::<_, DescribeAclsResponse>(ApiKey::DescribeAcls, 3, describe_acls),
        ),
        case(
            "CreateAcls",
            &[alter],
            &[0],
            ask::<_, CreateAclsResponse>(ApiKey::CreateAcls, 3, create_acls),
        ),
        case(
            "DeleteAcls",
            &[alter],
            &[0],
            ask::<_, DeleteAclsResponse>(ApiKey::DeleteAcls, 3, delete_acls),
        ),
    ]
}

/// The classic group APIs.
const GROUP: &str = "matrix-group";

fn group_cases() -> Vec<Case> {
    use acl::{DESCRIBE, GROUP as G, READ};
    let group = || GroupId(text(GROUP));
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![text(GROUP)]);
    let join = JoinGroupRequest::default()
        .with_group_id(group())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
        ]);
    let sync = SyncGroupRequest::default()
        .with_group_id(group())
        .with_generation_id(1)
        .with_member_id(text("nobody"));
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group())
        .with_generation_id(1)
        .with_member_id(text("nobody"));
    let leave = LeaveGroupRequest::default()
        .with_group_id(group())
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(text("nobody")),
        ]);
    let group_read = ((G, GROUP, READ), GROUP_DENIED);
    vec![
        case(
            "FindCoordinator group",
            &[((G, GROUP, DESCRIBE), GROUP_DENIED)],
            &[0],
            ask::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, 4, find),
        ),
        case(
            "JoinGroup",
            &[group_read],
            &[79],
            ask::<_, JoinGroupResponse>(ApiKey::JoinGroup, 9, join),
        ),
        case(
            "SyncGroup",
            &[group_read],
            &[25],
            ask::<_, SyncGroupResponse>(ApiKey::SyncGroup, 5, sync),
        ),
        case(
            "Heartbeat",
            &[group_read],
            &[25],
            ask::<_, HeartbeatResponse>(ApiKey::Heartbeat, 4, heartbeat),
        ),
        case(
            "LeaveGroup",
            &[group_read],
            &[0, 25],
            ask::<_, LeaveGroupResponse>(ApiKey::LeaveGroup, 5, leave),
        ),
    ]
}

/// Offsets and group admin.
fn group_offset_cases() -> Vec<Case> {
    use acl::{DELETE, DESCRIBE, GROUP as G, READ, TOPIC as T};
    let group = || GroupId(text(GROUP));
    let commit = OffsetCommitRequest::default()
        .with_group_id(group())
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ]);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(group())
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partition_indexes(vec![0]),
        ]));
    let describe = DescribeGroupsRequest::default().with_groups(vec![group()]);
    let delete_offsets = OffsetDeleteRequest::default()
        .with_group_id(group())
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                ]),
        ]);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![group()]);
    let group_read = ((G, GROUP, READ), GROUP_DENIED);
    vec![
        case(
            "OffsetCommit",
            &[group_read, ((T, TOPIC, READ), TOPIC_DENIED)],
            &[0],
            ask::<_, OffsetCommitResponse>(ApiKey::OffsetCommit, 8, commit),
        ),
        case(
            "OffsetFetch",
            &[
                ((G, GROUP, DESCRIBE), GROUP_DENIED),
                ((T, TOPIC, DESCRIBE), TOPIC_DENIED),
            ],
            &[0],
            ask::<_, OffsetFetchResponse>(ApiKey::OffsetFetch, 7, fetch),
        ),
        case(
            "DescribeGroups",
            &[((G, GROUP, DESCRIBE), GROUP_DENIED)],
            &[0],
            ask::<_, DescribeGroupsResponse>(ApiKey::DescribeGroups, 5, describe),
        ),
        case(
            "OffsetDelete",
            &[
                ((G, GROUP, DELETE), GROUP_DENIED),
                ((T, TOPIC, READ), TOPIC_DENIED),
            ],
            &[0],
            ask::<_, OffsetDeleteResponse>(ApiKey::OffsetDelete, 0, delete_offsets),
        ),
        case(
            "DeleteGroups",
            &[((G, GROUP, DELETE), GROUP_DENIED)],
            &[0],
            ask::<_, DeleteGroupsResponse>(ApiKey::DeleteGroups, 2, delete),
        ),
    ]
}

/// KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe.
fn consumer_group_cases() -> Vec<Case> {
    use acl::{DESCRIBE, GROUP as G, READ, TOPIC as T};
    const GROUP: &str = "matrix-848";
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(text(GROUP)))
        .with_member_id(text("matrix-member-0000000"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![topic_name(TOPIC)]))
        .with_topic_partitions(Some(Vec::new()));
    let describe =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text(GROUP))]);
    vec![
        case(
            "ConsumerGroupHeartbeat",
            &[
                ((G, GROUP, READ), GROUP_DENIED),
                ((T, TOPIC, DESCRIBE), TOPIC_DENIED),
            ],
            &[0],
            ask::<_, ConsumerGroupHeartbeatResponse>(ApiKey::ConsumerGroupHeartbeat, 1, heartbeat),
        ),
        case(
            "ConsumerGroupDescribe",
            &[((G, GROUP, DESCRIBE), GROUP_DENIED)],
            &[0],
            ask::<_, ConsumerGroupDescribeResponse>(ApiKey::ConsumerGroupDescribe, 0, describe),
        ),
    ]
}

/// FindCoordinator of a transactional id, and the producer ids of
/// idempotent producers (IdempotentWrite on the cluster, or Write on some
/// topic: KIP-679).
fn producer_id_cases() -> Vec<Case> {
    use acl::{CLUSTER, DESCRIBE, IDEMPOTENT_WRITE, TOPIC as T, TXN, WRITE};
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![text(TXN_ID)]);
    let idempotent = || {
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    vec![
        case(
            "FindCoordinator transaction",
            &[((TXN, TXN_ID, DESCRIBE), TXN_DENIED)],
            &[0],
            ask::<_, FindCoordinatorResponse>(ApiKey::FindCoordinator, 4, find),
        ),
        case(
            "InitProducerId idempotent (IdempotentWrite)",
            &[((CLUSTER, "", IDEMPOTENT_WRITE), CLUSTER_DENIED)],
            &[0],
            ask::<_, InitProducerIdResponse>(ApiKey::InitProducerId, 4, idempotent()),
        ),
        case(
            "InitProducerId idempotent (Write on a topic)",
            &[((T, TOPIC, WRITE), CLUSTER_DENIED)],
            &[0],
            ask::<_, InitProducerIdResponse>(ApiKey::InitProducerId, 4, idempotent()),
        ),
    ]
}

const TXN_ID: &str = "matrix-txn";
const TXN_GROUP: &str = "matrix-txn-group";

/// A producer id and epoch, once InitProducerId gives them.
type Producer = std::rc::Rc<std::cell::Cell<(i64, i16)>>;

/// Makes a request with `make` from the producer as it is at each call.
fn made_with<R: 'static>(
    producer: &Producer,
    make: fn((i64, i16)) -> R,
) -> impl Fn() -> R + 'static {
    let producer = std::rc::Rc::clone(producer);
    move || make(producer.get())
}

fn add_partitions((id, epoch): (i64, i16)) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(text(TXN_ID)))
        .with_v3_and_below_producer_id(ProducerId(id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![0]),
        ])
}

fn add_offsets((id, epoch): (i64, i16)) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(text(TXN_ID)))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(text(TXN_GROUP)))
}

fn txn_commit((id, epoch): (i64, i16)) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(text(TXN_ID)))
        .with_group_id(GroupId(text(TXN_GROUP)))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(text(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(0),
                ]),
        ])
}

fn end_txn((id, epoch): (i64, i16)) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(text(TXN_ID)))
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch)
        .with_committed(true)
}

/// InitProducerId and the transaction APIs: the transactional producer
/// the first case is given runs the transaction of the others (so each
/// answers NONE once allowed).
fn transaction_cases() -> Vec<Case> {
    use acl::{DESCRIBE, GROUP as G, READ, TOPIC as T, TXN, WRITE};
    let producer: Producer = std::rc::Rc::new(std::cell::Cell::new((-1, -1)));
    let transactional = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(text(TXN_ID))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let given = std::rc::Rc::clone(&producer);
    let init_transactional = move |conn: &mut Conn| {
        let answer: InitProducerIdResponse = conn.call(ApiKey::InitProducerId, 4, &transactional);
        if answer.error_code == 0 {
            given.set((answer.producer_id.0, answer.producer_epoch));
        }
        codes(&answer)
    };
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(text(TXN_ID))]);
    let txn_write = ((TXN, TXN_ID, WRITE), TXN_DENIED);
    vec![
        case(
            "InitProducerId transactional",
            &[txn_write],
            &[0],
            init_transactional,
        ),
        case(
            "AddPartitionsToTxn",
            &[txn_write, ((T, TOPIC, WRITE), TOPIC_DENIED)],
            &[0],
            build::<_, AddPartitionsToTxnResponse>(
                ApiKey::AddPartitionsToTxn,
                3,
                made_with(&producer, add_partitions),
            ),
        ),
        case(
            "AddOffsetsToTxn",
            &[txn_write, ((G, TXN_GROUP, READ), GROUP_DENIED)],
            &[0],
            build::<_, AddOffsetsToTxnResponse>(
                ApiKey::AddOffsetsToTxn,
                3,
                made_with(&producer, add_offsets),
            ),
        ),
        case(
            "TxnOffsetCommit",
            &[
                txn_write,
                ((G, TXN_GROUP, READ), GROUP_DENIED),
                ((T, TOPIC, READ), TOPIC_DENIED),
            ],
            &[0],
            build::<_, TxnOffsetCommitResponse>(
                ApiKey::TxnOffsetCommit,
                3,
                made_with(&producer, txn_commit),
            ),
        ),
        case(
            "EndTxn",
            &[txn_write],
            &[0],
            build::<_, EndTxnResponse>(ApiKey::EndTxn, 3, made_with(&producer, end_txn)),
        ),
        case(
            "DescribeTransactions",
            &[((TXN, TXN_ID, DESCRIBE), TXN_DENIED)],
            &[0],
            ask::<_, DescribeTransactionsResponse>(ApiKey::DescribeTransactions, 0, describe),
        ),
    ]
}

/// The config: an administrator's SASL listener and the matrix's
/// PLAINTEXT one (its clients are `User:ANONYMOUS`).
fn config(admin: SocketAddr, client: SocketAddr) -> String {
    format!(
        "listeners = [\"ADMIN://{admin}\", \"CLIENT://{client}\"]\n\
         listener-security-protocol-map = {{ ADMIN = \"SASL_PLAINTEXT\", CLIENT = \"PLAINTEXT\" }}\n\
         sasl-enabled-mechanisms = [\"PLAIN\"]\n\
         sasl-users = [\"admin:adm1n\"]\n\
         authorizer-enabled = true\n\
         super-users = [\"User:admin\"]\n"
    )
}

/// A broker with the matrix's listeners; the administrator's connection
/// and the client listener's address.
fn broker(dir: &std::path::Path) -> (common::Broker, Conn, SocketAddr) {
    let (admin_addr, client_addr) = (free_addr(), free_addr());
    let broker = common::start_listeners(
        dir,
        &config(admin_addr, client_addr),
        &[admin_addr, client_addr],
    );
    (broker, admin_conn(admin_addr), client_addr)
}

/// A topic of one partition, made by the administrator.
fn create_topic(admin: &mut Conn, name: &str) {
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let created: CreateTopicsResponse = admin.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(codes(&created), [0], "{name}");
}

#[test]
fn every_api_answers_its_authorization_error_until_granted_what_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let (_broker, mut admin, client_addr) = broker(tmp.path());
    for topic in [TOPIC, "matrix-doomed", "matrix-grown"] {
        create_topic(&mut admin, topic);
    }
    let mut client = Conn::open(client_addr);
    let cases = [
        data_cases(),
        topic_admin_cases(),
        config_cases(),
        cluster_cases(),
        acl_and_user_cases(),
        group_cases(),
        group_offset_cases(),
        consumer_group_cases(),
        producer_id_cases(),
        transaction_cases(),
    ];
    let mut served = 0;
    for case in cases.iter().flatten() {
        run(case, &mut client, &mut admin);
        served += 1;
    }
    eprintln!("{served} cases");
}

/// Metadata of all topics, ListGroups and ListTransactions leave out what
/// the principal may not describe (and answer no error), until granted.
#[test]
fn listings_show_only_what_the_principal_may_describe() {
    use acl::{DESCRIBE, GROUP, TOPIC as T, TXN};
    let tmp = tempfile::tempdir().unwrap();
    let (_broker, mut admin, client_addr) = broker(tmp.path());
    for name in ["seen", "unseen"] {
        create_topic(&mut admin, name);
        let commit = OffsetCommitRequest::default()
            .with_group_id(GroupId(text(&format!("g-{name}"))))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(text(""))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic_name(name))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(0),
                    ]),
            ]);
        let committed: OffsetCommitResponse = admin.call(ApiKey::OffsetCommit, 8, &commit);
        assert_eq!(codes(&committed), [0]);
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(text(&format!("t-{name}")))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let given: InitProducerIdResponse = admin.call(ApiKey::InitProducerId, 4, &init);
        assert_eq!(given.error_code, 0);
    }
    let mut client = Conn::open(client_addr);
    let mut listed = || {
        let all = MetadataRequest::default().with_topics(None);
        let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &all);
        assert!(codes(&metadata).iter().all(|&c| c == 0));
        let topics: Vec<String> = metadata
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .collect();
        let groups: ListGroupsResponse =
            client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
        assert_eq!(groups.error_code, 0);
        let mut groups: Vec<String> = groups
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect();
        groups.sort();
        let txns: ListTransactionsResponse = client.call(
            ApiKey::ListTransactions,
            1,
            &ListTransactionsRequest::default(),
        );
        assert_eq!(txns.error_code, 0);
        let txns: Vec<String> = txns
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.0.to_string())
            .collect();
        (topics, groups, txns)
    };
    let none = (Vec::new(), Vec::new(), Vec::new());
    assert_eq!(listed(), none);
    for grant in [
        (T, "seen", DESCRIBE),
        (GROUP, "g-seen", DESCRIBE),
        (TXN, "t-seen", DESCRIBE),
    ] {
        let create = CreateAclsRequest::default().with_creations(vec![acl_creation(grant)]);
        let created: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &create);
        assert_eq!(codes(&created), [0]);
    }
    let seen = |s: &str| vec![s.to_string()];
    assert_eq!(listed(), (seen("seen"), seen("g-seen"), seen("t-seen")));
}
