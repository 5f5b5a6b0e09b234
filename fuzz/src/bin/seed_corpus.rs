//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/`): the
//! request frames real clients sent (`net/tests/golden/`, captured from
//! librdkafka and kafka-python), and for every API and version bodies
//! generated from the request tables; record batches from the captured
//! Produce requests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use kafka_protocol::protocol::Decodable;
use net::protocol::schema::generate::{self, Rng, Shape};
use net::protocol::schema::{self, REQUESTS};

fn snake(api_key: ApiKey) -> String {
    let mut out = String::new();
    for (i, c) in format!("{api_key:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = root.join("corpus");
    let golden = root.join("../net/tests/golden");
    let mut captured = 0;
    for entry in std::fs::read_dir(&golden).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let frame = std::fs::read(&path).unwrap();
        let Some(unframed) = frame.get(4..) else { continue };
        write(&corpus.join("frame"), &name, unframed);
        let request = net::frame::decode_request(Bytes::copy_from_slice(unframed)).unwrap();
        let message = schema::request(request.api_key).unwrap();
        let mut data = vec![(request.version() - message.versions.min) as u8];
        data.extend_from_slice(&request.body);
        write(&corpus.join(format!("request_{}", snake(request.api_key))), &name, &data);
        if request.api_key == ApiKey::Produce {
            let mut body = request.body.clone();
            let produce = ProduceRequest::decode(&mut body, request.version()).unwrap();
            let records = produce.topic_data.iter().flat_map(|t| &t.partition_data);
            for (n, records) in records.filter_map(|p| p.records.as_ref()).enumerate() {
                write(&corpus.join("record_batch"), &format!("{name}_{n}"), records);
            }
        }
        captured += 1;
    }
    let mut rng = Rng::new(0x5eed);
    let mut generated = 0;
    for message in REQUESTS {
        let api_key = message.api_key.unwrap();
        for version in message.versions.min..=message.versions.max {
            for n in 0..4 {
                let body = generate::body(message, version, Shape::default(), &mut rng);
                let mut data = vec![(version - message.versions.min) as u8];
                data.extend_from_slice(&body.bytes);
                let name = format!("generated_v{version}_{n}");
                write(&corpus.join(format!("request_{}", snake(api_key))), &name, &data);
                generated += 1;
            }
        }
    }
    println!("{captured} captured and {generated} generated seeds in {}", corpus.display());
}
