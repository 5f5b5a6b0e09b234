//! ACLs (`authorizer-enabled`, `super-users`): kafka-python as the super
//! user creates, describes (by filter, MATCH included) and deletes ACLs;
//! users then produce, consume in groups and list topics as the ACLs let
//! them (literal and prefixed patterns, a deny winning over an allow) and
//! get Kafka's TOPIC_, GROUP_ and CLUSTER_AUTHORIZATION_FAILED otherwise;
//! nothing is written when a produce is refused. Without an authorizer the
//! ACL APIs answer SECURITY_DISABLED.

mod common;

use common::{call, free_addr, python_or_skip, run_python_script, start, start_configured};
use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};

const CONFIG: &str = "sasl-enabled-mechanisms = [\"PLAIN\", \"SCRAM-SHA-512\"]\n\
                      sasl-users = [\"admin:adm1n\", \"alice:al1ce\", \"bob:b0b\"]\n\
                      authorizer-enabled = true\n\
                      super-users = [\"User:admin\"]\n";

#[test]
fn kafka_python_manages_acls_and_each_user_gets_what_they_allow() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    run_python_script(&python, "acls.py", &[&addr.to_string()]);
}

#[test]
fn without_an_authorizer_the_acl_apis_answer_security_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start(tmp.path(), addr, "warn");
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let response: DescribeAclsResponse = call(addr, ApiKey::DescribeAcls, 2, &request);
    assert_eq!(response.error_code, 54, "SECURITY_DISABLED");
}

/// `shardlog ARGS` as `user` over SCRAM-SHA-512; its output.
fn cli(addr: std::net::SocketAddr, user: &str, password: &str, args: &[&str]) -> String {
    let bootstrap = addr.to_string();
    let auth = [
        "--bootstrap",
        &bootstrap,
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--sasl-user",
        user,
        "--sasl-password",
        password,
    ];
    common::shardlog(&[args, &auth].concat())
}

/// The README's walkthrough: the admin makes a user and grants it the
/// topics of a prefix with `shardlog user` and `shardlog acl`; the user
/// sees those topics only, until the grant is removed.
#[test]
fn shardlog_acl_grants_a_user_a_prefix_of_topics_and_takes_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let _broker = start_configured(tmp.path(), addr, CONFIG);
    let admin = |args: &[&str]| cli(addr, "admin", "adm1n", args);
    admin(&["user", "set", "dana", "--password", "d4na"]);
    for topic in ["pay-eu", "pay-us", "hr"] {
        admin(&["topic", "create", topic]);
    }
    let grant = [
        "topic",
        "pay-",
        "--prefixed",
        "--principal",
        "User:dana",
        "--operation",
        "read",
        "--operation",
        "write",
    ];
    admin(&[&["acl", "add"][..], &grant].concat());
    assert_eq!(
        admin(&["acl", "list"]),
        "topic\tpay-\tprefixed\tUser:dana\t*\tread\tallow\n\
         topic\tpay-\tprefixed\tUser:dana\t*\twrite\tallow\n"
    );
    assert_eq!(admin(&["acl", "list", "topic", "hr"]), "");
    let dana_topics = || {
        cli(addr, "dana", "d4na", &["topic", "list"])
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(dana_topics(), ["pay-eu", "pay-us"]);
    assert_eq!(
        admin(&[&["acl", "remove"][..], &grant].concat()),
        "removed 2\n"
    );
    assert!(dana_topics().is_empty());
    assert_eq!(admin(&["acl", "list"]), "");
}
