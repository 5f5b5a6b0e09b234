// kafkajs transactions: commits and aborts read back by a read_committed
// group consumer (kafkajs' default) and a read_uncommitted one (the
// markers never surface as messages), and offsets sent to a transaction
// committed with it. Usage: node kafkajs_transactions.js BOOTSTRAP
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.argv[2];
const kafka = new Kafka({ clientId: 'kafkajs-txn', brokers: [bootstrap], logLevel: logLevel.WARN });
const TOPIC = 'kjs-txn';

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function readAll(groupId, readUncommitted, expected) {
  const consumer = kafka.consumer({ groupId, readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${groupId}: read ${got.length} of ${expected}`)), 60000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          got.push(message.value.toString());
          if (got.length === expected) {
            clearTimeout(timer);
            // Anything after the expected count would be a marker read as data.
            setTimeout(resolve, 500);
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return got;
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }] });
  await admin.disconnect();

  const producer = kafka.producer({ transactionalId: 'kjs-1', idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const committed = [];
  const everything = [];
  for (let t = 0; t < 6; t++) {
    const messages = [];
    for (let i = 0; i < 9; i++) messages.push({ value: `t${t}-${i}`, partition: i % 3 });
    const txn = await producer.transaction();
    await txn.send({ topic: TOPIC, messages });
    everything.push(...messages.map((m) => m.value));
    if (t % 3 === 1) {
      await txn.abort();
    } else {
      await txn.commit();
      committed.push(...messages.map((m) => m.value));
    }
  }
  // Offsets sent to a transaction are the group's once it commits.
  const txn = await producer.transaction();
  await txn.sendOffsets({
    consumerGroupId: 'kjs-offsets',
    topics: [{ topic: TOPIC, partitions: [{ partition: 0, offset: '5' }] }],
  });
  await txn.commit();
  await producer.disconnect();

  const sorted = (values) => [...values].sort();
  const readCommitted = await readAll('kjs-committed', false, committed.length);
  assert(JSON.stringify(sorted(readCommitted)) === JSON.stringify(sorted(committed)),
    `read_committed: ${readCommitted.length} of ${committed.length}`);
  const readAllOfIt = await readAll('kjs-uncommitted', true, everything.length);
  assert(JSON.stringify(sorted(readAllOfIt)) === JSON.stringify(sorted(everything)),
    `read_uncommitted: ${readAllOfIt.length} of ${everything.length}`);

  const check = kafka.admin();
  await check.connect();
  const offsets = await check.fetchOffsets({ groupId: 'kjs-offsets', topics: [TOPIC] });
  const p0 = offsets[0].partitions.find((p) => p.partition === 0);
  assert(p0 && p0.offset === '5', `offsets sent in the transaction: ${JSON.stringify(offsets)}`);
  await check.disconnect();
  console.log(`kafkajs transactions: ${committed.length} committed, ${everything.length - committed.length} aborted, offsets in a transaction`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
