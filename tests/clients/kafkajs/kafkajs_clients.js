// kafkajs (a pure-JavaScript client) against shardlog, with its defaults:
// for every codec, keyed messages produced to a 3-partition topic, read
// back by a consumer group in order per partition with commits; offsets at
// the ends and by time (ListOffsets). Usage: node kafkajs_clients.js BOOTSTRAP
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4 = require('lz4js');
const zstd = require('@mongodb-js/zstd');

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
// LZ4 frames, as Kafka's LZ4 codec writes them (lz4js is pure JavaScript).
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder) => Buffer.from(lz4.compress(encoder.buffer)),
  decompress: async (buffer) => Buffer.from(lz4.decompress(buffer)),
});
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: (encoder) => zstd.compress(encoder.buffer),
  decompress: (buffer) => zstd.decompress(buffer),
});

const bootstrap = process.argv[2];
const COUNT = 300;
const BASE_TS = 1700000000000;
const kafka = new Kafka({ clientId: 'kafkajs-test', brokers: [bootstrap], logLevel: logLevel.WARN });

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function produce(topic, compression) {
  const producer = kafka.producer();
  await producer.connect();
  const sent = {};
  for (let i = 0; i < COUNT; i += 10) {
    const messages = [];
    for (let j = i; j < i + 10; j++) {
      messages.push({
        key: `key-${j % 17}`,
        value: `${topic} message ${j} `.repeat(1 + (j % 5)),
        timestamp: String(BASE_TS + j),
      });
    }
    const results = await producer.send({ topic, compression, messages });
    for (const r of results) assert(r.errorCode === 0, `produce error ${r.errorCode}`);
  }
  await producer.disconnect();
}

async function consumeInGroup(topic) {
  const consumer = kafka.consumer({ groupId: `${topic}-group` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = {};
  let total = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${topic}: read ${total} of ${COUNT}`)), 60000);
    consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          (got[partition] = got[partition] || []).push([Number(message.offset), message.key.toString(), message.value.toString()]);
          total += 1;
          if (total === COUNT) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.commitOffsets(
    Object.entries(got).map(([partition, messages]) => ({
      topic,
      partition: Number(partition),
      offset: String(messages[messages.length - 1][0] + 1),
    })),
  );
  await consumer.disconnect();
  return got;
}

async function check(topic, got) {
  const keys = {};
  for (const [partition, messages] of Object.entries(got)) {
    messages.forEach(([offset, key], index) => {
      assert(offset === index, `${topic} partition ${partition}: offset ${offset} at position ${index}`);
      assert(keys[key] === undefined || keys[key] === partition, `${key} on two partitions`);
      keys[key] = partition;
    });
  }
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  const sum = ends.reduce((n, p) => n + Number(p.high), 0);
  assert(sum === COUNT, `${topic}: end offsets sum to ${sum}`);
  assert(ends.every((p) => Number(p.low) === 0), `${topic}: start offsets ${JSON.stringify(ends)}`);
  const committed = await admin.fetchOffsets({ groupId: `${topic}-group`, topics: [topic] });
  for (const p of committed[0].partitions) {
    const end = ends.find((e) => e.partition === p.partition);
    assert(p.offset === end.high, `${topic} ${p.partition}: committed ${p.offset}, end ${end.high}`);
  }
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, BASE_TS + COUNT / 2);
  assert(byTime.some((p) => Number(p.offset) > 0), `${topic}: offsets by time ${JSON.stringify(byTime)}`);
  await admin.disconnect();
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const codecs = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy, lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD };
  await admin.createTopics({ topics: Object.keys(codecs).map((c) => ({ topic: `kjs-${c}`, numPartitions: 3 })) });
  await admin.disconnect();
  for (const [name, compression] of Object.entries(codecs)) {
    const topic = `kjs-${name}`;
    await produce(topic, compression);
    const got = await consumeInGroup(topic);
    await check(topic, got);
    console.log(`kafkajs ${name}: ${COUNT} messages produced, consumed in a group, committed`);
  }
  console.log('kafkajs: ok');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
