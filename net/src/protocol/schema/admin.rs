//! Request tables of the admin APIs: topics, partitions, configs,
//! records, cluster and log dirs, SASL and users' SCRAM credentials (see
//! the parent module for the notation).

use kafka_protocol::messages::{
    ApiKey, BrokerId, TopicName, alter_configs_request, alter_partition_reassignments_request,
    alter_user_scram_credentials_request, create_acls_request, create_partitions_request,
    create_topics_request, delete_acls_request, delete_records_request, delete_topics_request,
    describe_configs_request, describe_log_dirs_request, describe_user_scram_credentials_request,
    elect_leaders_request, incremental_alter_configs_request, list_partition_reassignments_request,
};
use kafka_protocol::protocol::StrBytes;

use super::Kind::{Bool, Bytes, Int8, Int16, Int32, Int64, Str, Uuid};
use super::{Message, array, field, message};

pub(super) const CREATE_TOPICS: Message = message!(CreateTopicsRequest, Some(ApiKey::CreateTopics), 2..=7, flexible 5, [
    field!(topics, 0.., array!(create_topics_request::CreatableTopic, [
        field!(name, 0.., Str),
        field!(num_partitions, 0.., Int32),
        field!(replication_factor, 0.., Int16),
        field!(assignments, 0.., array!(create_topics_request::CreatableReplicaAssignment, [
            field!(partition_index, 0.., Int32),
            field!(broker_ids, 0.., array!(BrokerId, Int32)),
        ])),
        field!(configs, 0.., array!(create_topics_request::CreatableTopicConfig, [
            field!(name, 0.., Str),
            field!(value, 0.., Str, nullable),
        ])),
    ])),
    field!(timeout_ms, 0.., Int32),
    field!(validate_only, 0.., Bool),
]);

pub(super) const DELETE_TOPICS: Message = message!(DeleteTopicsRequest, Some(ApiKey::DeleteTopics), 1..=6, flexible 4, [
    field!(topics, 6.., array!(delete_topics_request::DeleteTopicState, [
        field!(name, 6.., Str, nullable),
        field!(topic_id, 6.., Uuid),
    ])),
    field!(topic_names, 0..=5, array!(TopicName, Str)),
    field!(timeout_ms, 0.., Int32),
]);

pub(super) const CREATE_PARTITIONS: Message = message!(CreatePartitionsRequest, Some(ApiKey::CreatePartitions), 0..=3, flexible 2, [
    field!(topics, 0.., array!(create_partitions_request::CreatePartitionsTopic, [
        field!(name, 0.., Str),
        field!(count, 0.., Int32),
        field!(assignments, 0.., array!(create_partitions_request::CreatePartitionsAssignment, [
            field!(broker_ids, 0.., array!(BrokerId, Int32)),
        ]), nullable),
    ])),
    field!(timeout_ms, 0.., Int32),
    field!(validate_only, 0.., Bool),
]);

pub(super) const DESCRIBE_CONFIGS: Message = message!(DescribeConfigsRequest, Some(ApiKey::DescribeConfigs), 1..=4, flexible 4, [
    field!(resources, 0.., array!(describe_configs_request::DescribeConfigsResource, [
        field!(resource_type, 0.., Int8),
        field!(resource_name, 0.., Str),
        field!(configuration_keys, 0.., array!(StrBytes, Str), nullable),
    ])),
    field!(include_synonyms, 0.., Bool),
    field!(include_documentation, 3.., Bool),
]);

pub(super) const ALTER_CONFIGS: Message = message!(AlterConfigsRequest, Some(ApiKey::AlterConfigs), 0..=2, flexible 2, [
    field!(resources, 0.., array!(alter_configs_request::AlterConfigsResource, [
        field!(resource_type, 0.., Int8),
        field!(resource_name, 0.., Str),
        field!(configs, 0.., array!(alter_configs_request::AlterableConfig, [
            field!(name, 0.., Str),
            field!(value, 0.., Str, nullable),
        ])),
    ])),
    field!(validate_only, 0.., Bool),
]);

pub(super) const INCREMENTAL_ALTER_CONFIGS: Message = message!(IncrementalAlterConfigsRequest, Some(ApiKey::IncrementalAlterConfigs), 0..=1, flexible 1, [
    field!(resources, 0.., array!(incremental_alter_configs_request::AlterConfigsResource, [
        field!(resource_type, 0.., Int8),
        field!(resource_name, 0.., Str),
        field!(configs, 0.., array!(incremental_alter_configs_request::AlterableConfig, [
            field!(name, 0.., Str),
            field!(config_operation, 0.., Int8),
            field!(value, 0.., Str, nullable),
        ])),
    ])),
    field!(validate_only, 0.., Bool),
]);

pub(super) const DELETE_RECORDS: Message = message!(DeleteRecordsRequest, Some(ApiKey::DeleteRecords), 0..=2, flexible 2, [
    field!(topics, 0.., array!(delete_records_request::DeleteRecordsTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(delete_records_request::DeleteRecordsPartition, [
            field!(partition_index, 0.., Int32),
            field!(offset, 0.., Int64),
        ])),
    ])),
    field!(timeout_ms, 0.., Int32),
]);

pub(super) const DESCRIBE_CLUSTER: Message = message!(DescribeClusterRequest, Some(ApiKey::DescribeCluster), 0..=2, flexible 0, [
    field!(include_cluster_authorized_operations, 0.., Bool),
    field!(endpoint_type, 1.., Int8),
    field!(include_fenced_brokers, 2.., Bool),
]);

pub(super) const DESCRIBE_LOG_DIRS: Message = message!(DescribeLogDirsRequest, Some(ApiKey::DescribeLogDirs), 1..=4, flexible 2, [
    field!(topics, 0.., array!(describe_log_dirs_request::DescribableLogDirTopic, [
        field!(topic, 0.., Str),
        field!(partitions, 0.., array!(i32, Int32)),
    ]), nullable),
]);

pub(super) const ELECT_LEADERS: Message = message!(ElectLeadersRequest, Some(ApiKey::ElectLeaders), 0..=2, flexible 2, [
    field!(election_type, 1.., Int8),
    field!(topic_partitions, 0.., array!(elect_leaders_request::TopicPartitions, [
        field!(topic, 0.., Str),
        field!(partitions, 0.., array!(i32, Int32)),
    ]), nullable),
    field!(timeout_ms, 0.., Int32),
]);

pub(super) const ALTER_PARTITION_REASSIGNMENTS: Message = message!(AlterPartitionReassignmentsRequest, Some(ApiKey::AlterPartitionReassignments), 0..=1, flexible 0, [
    field!(timeout_ms, 0.., Int32),
    field!(allow_replication_factor_change, 1.., Bool),
    field!(topics, 0.., array!(alter_partition_reassignments_request::ReassignableTopic, [
        field!(name, 0.., Str),
        field!(partitions, 0.., array!(alter_partition_reassignments_request::ReassignablePartition, [
            field!(partition_index, 0.., Int32),
            field!(replicas, 0.., array!(BrokerId, Int32), nullable),
        ])),
    ])),
]);

pub(super) const LIST_PARTITION_REASSIGNMENTS: Message = message!(ListPartitionReassignmentsRequest, Some(ApiKey::ListPartitionReassignments), 0..=0, flexible 0, [
    field!(timeout_ms, 0.., Int32),
    field!(topics, 0.., array!(list_partition_reassignments_request::ListPartitionReassignmentsTopics, [
        field!(name, 0.., Str),
        field!(partition_indexes, 0.., array!(i32, Int32)),
    ]), nullable),
]);

pub(super) const SASL_HANDSHAKE: Message = message!(SaslHandshakeRequest, Some(ApiKey::SaslHandshake), 0..=1, never flexible, [
    field!(mechanism, 0.., Str),
]);

pub(super) const SASL_AUTHENTICATE: Message = message!(SaslAuthenticateRequest, Some(ApiKey::SaslAuthenticate), 0..=2, flexible 2, [
    field!(auth_bytes, 0.., Bytes),
]);

pub(super) const DESCRIBE_USER_SCRAM_CREDENTIALS: Message = message!(DescribeUserScramCredentialsRequest, Some(ApiKey::DescribeUserScramCredentials), 0..=0, flexible 0, [
    field!(users, 0.., array!(describe_user_scram_credentials_request::UserName, [
        field!(name, 0.., Str),
    ]), nullable),
]);

pub(super) const ALTER_USER_SCRAM_CREDENTIALS: Message = message!(AlterUserScramCredentialsRequest, Some(ApiKey::AlterUserScramCredentials), 0..=0, flexible 0, [
    field!(deletions, 0.., array!(alter_user_scram_credentials_request::ScramCredentialDeletion, [
        field!(name, 0.., Str),
        field!(mechanism, 0.., Int8),
    ])),
    field!(upsertions, 0.., array!(alter_user_scram_credentials_request::ScramCredentialUpsertion, [
        field!(name, 0.., Str),
        field!(mechanism, 0.., Int8),
        field!(iterations, 0.., Int32),
        field!(salt, 0.., Bytes),
        field!(salted_password, 0.., Bytes),
    ])),
]);

pub(super) const DESCRIBE_ACLS: Message = message!(DescribeAclsRequest, Some(ApiKey::DescribeAcls), 1..=3, flexible 2, [
    field!(resource_type_filter, 0.., Int8),
    field!(resource_name_filter, 0.., Str, nullable),
    field!(pattern_type_filter, 1.., Int8),
    field!(principal_filter, 0.., Str, nullable),
    field!(host_filter, 0.., Str, nullable),
    field!(operation, 0.., Int8),
    field!(permission_type, 0.., Int8),
]);

pub(super) const CREATE_ACLS: Message = message!(CreateAclsRequest, Some(ApiKey::CreateAcls), 1..=3, flexible 2, [
    field!(creations, 0.., array!(create_acls_request::AclCreation, [
        field!(resource_type, 0.., Int8),
        field!(resource_name, 0.., Str),
        field!(resource_pattern_type, 1.., Int8),
        field!(principal, 0.., Str),
        field!(host, 0.., Str),
        field!(operation, 0.., Int8),
        field!(permission_type, 0.., Int8),
    ])),
]);

pub(super) const DELETE_ACLS: Message = message!(DeleteAclsRequest, Some(ApiKey::DeleteAcls), 1..=3, flexible 2, [
    field!(filters, 0.., array!(delete_acls_request::DeleteAclsFilter, [
        field!(resource_type_filter, 0.., Int8),
        field!(resource_name_filter, 0.., Str, nullable),
        field!(pattern_type_filter, 1.., Int8),
        field!(principal_filter, 0.., Str, nullable),
        field!(host_filter, 0.., Str, nullable),
        field!(operation, 0.., Int8),
        field!(permission_type, 0.., Int8),
    ])),
]);
