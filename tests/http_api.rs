//! The HTTP produce API against a real broker: every form (a message in
//! the path with a key in the query; one JSON message; an array to a
//! topic; an array naming topics) answered with each message's topic,
//! partition, offset and timestamp, and read back by a Kafka consumer
//! (librdkafka) exactly so, keys and headers too, and by `/fetch` (whose
//! `/offsets` agree); offsets committed over HTTP are what a Kafka
//! consumer of the group finds; bad input gets a 4xx with the Kafka error
//! name; `/consume` instances are group members beside a Kafka client's.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use rdkafka::message::{Headers, Message};

use common::{create_topic_raw, free_addr, http_request, start_with};

/// A record: (key, value, headers, timestamp).
type Stored = (Option<String>, String, Vec<(String, String)>, i64);
/// (partition, offset) -> the record, as a consumer reads it.
type ReadBack = BTreeMap<(i32, i64), Stored>;

fn read_back(addr: SocketAddr, topic: &str, partitions: i32, count: usize) -> ReadBack {
    let consumer =
        common::assigned_consumer(addr, topic, partitions, "http-readers", "read_committed");
    let mut out = ReadBack::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < count {
        assert!(Instant::now() < deadline, "read {} of {count}", out.len());
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message.unwrap();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), text(h.value).unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            (m.partition(), m.offset()),
            (
                text(m.key()),
                text(m.payload()).unwrap(),
                headers,
                m.timestamp().to_millis().unwrap(),
            ),
        );
    }
    out
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// (partition, offset, timestamp) of one answer.
fn placed(answer: &serde_json::Value, topic: &str) -> (i32, i64, i64) {
    assert_eq!(answer["topic"], topic, "{answer}");
    (
        i32::try_from(answer["partition"].as_i64().unwrap()).unwrap(),
        answer["offset"].as_i64().unwrap(),
        answer["timestamp"].as_i64().unwrap(),
    )
}

#[test]
fn every_produce_form_is_read_back_by_a_kafka_consumer() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let http = free_addr();
    let _broker = start_with(
        tmp.path(),
        addr,
        "warn",
        &["--http-listen", &http.to_string()],
    );
    create_topic_raw(addr, "web", 3);
    let mut expected = ReadBack::new();

    let (status, _, body) = http_request(http, "GET", "/produce/web/hello%20there?key=k%2B1", "");
    assert_eq!(status, 200, "{body}");
    let (p, o, t) = placed(&json(&body), "web");
    assert_eq!(p, engine::partitioner::partition_for_key(b"k+1", 3));
    expected.insert(
        (p, o),
        (Some("k+1".into()), "hello there".into(), vec![], t),
    );

    let one = r#"{"value":"one","partition":1,"timestamp":1700000000123,"headers":[{"key":"h","value":"v"}]}"#;
    let (status, _, body) = http_request(http, "POST", "/produce/web", one);
    assert_eq!(status, 200, "{body}");
    let (p, o, t) = placed(&json(&body), "web");
    assert_eq!((p, t), (1, 1_700_000_000_123));
    expected.insert(
        (p, o),
        (None, "one".into(), vec![("h".into(), "v".into())], t),
    );

    let many: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"key":"key-{i}","value":"many {i}"}}"#))
        .collect();
    let (status, _, body) = http_request(
        http,
        "POST",
        "/produce/web",
        &format!("[{}]", many.join(",")),
    );
    assert_eq!(status, 200, "{body}");
    for (i, answer) in json(&body).as_array().unwrap().iter().enumerate() {
        let (p, o, t) = placed(answer, "web");
        expected.insert(
            (p, o),
            (Some(format!("key-{i}")), format!("many {i}"), vec![], t),
        );
    }

    let named =
        r#"[{"topic":"web","value":"a","partition":0},{"topic":"web","value":"b","partition":0}]"#;
    let (status, _, body) = http_request(http, "GET", "/produce", named);
    assert_eq!(status, 200, "{body}");
    let answers = json(&body);
    let (p0, o0, t0) = placed(&answers[0], "web");
    let (p1, o1, t1) = placed(&answers[1], "web");
    assert_eq!((p0, p1, o1), (0, 0, o0 + 1), "in order on their partition");
    expected.insert((p0, o0), (None, "a".into(), vec![], t0));
    expected.insert((p1, o1), (None, "b".into(), vec![], t1));

    assert_eq!(read_back(addr, "web", 3, expected.len()), expected);
    offsets_and_fetch_read_what_was_produced(http, &expected);
    commits_are_what_a_kafka_consumer_finds(addr, http);
    fetch_skips_aborted_transactions(addr, http);
    bad_input_gets_4xx_with_the_kafka_error_name(http);
}

/// A transaction aborted between records written outside transactions and
/// one committed: `/fetch` returns what a read_committed consumer reads.
fn fetch_skips_aborted_transactions(addr: SocketAddr, http: SocketAddr) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    create_topic_raw(addr, "ledger", 1);
    let (status, _, body) = http_request(http, "GET", "/produce/ledger/plain", "");
    assert_eq!(status, 200, "{body}");
    let timeout = Duration::from_secs(30);
    let writer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("transactional.id", "http-ledger")
        .create()
        .unwrap();
    writer.init_transactions(timeout).unwrap();
    for outcome in ["aborted", "committed"] {
        writer.begin_transaction().unwrap();
        for i in 0..3 {
            let value = format!("{outcome}-{i}");
            common::send_when_queued(&writer, BaseRecord::<(), _>::to("ledger").payload(&value));
        }
        writer.flush(timeout).unwrap();
        match outcome {
            "aborted" => writer.abort_transaction(timeout).unwrap(),
            _ => writer.commit_transaction(timeout).unwrap(),
        }
    }
    let (status, _, body) =
        http_request(http, "GET", "/fetch?topic=ledger&partition=0&offset=0", "");
    assert_eq!(status, 200, "{body}");
    let values: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        values,
        ["plain", "committed-0", "committed-1", "committed-2"]
    );
}

/// `/commit/GROUP` stores offsets a Kafka consumer of that group then
/// finds (OffsetFetch); `/committed/GROUP` lists them.
fn commits_are_what_a_kafka_consumer_finds(addr: SocketAddr, http: SocketAddr) {
    let body = r#"[{"topic":"web","partition":0,"offset":2,"metadata":"m"},{"topic":"web","partition":1,"offset":1}]"#;
    let (status, _, answer) = http_request(http, "POST", "/commit/http-group", body);
    assert_eq!(status, 200, "{answer}");
    for entry in json(&answer).as_array().unwrap() {
        assert!(entry["error"].is_null(), "{entry}");
    }
    let consumer = common::assigned_consumer(addr, "web", 3, "http-group", "read_committed");
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        list.add_partition("web", p);
    }
    let committed =
        rdkafka::consumer::Consumer::committed_offsets(&consumer, list, Duration::from_secs(10))
            .unwrap();
    let found: Vec<(i32, rdkafka::Offset)> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(
        found,
        [
            (0, rdkafka::Offset::Offset(2)),
            (1, rdkafka::Offset::Offset(1)),
            (2, rdkafka::Offset::Invalid)
        ]
    );
    let (status, _, answer) = http_request(http, "GET", "/committed/http-group", "");
    assert_eq!(status, 200, "{answer}");
    let listed: Vec<(i64, i64, String)> = json(&answer)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["partition"].as_i64().unwrap(),
                e["offset"].as_i64().unwrap(),
                e["metadata"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, [(0, 2, "m".to_string()), (1, 1, String::new())]);
}

/// `/offsets/web` has each partition's range; `/fetch` (query and JSON
/// body, from offset 0 and from the middle) returns exactly the records a
/// Kafka consumer read.
fn offsets_and_fetch_read_what_was_produced(http: SocketAddr, expected: &ReadBack) {
    let (status, _, body) = http_request(http, "GET", "/offsets/web", "");
    assert_eq!(status, 200, "{body}");
    for entry in json(&body).as_array().unwrap() {
        let partition = i32::try_from(entry["partition"].as_i64().unwrap()).unwrap();
        let count = expected.keys().filter(|(p, _)| *p == partition).count();
        assert_eq!(entry["earliest"], 0, "{entry}");
        assert_eq!(
            entry["latest"].as_i64().unwrap(),
            i64::try_from(count).unwrap(),
            "{entry}"
        );
    }
    for partition in 0..3 {
        let want: Vec<((i32, i64), _)> = expected
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let (status, _, body) = http_request(
            http,
            "GET",
            &format!("/fetch?topic=web&partition={partition}&offset=0"),
            "",
        );
        assert_eq!(status, 200, "{body}");
        let got: Vec<((i32, i64), Stored)> = json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let headers = common::json_headers(r);
                (
                    (partition, r["offset"].as_i64().unwrap()),
                    (
                        r["key"].as_str().map(str::to_string),
                        r["value"].as_str().unwrap().to_string(),
                        headers,
                        r["timestamp"].as_i64().unwrap(),
                    ),
                )
            })
            .collect();
        assert_eq!(got, want, "partition {partition}");
        if let Some(((_, middle), _)) = want.get(want.len() / 2) {
            let request = format!(r#"{{"topic":"web","partition":{partition},"offset":{middle}}}"#);
            let (status, _, body) = http_request(http, "POST", "/fetch", &request);
            assert_eq!(status, 200, "{body}");
            let offsets: Vec<i64> = json(&body)
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["offset"].as_i64().unwrap())
                .collect();
            let from: Vec<i64> = want
                .iter()
                .map(|((_, o), _)| *o)
                .filter(|o| o >= middle)
                .collect();
            assert_eq!(offsets, from);
        }
    }
}

fn bad_input_gets_4xx_with_the_kafka_error_name(http: SocketAddr) {
    let cases: [(&str, &str, &str, u16, &str); 13] = [
        (
            "POST",
            "/commit/g",
            r#"[{"topic":"web","partition":5,"offset":1}]"#,
            400,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        ("GET", "/commit/g", "", 405, "INVALID_REQUEST"),
        (
            "GET",
            "/offsets/nowhere",
            "",
            404,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            "GET",
            "/fetch?topic=web&partition=7&offset=0",
            "",
            400,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            "GET",
            "/fetch?topic=web&offset=0",
            "",
            400,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/produce/nowhere",
            r#"{"value":"v"}"#,
            404,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        ("POST", "/produce/web", "{not json", 400, "INVALID_REQUEST"),
        (
            "POST",
            "/produce/web",
            r#"{"key":"k"}"#,
            400,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/produce/web",
            r#"{"value":"v","partition":3}"#,
            400,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            "POST",
            "/produce/web",
            r#"{"value":"v","colour":"red"}"#,
            400,
            "INVALID_REQUEST",
        ),
        (
            "POST",
            "/produce",
            r#"[{"value":"no topic"}]"#,
            400,
            "INVALID_REQUEST",
        ),
        ("DELETE", "/produce/web", "", 405, "INVALID_REQUEST"),
        ("GET", "/produce/web/a/b", "", 404, "NOT_FOUND"),
    ];
    for (method, path, body, status, name) in cases {
        let (got, content_type, answer) = http_request(http, method, path, body);
        assert_eq!(
            (got, content_type.as_str()),
            (status, "application/json"),
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(json(&answer)["error"], name, "{method} {path} {body}");
    }
    // A body past the limit is refused from its length, unread.
    let mut stream = TcpStream::connect(http).unwrap();
    write!(
        stream,
        "POST /produce/web HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("MESSAGE_TOO_LARGE"), "{response}");
}

/// With `http-users`, a request without basic authentication, or with a
/// wrong password, is 401 (with the challenge); a configured user's passes.
#[test]
fn basic_authentication_is_refused_and_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let http = free_addr();
    let config =
        format!("http-listen = \"{http}\"\nhttp-users = [\"alice:s3cret\", \"bob:other\"]\n");
    let _broker = common::start_configured(tmp.path(), addr, &config);
    create_topic_raw(addr, "guarded", 1);
    // base64 of alice:wrong, alice:s3cret and bob:other.
    let cases: [(&[(&str, &str)], u16); 5] = [
        (&[], 401),
        (&[("Authorization", "Basic YWxpY2U6d3Jvbmc=")], 401),
        (&[("Authorization", "Bearer YWxpY2U6czNjcmV0")], 401),
        (&[("Authorization", "Basic YWxpY2U6czNjcmV0")], 200),
        (&[("Authorization", "Basic Ym9iOm90aGVy")], 200),
    ];
    for (headers, status) in cases {
        let ((got, _, body), head) =
            common::http_request_with(http, "GET", "/offsets/guarded", headers, "");
        assert_eq!(got, status, "{headers:?}: {body}");
        if status == 401 {
            assert_eq!(json(&body)["error"], "SASL_AUTHENTICATION_FAILED");
            assert!(
                head.contains("www-authenticate: Basic realm=\"shardlog\""),
                "{head}"
            );
        }
    }
}

/// `/consume/TOPIC/GROUP/INSTANCE` consumes, as instances of one group:
/// (partition, offset, value) of each record returned, and the count of
/// records each instance got.
type Consumed = (BTreeMap<(i32, i64), String>, BTreeMap<String, usize>);

/// One consume of `instance`; its records go into `consumed` (each once).
fn consume_once(http: SocketAddr, instance: &str, query: &str, consumed: &mut Consumed) {
    let path = format!("/consume/feed/feeders/{instance}?{query}");
    let (status, _, body) = http_request(http, "GET", &path, "");
    assert_eq!(status, 200, "{path}: {body}");
    for record in json(&body).as_array().unwrap() {
        let partition = i32::try_from(record["partition"].as_i64().unwrap()).unwrap();
        let offset = record["offset"].as_i64().unwrap();
        let value = record["value"].as_str().unwrap().to_string();
        let before = consumed.0.insert((partition, offset), value);
        assert!(before.is_none(), "{partition}/{offset} came twice");
        *consumed.1.entry(instance.to_string()).or_default() += 1;
    }
}

fn produce_feed(http: SocketAddr, tag: &str, count: usize) -> BTreeMap<(i32, i64), String> {
    let messages: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"value":"{tag}-{i}","partition":{}}}"#, i % 4))
        .collect();
    let (status, _, body) = http_request(
        http,
        "POST",
        "/produce/feed",
        &format!("[{}]", messages.join(",")),
    );
    assert_eq!(status, 200, "{body}");
    json(&body)
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, answer)| {
            let (p, o, _) = placed(answer, "feed");
            ((p, o), format!("{tag}-{i}"))
        })
        .collect()
}

/// Group members over HTTP: one instance joins and reads everything from
/// the start; a second joins and the partitions split between them, each
/// record returned once (what an instance returned is committed before it
/// gives a partition up); a librdkafka member of the same group (KIP-848)
/// joins beside them and the three read what comes next, once; instances
/// that leave (DELETE) commit first, so the group's offsets end at the
/// log ends. Bad instances and queries get 4xx.
#[test]
fn http_instances_are_group_members_beside_a_kafka_consumer() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let tmp = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let http = free_addr();
    let config = format!(
        "http-listen = \"{http}\"\ngroup-consumer-heartbeat-interval-ms = 300\noffsets-topic-num-partitions = 4\n"
    );
    let _broker = common::start_configured(tmp.path(), addr, &config);
    create_topic_raw(addr, "feed", 4);
    let mut expected = produce_feed(http, "first", 40);
    let mut consumed = Consumed::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed.0.len() < expected.len() {
        assert!(Instant::now() < deadline, "a read {}", consumed.0.len());
        consume_once(http, "a", "reset=earliest&timeout=500", &mut consumed);
    }
    assert_eq!(consumed.0, expected, "instance a alone reads everything");

    // A second instance: the group's four partitions split two and two.
    expected.extend(produce_feed(http, "second", 40));
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed.0.len() < expected.len() || consumed.1.get("b").is_none_or(|&n| n < 20) {
        assert!(Instant::now() < deadline, "a and b read {:?}", consumed.1);
        consume_once(http, "b", "timeout=100", &mut consumed);
        consume_once(http, "a", "timeout=100", &mut consumed);
        if consumed.0.len() == expected.len() && consumed.1.get("b").is_none_or(|&n| n < 20) {
            // b still waits for its share: more records to read.
            let more = expected.len();
            expected.extend(produce_feed(http, &format!("more-{more}"), 8));
        }
    }
    assert_eq!(
        consumed.0, expected,
        "a and b together read everything once"
    );

    // A Kafka client's member of the same group beside them.
    let kafka: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr.to_string())
        .set("group.id", "feeders")
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    kafka.subscribe(&["feed"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while kafka.assignment().unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "the Kafka member got nothing");
        let _ = kafka.poll(Duration::from_millis(50));
        consume_once(http, "a", "timeout=50", &mut consumed);
        consume_once(http, "b", "timeout=50", &mut consumed);
    }
    expected.extend(produce_feed(http, "third", 40));
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed.0.len() < expected.len() {
        assert!(Instant::now() < deadline, "read {:?}", consumed.1);
        consume_once(http, "a", "timeout=50", &mut consumed);
        consume_once(http, "b", "timeout=50", &mut consumed);
        if let Some(Ok(m)) = kafka.poll(Duration::from_millis(50)) {
            use rdkafka::message::Message;
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            let before = consumed.0.insert((m.partition(), m.offset()), value);
            assert!(
                before.is_none(),
                "{}/{} came twice",
                m.partition(),
                m.offset()
            );
            *consumed.1.entry("kafka".into()).or_default() += 1;
        }
    }
    assert_eq!(consumed.0, expected, "three members read everything once");
    eprintln!("records per member: {:?}", consumed.1);
    assert!(
        consumed.1.get("kafka").is_some_and(|&n| n > 0),
        "{:?}",
        consumed.1
    );
    drop(kafka);

    instances_leave_committed_at_the_log_ends(http);
    bad_consumes_get_4xx(http);
}

/// Instances a and b leave (DELETE), committing first: every partition's
/// committed offset is its log end.
fn instances_leave_committed_at_the_log_ends(http: SocketAddr) {
    for instance in ["a", "b"] {
        let path = format!("/consume/feed/feeders/{instance}");
        let (status, _, body) = http_request(http, "DELETE", &path, "");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json(&body)["left"], true, "{body}");
    }
    // Every partition's committed offset is its log end.
    // `field` of each entry of the JSON array at `path`, by partition.
    let by_partition = |path: &str, field: &str| -> BTreeMap<i64, i64> {
        let (_, _, body) = http_request(http, "GET", path, "");
        json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["partition"].as_i64().unwrap(), e[field].as_i64().unwrap()))
            .collect()
    };
    assert_eq!(
        by_partition("/committed/feeders", "offset"),
        by_partition("/offsets/feed", "latest"),
        "committed at the log ends"
    );
}

fn bad_consumes_get_4xx(http: SocketAddr) {
    let cases = [
        (
            "DELETE",
            "/consume/feed/feeders/a",
            404,
            "UNKNOWN_MEMBER_ID",
        ),
        (
            "GET",
            "/consume/nowhere/g/i",
            404,
            "UNKNOWN_TOPIC_OR_PARTITION",
        ),
        (
            "GET",
            "/consume/feed/g/i?reset=middle",
            400,
            "INVALID_REQUEST",
        ),
        (
            "GET",
            "/consume/feed/g/i?timeout=soon",
            400,
            "INVALID_REQUEST",
        ),
        ("GET", "/consume/feed/g", 404, "NOT_FOUND"),
        ("PUT", "/consume/feed/g/i", 405, "INVALID_REQUEST"),
    ];
    for (method, path, status, name) in cases {
        let (got, _, body) = http_request(http, method, path, "");
        assert_eq!(
            (got, json(&body)["error"].as_str()),
            (status, Some(name)),
            "{method} {path}: {body}"
        );
    }
}
