//! ACLs (`authorizer-enabled`, `super-users`): kafka-python as the super
//! user creates, describes (by filter, MATCH included) and deletes ACLs;
//! users then produce, consume in groups and list topics as the ACLs let
//! them (literal and prefixed patterns, a deny winning over an allow) and
//! get Kafka's TOPIC_, GROUP_ and CLUSTER_AUTHORIZATION_FAILED otherwise;
//! nothing is written when a produce is refused. Without an authorizer the
//! ACL APIs answer SECURITY_DISABLED. The HTTP API's users are held to the
//! same ACLs.

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

/// Basic-authenticated requests to an HTTP listener, as its users.
struct HttpUsers(std::net::SocketAddr);

impl HttpUsers {
    /// (status, body) of `user`'s request.
    fn call(&self, user: &str, method: &str, path: &str, body: &str) -> (u16, String) {
        use base64::Engine as _;
        let password = match user {
            "alice" => "al1ce",
            "bob" => "b0b",
            _ => "0ps",
        };
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let header = format!("Basic {token}");
        let authorization = [("Authorization", header.as_str())];
        let ((status, _, body), _) =
            common::http_request_with(self.0, method, path, &authorization, body);
        (status, body)
    }

    /// `user`'s request answers 200; its body.
    fn ok(&self, user: &str, method: &str, path: &str, body: &str) -> String {
        let (status, answer) = self.call(user, method, path, body);
        assert_eq!(status, 200, "{user} {method} {path}: {answer}");
        answer
    }

    /// `user`'s request answers 403 with `error`.
    fn refused(&self, user: &str, method: &str, path: &str, body: &str, error: &str) {
        let (status, answer) = self.call(user, method, path, body);
        assert_eq!(status, 403, "{user} {method} {path}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"], error, "{user} {method} {path}");
    }

    /// The log end of `topic`'s partition 0.
    fn latest(&self, topic: &str) -> i64 {
        let answer = self.ok("alice", "GET", &format!("/offsets/{topic}"), "");
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()[0]["latest"]
            .as_i64()
            .unwrap()
    }
}

/// The HTTP API under the authorizer: each route checks what the Kafka
/// API it stands for would (produce: Write on the topic; fetch: Read;
/// offsets: Describe; commit: Read on the group and the topics; committed:
/// Describe on the group, only describable topics shown; consume: Read on
/// the group and the topic; metrics: Describe on the cluster), for the
/// user the basic authentication proves; a refusal is 403 with Kafka's
/// error name and writes nothing.
#[test]
fn http_requests_are_held_to_the_acls_of_their_user() {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, http) = (free_addr(), free_addr());
    // The Kafka listener is the administrator's here (no SASL on it).
    let config = format!(
        "http-listen = \"{http}\"\n\
         http-users = [\"alice:al1ce\", \"bob:b0b\", \"ops:0ps\"]\n\
         authorizer-enabled = true\n\
         super-users = [\"User:ANONYMOUS\"]\n"
    );
    let _broker = start_configured(tmp.path(), addr, &config);
    let bootstrap = addr.to_string();
    let admin = |args: &[&str]| common::shardlog(&[args, &["--bootstrap", &bootstrap]].concat());
    admin(&["topic", "create", "pay-eu"]);
    admin(&["topic", "create", "hr"]);
    let topics = ["topic", "pay-", "--prefixed", "--operation", "read"];
    let alice = ["--operation", "write", "--principal", "User:alice"];
    admin(&[&["acl", "add"][..], &topics, &alice].concat());
    let group = ["acl", "add", "group", "g1", "--operation"];
    admin(&[&group[..], &["read", "--principal", "User:alice"]].concat());
    admin(&[&group[..], &["describe", "--principal", "User:bob"]].concat());
    let cluster = ["acl", "add", "cluster", "--operation", "describe"];
    admin(&[&cluster[..], &["--principal", "User:ops"]].concat());
    let users = HttpUsers(http);
    http_produce_and_fetch_need_write_and_read(&users);
    http_offsets_need_the_group_and_its_topics(&users);
    http_consume_needs_read_on_group_and_topic(&users);
    users.refused(
        "alice",
        "GET",
        "/metrics",
        "",
        "CLUSTER_AUTHORIZATION_FAILED",
    );
    let metrics = users.ok("ops", "GET", "/metrics", "");
    assert!(metrics.contains("pay-eu"), "the scrape names the topics");
}

fn http_produce_and_fetch_need_write_and_read(users: &HttpUsers) {
    let topic_denied = "TOPIC_AUTHORIZATION_FAILED";
    let message = r#"{"value": "v1"}"#;
    users.ok("alice", "POST", "/produce/pay-eu", message);
    users.refused("bob", "POST", "/produce/pay-eu", message, topic_denied);
    users.refused("alice", "POST", "/produce/hr", message, topic_denied);
    let both = r#"[{"topic": "pay-eu", "value": "a"}, {"topic": "hr", "value": "b"}]"#;
    users.refused("alice", "POST", "/produce", both, topic_denied);
    assert_eq!(users.latest("pay-eu"), 1, "only alice's first message");
    users.refused("alice", "GET", "/offsets/hr", "", topic_denied);
    let fetch = "/fetch?topic=pay-eu&partition=0&offset=0";
    let records = users.ok("alice", "GET", fetch, "");
    assert!(records.contains("v1"), "{records}");
    users.refused("bob", "GET", fetch, "", topic_denied);
}

fn http_offsets_need_the_group_and_its_topics(users: &HttpUsers) {
    let commit = r#"[{"topic": "pay-eu", "partition": 0, "offset": 1}]"#;
    users.ok("alice", "POST", "/commit/g1", commit);
    let group_denied = "GROUP_AUTHORIZATION_FAILED";
    users.refused("alice", "POST", "/commit/g2", commit, group_denied);
    let hr = r#"[{"topic": "hr", "partition": 0, "offset": 0}]"#;
    let topic_denied = "TOPIC_AUTHORIZATION_FAILED";
    users.refused("alice", "POST", "/commit/g1", hr, topic_denied);
    let committed = users.ok("alice", "GET", "/committed/g1", "");
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(committed[0]["offset"], 1, "{committed}");
    // Bob may describe the group but no topic: he sees no offsets.
    assert_eq!(users.ok("bob", "GET", "/committed/g1", ""), "[]");
    users.refused("ops", "GET", "/committed/g1", "", group_denied);
}

fn http_consume_needs_read_on_group_and_topic(users: &HttpUsers) {
    users.ok("alice", "GET", "/consume/pay-eu/g1/i1?timeout=100", "");
    let bob = "/consume/pay-eu/g1/i2?timeout=100";
    users.refused("bob", "GET", bob, "", "GROUP_AUTHORIZATION_FAILED");
    let hr = "/consume/hr/g1/i3?timeout=100";
    users.refused("alice", "GET", hr, "", "TOPIC_AUTHORIZATION_FAILED");
    users.ok("alice", "DELETE", "/consume/pay-eu/g1/i1", "");
}
