#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    shardlog_fuzz::request(kafka_protocol::messages::ApiKey::DescribeLogDirs, data)
});
