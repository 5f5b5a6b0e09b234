use bytes::{Buf, Bytes};

use super::generate::{self, Rng, Shape};
use super::*;
use crate::handlers::HANDLERS;

const SEED: u64 = 0x5c4e_3a11;
const BODIES_PER_VERSION: usize = 60;

fn every_message() -> impl Iterator<Item = &'static Message> {
    REQUESTS
        .iter()
        .copied()
        .chain([CONSUMER_PROTOCOL_SUBSCRIPTION, CONSUMER_PROTOCOL_ASSIGNMENT])
}

fn versions(message: &Message) -> std::ops::RangeInclusive<i16> {
    message.versions.min..=message.versions.max
}

#[test]
fn every_served_api_version_has_a_table() {
    for handler in HANDLERS {
        let Some(message) = request(handler.api_key) else {
            panic!("{:?} is served and has no request table", handler.api_key);
        };
        // Produce v0-2 (message format v0/v1) has its own bounded decoder.
        let min = match handler.api_key {
            ApiKey::Produce => 3,
            _ => handler.min_version,
        };
        assert!(
            message.versions.min <= min && handler.max_version <= message.versions.max,
            "{} covers v{}-{}, the handler serves v{}-{}",
            message.name,
            message.versions.min,
            message.versions.max,
            min,
            handler.max_version
        );
    }
}

#[test]
fn every_array_element_takes_at_least_one_byte() {
    fn walk(fields: &'static [Field], message: &Message, version: i16) {
        let flexible = message.is_flexible(version);
        for field in fields.iter().filter(|f| f.versions.contains(version)) {
            if let Kind::Array(array) = &field.kind {
                assert!(
                    walk::min_bytes(&array.element, version, flexible) >= 1,
                    "{}.{} v{version}",
                    message.name,
                    field.name
                );
                if let Kind::Struct(inner) = &array.element {
                    walk(inner, message, version);
                }
            }
            if let Kind::Struct(inner) = &field.kind {
                walk(inner, message, version);
            }
        }
    }
    for message in every_message() {
        for version in versions(message) {
            walk(message.fields, message, version);
        }
    }
}

/// The tables against `kafka-protocol`: every generated body passes the
/// walk, and `kafka-protocol` decodes it taking exactly its bytes, and
/// decodes its own re-encoding to the same message.
#[test]
fn kafka_protocol_decodes_every_generated_body_exactly() {
    eprintln!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED);
    for message in every_message() {
        for version in versions(message) {
            for n in 0..BODIES_PER_VERSION {
                let body = generate::body(message, version, Shape::default(), &mut rng);
                let what = format!("{} v{version} body {n}: {:02x?}", message.name, body.bytes);
                let checked = check(message, version, &body.bytes)
                    .unwrap_or_else(|e| panic!("{what}: the walk refused it: {e}"));
                assert_eq!(checked.body_bytes, body.bytes.len(), "{what}");
                let mut buf = Bytes::from(body.bytes.clone());
                if let Err(e) = (message.decode)(&mut buf, version) {
                    panic!("{what}: kafka-protocol refused it: {e:#}");
                }
                assert_eq!(buf.remaining(), 0, "{what}: bytes left after decode");
                let mut buf = Bytes::from(body.bytes.clone());
                if let Err(e) = (message.round_trip)(&mut buf, version) {
                    panic!("{what}: {e:#}");
                }
            }
        }
    }
}

/// Where the walk refuses a null, `kafka-protocol` refuses the body too:
/// no field that Kafka lets clients send as null is missing its flag.
#[test]
fn nulls_the_walk_refuses_kafka_protocol_refuses_too() {
    eprintln!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED ^ 2);
    let shape = Shape {
        null_anywhere: true,
        null_one_in: 3,
        ..Shape::default()
    };
    let mut nulls = 0;
    for message in every_message() {
        for version in versions(message) {
            for _ in 0..BODIES_PER_VERSION {
                let body = generate::body(message, version, shape, &mut rng);
                match check(message, version, &body.bytes) {
                    Err(SchemaError {
                        reason: Reason::Null,
                        field,
                        ..
                    }) => {
                        nulls += 1;
                        let mut buf = Bytes::from(body.bytes.clone());
                        assert!(
                            (message.decode)(&mut buf, version).is_err(),
                            "{}.{field} v{version}: kafka-protocol takes a null there",
                            message.name
                        );
                    }
                    Err(e) => panic!("{} v{version}: {e}", message.name),
                    Ok(_) => {}
                }
            }
        }
    }
    assert!(nulls > 100, "{nulls}");
}

/// Whatever the walk accepts, `kafka-protocol` decodes without reading
/// past what the walk read (it may refuse more: UTF-8, tags).
#[test]
fn hostile_variants_are_refused_or_decode_within_the_walk() {
    eprintln!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED ^ 1);
    let mut refused = 0usize;
    let mut total = 0usize;
    for message in every_message() {
        for version in versions(message) {
            for _ in 0..4 {
                let body = generate::body(message, version, Shape::default(), &mut rng);
                let mut variants = generate::extreme_variants(&body);
                variants.extend(generate::truncations(&body).into_iter().map(<[u8]>::to_vec));
                for variant in variants {
                    total += 1;
                    let Ok(checked) = check(message, version, &variant) else {
                        refused += 1;
                        continue;
                    };
                    assert!(checked.decoded_bytes < 64 << 20);
                    let mut buf = Bytes::from(variant.clone());
                    if (message.decode)(&mut buf, version).is_ok() {
                        let used = variant.len() - buf.remaining();
                        assert!(used <= checked.body_bytes, "{} v{version}", message.name);
                    }
                }
            }
        }
    }
    eprintln!("{refused} of {total} hostile variants refused by the walk");
    assert!(refused > total / 4);
}

#[test]
fn a_delete_records_count_of_i32_max_is_refused_before_decoding() {
    // The 20-byte request that killed the broker: DeleteRecords v0 whose
    // topic array claims 0x7fffffff elements.
    let body = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
    let message = request(ApiKey::DeleteRecords).unwrap();
    let error = check(message, 0, &body).unwrap_err();
    assert_eq!(error.field, "topics");
    assert_eq!(
        error.reason,
        Reason::CountPastEnd {
            count: 0x7fff_ffff,
            need: 0x7fff_ffff * 6,
            left: 8
        }
    );
}

#[test]
fn compact_counts_and_lengths_are_checked_too() {
    let message = request(ApiKey::Metadata).unwrap();
    // v12 (flexible): topics as a compact array claiming u32::MAX - 1.
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0];
    let error = check(message, 12, &body).unwrap_err();
    assert!(
        matches!(error.reason, Reason::CountPastEnd { .. }),
        "{error}"
    );
    // One topic whose name claims 1000 bytes.
    let body = [
        0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe9, 0x07, b'a',
    ];
    let error = check(message, 12, &body).unwrap_err();
    assert_eq!(error.field, "name");
    assert!(
        matches!(error.reason, Reason::LengthPastEnd { length: 1000, .. }),
        "{error}"
    );
}

#[test]
fn null_where_kafka_allows_it_only() {
    let metadata = request(ApiKey::Metadata).unwrap();
    // Metadata v1 topics = null: every topic.
    let body = [0xff, 0xff, 0xff, 0xff];
    assert!(check(metadata, 1, &body).is_ok());
    let delete_records = request(ApiKey::DeleteRecords).unwrap();
    let error = check(delete_records, 0, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).unwrap_err();
    assert_eq!(error.reason, Reason::Null);
}

#[test]
fn a_known_tagged_field_must_fill_its_declared_size() {
    let fetch = request(ApiKey::Fetch).unwrap();
    let mut rng = Rng::new(SEED);
    let body = generate::body(
        fetch,
        12,
        Shape {
            tagged_one_in: 1_000_000,
            ..Shape::default()
        },
        &mut rng,
    );
    let mut bytes = body.bytes.clone();
    // Replace the final empty tagged section with ClusterId (tag 0) whose
    // declared size (5) exceeds its value (compact "ab": 3 bytes).
    assert_eq!(bytes.pop(), Some(0));
    bytes.extend_from_slice(&[1, 0, 5, 3, b'a', b'b', 0, 0]);
    let error = check(fetch, 12, &bytes).unwrap_err();
    assert_eq!(
        error.reason,
        Reason::TaggedSize {
            tag: 0,
            declared: 5,
            used: 3
        }
    );
}

#[test]
fn golden_client_requests_pass_the_walk() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let frame = std::fs::read(&path).unwrap();
        let decoded = crate::frame::decode_request(Bytes::from(frame.get(4..).unwrap().to_vec()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let message = request(decoded.api_key).unwrap();
        let checked = check(message, decoded.version(), &decoded.body).unwrap();
        assert_eq!(checked.body_bytes, decoded.body.len(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 8);
}
