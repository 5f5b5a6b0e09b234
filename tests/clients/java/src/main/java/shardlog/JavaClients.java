package shardlog;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java client against shardlog, with its defaults: every check reads
 * back what was acknowledged. Usage: JavaClients BOOTSTRAP SCENARIO[,SCENARIO...],
 * each SCENARIO one of produce-consume, admin, transactions, static-member, streams,
 * compacted and consumer-protocol, run in order in this JVM. Exits
 * non-zero on the first failure. With SHARDLOG_JAVA_CLIENT_PROPERTIES
 * naming a .properties file, every client takes its settings too (the
 * security ones: SSL, SASL_SSL).
 */
public final class JavaClients {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final int PARTITIONS = 3;
    /** Settings every client takes (SHARDLOG_JAVA_CLIENT_PROPERTIES), none by default. */
    private static final Properties COMMON = new Properties();

    private JavaClients() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            throw new IllegalArgumentException("usage: JavaClients BOOTSTRAP SCENARIO[,SCENARIO...] with scenarios "
                    + "produce-consume|admin|transactions|static-member|streams|compacted|consumer-protocol");
        }
        String bootstrap = args[0];
        String common = System.getenv("SHARDLOG_JAVA_CLIENT_PROPERTIES");
        if (common != null) {
            try (var in = java.nio.file.Files.newInputStream(java.nio.file.Path.of(common))) {
                COMMON.load(in);
            }
        }
        // One JVM for every scenario asked for, in order; the first failure ends the run.
        for (String scenario : args[1].split(",")) {
            long started = System.nanoTime();
            try {
                run(bootstrap, scenario);
            } catch (Throwable e) {
                System.out.println("FAILED: " + scenario);
                throw e;
            }
            System.out.printf("ok: %s (%.1f s)%n", scenario, (System.nanoTime() - started) / 1e9);
        }
    }

    static void run(String bootstrap, String scenario) throws Exception {
        switch (scenario) {
            case "produce-consume" -> produceConsume(bootstrap);
            case "admin" -> admin(bootstrap);
            case "transactions" -> transactions(bootstrap);
            case "static-member" -> staticMember(bootstrap);
            case "streams" -> streams(bootstrap);
            case "compacted" -> compacted(bootstrap);
            case "consumer-protocol" -> {
                consumerProtocol(bootstrap);
                consumerProtocolRegexAndStatic(bootstrap);
            }
            default -> throw new IllegalArgumentException("unknown scenario " + scenario);
        }
    }

    static void check(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    static Admin adminClient(String bootstrap) {
        Properties props = new Properties();
        props.putAll(COMMON);
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(props);
    }

    static KafkaProducer<String, String> producer(String bootstrap, Map<String, Object> extra) {
        Properties props = new Properties();
        props.putAll(COMMON);
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.putAll(extra);
        return new KafkaProducer<>(props);
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, Map<String, Object> extra) {
        Properties props = new Properties();
        props.putAll(COMMON);
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.putAll(extra);
        return new KafkaConsumer<>(props);
    }

    /** Acknowledged records by partition, in offset order: offset -> value. */
    static Map<Integer, TreeMap<Long, String>> produce(
            String bootstrap, String topic, int count, Map<String, Object> extra) throws Exception {
        Map<Integer, TreeMap<Long, String>> acked = new HashMap<>();
        try (KafkaProducer<String, String> producer = producer(bootstrap, extra)) {
            List<Future<RecordMetadata>> sends = new ArrayList<>();
            List<String> values = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String value = topic + "-value-" + i + "-" + "x".repeat(i % 200);
                values.add(value);
                sends.add(producer.send(new ProducerRecord<>(topic, "key-" + (i % 17), value)));
            }
            producer.flush();
            for (int i = 0; i < count; i++) {
                RecordMetadata md = sends.get(i).get();
                String previous = acked.computeIfAbsent(md.partition(), p -> new TreeMap<>())
                        .put(md.offset(), values.get(i));
                check(previous == null, topic + ": offset " + md.offset() + " acknowledged twice");
            }
        }
        return acked;
    }

    /** Reads until every acknowledged record was seen; checks each exactly once, in order. */
    static void consumeAll(KafkaConsumer<String, String> consumer, String topic,
            Map<Integer, TreeMap<Long, String>> acked) {
        int expected = acked.values().stream().mapToInt(Map::size).sum();
        Map<Integer, Long> last = new HashMap<>();
        int seen = 0;
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (seen < expected) {
            check(System.nanoTime() < deadline, topic + ": read " + seen + " of " + expected + " in time");
            ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
            for (ConsumerRecord<String, String> r : records) {
                check(r.topic().equals(topic), "a record of " + r.topic());
                Long before = last.put(r.partition(), r.offset());
                check(before == null || r.offset() > before,
                        topic + "/" + r.partition() + ": offset " + r.offset() + " after " + before);
                String want = acked.getOrDefault(r.partition(), new TreeMap<>()).get(r.offset());
                check(r.value().equals(want), topic + "/" + r.partition() + "@" + r.offset()
                        + ": read " + r.value() + ", acknowledged " + want);
                seen++;
            }
        }
        check(seen == expected, topic + ": read " + seen + ", acknowledged " + expected);
    }

    static void createTopics(Admin admin, Collection<String> names, int partitions) throws Exception {
        List<NewTopic> topics = new ArrayList<>();
        for (String name : names) {
            topics.add(new NewTopic(name, partitions, (short) 1));
        }
        admin.createTopics(topics).all().get();
    }

    /**
     * The default producer (idempotent, acks=all) with every codec; consumers
     * in a group with each classic assignor, committing; a second member of
     * the group finds the committed offsets at the end.
     */
    static void produceConsume(String bootstrap) throws Exception {
        String[] codecs = {"none", "gzip", "snappy", "lz4", "zstd"};
        String[] assignors = {
            "org.apache.kafka.clients.consumer.RangeAssignor",
            "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
        };
        List<String> topics = new ArrayList<>();
        for (String codec : codecs) {
            topics.add("java-" + codec);
        }
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, topics, PARTITIONS);
        }
        for (int c = 0; c < codecs.length; c++) {
            String topic = topics.get(c);
            Map<Integer, TreeMap<Long, String>> acked = produce(bootstrap, topic, 3000,
                    Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, codecs[c]));
            check(acked.size() == PARTITIONS, topic + ": records in every partition: " + acked.keySet());
            String group = "java-group-" + codecs[c];
            String assignor = assignors[c % assignors.length];
            Map<String, Object> consumerProps = Map.of(
                    ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor,
                    ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            try (KafkaConsumer<String, String> consumer = consumer(bootstrap, group, consumerProps)) {
                consumer.subscribe(List.of(topic));
                consumeAll(consumer, topic, acked);
                consumer.commitSync();
            }
            try (KafkaConsumer<String, String> again = consumer(bootstrap, group, consumerProps)) {
                Set<TopicPartition> parts = new java.util.HashSet<>();
                for (int p = 0; p < PARTITIONS; p++) {
                    parts.add(new TopicPartition(topic, p));
                }
                Map<TopicPartition, OffsetAndMetadata> committed = again.committed(parts, TIMEOUT);
                Map<TopicPartition, Long> ends = again.endOffsets(parts, TIMEOUT);
                for (TopicPartition tp : parts) {
                    OffsetAndMetadata at = committed.get(tp);
                    check(at != null && at.offset() == ends.get(tp),
                            tp + ": committed " + at + ", end " + ends.get(tp));
                    check(ends.get(tp) == acked.get(tp.partition()).lastKey() + 1,
                            tp + ": end " + ends.get(tp) + " after the last acknowledged offset");
                }
                again.subscribe(List.of(topic));
                ConsumerRecords<String, String> more = again.poll(Duration.ofSeconds(2));
                check(more.isEmpty(), topic + ": " + more.count() + " records past the committed offsets");
            }
        }
    }

    /**
     * AdminClient end to end: topics, configs, partitions, the cluster,
     * offsets (and a consumer's offsetsForTimes and seek), deleted records,
     * groups and their offsets.
     */
    static void admin(String bootstrap) throws Exception {
        String topic = "java-admin";
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, List.of(topic), 2);
            TopicDescription described = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(described.partitions().size() == 2, "2 partitions: " + described);

            var cluster = admin.describeCluster();
            check(cluster.nodes().get().size() == 1, "one broker: " + cluster.nodes().get());
            check(cluster.clusterId().get() != null, "a cluster id");

            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            admin.incrementalAlterConfigs(Map.of(resource, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET))))
                    .all().get();
            ConfigEntry retention = admin.describeConfigs(List.of(resource)).all().get()
                    .get(resource).get("retention.ms");
            check(retention != null && retention.value().equals("3600000"), "retention.ms: " + retention);

            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4))).all().get();
            described = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            check(described.partitions().size() == 4, "4 partitions after createPartitions: " + described);

            // 100 records with increasing timestamps into partition 0.
            long base = System.currentTimeMillis() - 1_000_000;
            try (KafkaProducer<String, String> producer = producer(bootstrap, Map.of())) {
                for (int i = 0; i < 100; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k", "v" + i)).get();
                }
            }
            TopicPartition p0 = new TopicPartition(topic, 0);
            var latest = admin.listOffsets(Map.of(p0, OffsetSpec.latest())).all().get().get(p0);
            check(latest.offset() == 100, "latest offset " + latest.offset());
            var byTime = admin.listOffsets(Map.of(p0, OffsetSpec.forTimestamp(base + 42_000))).all().get().get(p0);
            check(byTime.offset() == 42, "offset for timestamp: " + byTime.offset());
            var maxTs = admin.listOffsets(Map.of(p0, OffsetSpec.maxTimestamp())).all().get().get(p0);
            check(maxTs.offset() == 99 && maxTs.timestamp() == base + 99_000, "max timestamp: " + maxTs);

            // No auto-commit: closing would commit the position (100) over the 95 below.
            try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-admin-group",
                    Map.of(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"))) {
                Map<TopicPartition, OffsetAndTimestamp> times =
                        consumer.offsetsForTimes(Map.of(p0, base + 10_500), TIMEOUT);
                check(times.get(p0).offset() == 11, "offsetsForTimes: " + times.get(p0));
                consumer.assign(List.of(p0));
                consumer.seek(p0, 90);
                List<String> values = new ArrayList<>();
                long deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (values.size() < 10) {
                    check(System.nanoTime() < deadline, "read after seek in time");
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                        values.add(r.value());
                    }
                }
                check(values.get(0).equals("v90") && values.get(9).equals("v99"), "after seek: " + values);
                consumer.commitSync(Map.of(p0, new OffsetAndMetadata(95)));
            }

            var groups = admin.listConsumerGroups().all().get();
            check(groups.stream().map(ConsumerGroupListing::groupId).anyMatch("java-admin-group"::equals),
                    "the group is listed: " + groups);
            var offsets = admin.listConsumerGroupOffsets("java-admin-group").partitionsToOffsetAndMetadata().get();
            check(offsets.get(p0).offset() == 95, "committed offset: " + offsets);
            admin.alterConsumerGroupOffsets("java-admin-group", Map.of(p0, new OffsetAndMetadata(50))).all().get();
            offsets = admin.listConsumerGroupOffsets("java-admin-group").partitionsToOffsetAndMetadata().get();
            check(offsets.get(p0).offset() == 50, "altered offset: " + offsets);
            admin.deleteConsumerGroupOffsets("java-admin-group", Set.of(p0)).all().get();
            offsets = admin.listConsumerGroupOffsets("java-admin-group").partitionsToOffsetAndMetadata().get();
            check(!offsets.containsKey(p0), "deleted offset: " + offsets);
            var description = admin.describeConsumerGroups(List.of("java-admin-group")).all().get()
                    .get("java-admin-group");
            check(description.members().isEmpty(), "no members left: " + description);
            admin.deleteConsumerGroups(List.of("java-admin-group")).all().get();
            check(admin.listConsumerGroups().all().get().stream()
                    .noneMatch(g -> g.groupId().equals("java-admin-group")), "the group is gone");

            admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(30))).all().get();
            var earliest = admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).all().get().get(p0);
            check(earliest.offset() == 30, "earliest after deleteRecords: " + earliest.offset());

            admin.deleteTopics(List.of(topic)).all().get();
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (admin.listTopics().names().get().contains(topic)) {
                check(System.nanoTime() < deadline, "the topic is deleted in time");
                Thread.sleep(100);
            }
        } catch (ExecutionException e) {
            throw new AssertionError("admin call failed", e.getCause());
        }
    }

    /** Every value of a topic, read from the start with the given isolation level. */
    static List<String> readAll(String bootstrap, String topic, String isolation, int expected) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-read-" + isolation,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation,
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"))) {
            List<TopicPartition> parts = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                parts.add(new TopicPartition(topic, p));
            }
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (values.size() < expected) {
                check(System.nanoTime() < deadline,
                        topic + " (" + isolation + "): read " + values.size() + " of " + expected);
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
            }
            // Nothing beyond: one more poll finds no record.
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofSeconds(1))) {
                values.add(r.value());
            }
        }
        return values;
    }

    /**
     * Transactions as the Java client runs them (transaction.version 2 where
     * the broker offers it): committed and aborted transactions across
     * partitions, read by read_committed and read_uncommitted consumers; a
     * read-process-write transaction with sendOffsetsToTransaction; a second
     * producer with the same transactional.id fences the first.
     */
    static void transactions(String bootstrap) throws Exception {
        String input = "java-txn-in";
        String output = "java-txn-out";
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, List.of(input, output), PARTITIONS);
        }
        Map<String, Object> txn = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn-1");
        try (KafkaProducer<String, String> producer = producer(bootstrap, txn)) {
            producer.initTransactions();
            for (int t = 0; t < 6; t++) {
                producer.beginTransaction();
                for (int i = 0; i < 50; i++) {
                    producer.send(new ProducerRecord<>(input, "k" + i, "t" + t + "-" + i));
                }
                if (t % 3 == 2) {
                    // Sent first: abortTransaction drops records still queued.
                    producer.flush();
                    producer.abortTransaction();
                } else {
                    producer.commitTransaction();
                }
            }
        }
        List<String> committed = readAll(bootstrap, input, "read_committed", 200);
        check(committed.size() == 200, "read_committed: " + committed.size() + " of 200");
        check(committed.stream().noneMatch(v -> v.startsWith("t2-") || v.startsWith("t5-")),
                "read_committed saw an aborted record");
        List<String> uncommitted = readAll(bootstrap, input, "read_uncommitted", 300);
        check(uncommitted.size() == 300, "read_uncommitted: " + uncommitted.size() + " of 300");

        // Read-process-write: input -> output, the group's offsets in the transaction.
        String group = "java-rpw";
        Map<String, Object> rpw = Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-rpw-1");
        try (KafkaProducer<String, String> producer = producer(bootstrap, rpw);
                KafkaConsumer<String, String> consumer = consumer(bootstrap, group,
                        Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"))) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            int copied = 0;
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (copied < 200) {
                check(System.nanoTime() < deadline, "read-process-write: " + copied + " of 200");
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                producer.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.key(), r.value().toUpperCase()));
                    next.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    copied++;
                }
                producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                producer.commitTransaction();
            }
        }
        List<String> out = readAll(bootstrap, output, "read_committed", 200);
        check(out.size() == 200 && out.stream().allMatch(v -> v.startsWith("T")), "output: " + out.size());
        // The offsets committed in the transactions: the group's next member
        // finds nothing left to copy (what follows them is aborted data and
        // transaction markers).
        try (KafkaConsumer<String, String> next = consumer(bootstrap, group,
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"))) {
            next.subscribe(List.of(input));
            ConsumerRecords<String, String> more = next.poll(Duration.ofSeconds(3));
            check(more.isEmpty(), "read-process-write: " + more.count() + " records copied twice");
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartition tp = new TopicPartition(input, p);
                OffsetAndMetadata at = next.committed(Set.of(tp), TIMEOUT).get(tp);
                check(at != null && at.offset() > 0, tp + ": committed in a transaction: " + at);
            }
        }
        // Fencing: a new producer with the same id ends the old one's epoch.
        try (KafkaProducer<String, String> old = producer(bootstrap, txn)) {
            old.initTransactions();
            old.beginTransaction();
            old.send(new ProducerRecord<>(input, "k", "fenced")).get();
            try (KafkaProducer<String, String> fresh = producer(bootstrap, txn)) {
                fresh.initTransactions();
                boolean fenced = false;
                try {
                    old.send(new ProducerRecord<>(input, "k", "late")).get();
                    old.commitTransaction();
                } catch (Exception e) {
                    fenced = true;
                }
                check(fenced, "the old producer was fenced");
            }
        } catch (org.apache.kafka.common.errors.ProducerFencedException
                | org.apache.kafka.common.errors.InvalidProducerEpochException e) {
            // close() of a fenced producer may report it again: expected.
        }
        List<String> after = readAll(bootstrap, input, "read_committed", 200);
        check(after.stream().noneMatch(v -> v.equals("fenced") || v.equals("late")),
                "a fenced producer's records are not committed");
    }

    /** A group member and what it read: partition -> offset -> value. */
    static final class Member implements ConsumerRebalanceListener {
        final String name;
        final KafkaConsumer<String, String> consumer;
        final Map<Integer, TreeMap<Long, String>> read = new HashMap<>();
        int revocations;

        Member(String name, KafkaConsumer<String, String> consumer) {
            this.name = name;
            this.consumer = consumer;
        }

        /** Commits where it stands on what it gives up: the next owner goes on from there. */
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            revocations++;
            Map<TopicPartition, OffsetAndMetadata> at = new HashMap<>();
            for (TopicPartition tp : partitions) {
                TreeMap<Long, String> mine = read.get(tp.partition());
                if (mine != null && !mine.isEmpty()) {
                    at.put(tp, new OffsetAndMetadata(mine.lastKey() + 1));
                }
            }
            consumer.commitSync(at);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}

        /** One poll: each record once, in offset order per partition. */
        int poll(String topic, Map<Integer, TreeMap<Long, String>> acked) {
            int count = 0;
            for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                TreeMap<Long, String> mine = read.computeIfAbsent(r.partition(), p -> new TreeMap<>());
                Long last = mine.isEmpty() ? null : mine.lastKey();
                check(last == null || r.offset() > last,
                        name + ": " + topic + "/" + r.partition() + "@" + r.offset() + " after " + last);
                check(r.value().equals(acked.get(r.partition()).get(r.offset())),
                        name + ": " + topic + "/" + r.partition() + "@" + r.offset() + " is not what was acknowledged");
                mine.put(r.offset(), r.value());
                count++;
            }
            return count;
        }
    }

    /**
     * KIP-848 (group.protocol=consumer) with each server-side assignor: one
     * member reads part of a 6-partition topic and commits; a second joins
     * and the partitions are split 3/3 (the first revokes and commits
     * before the second takes them); the admin client describes the group
     * (type consumer, Stable, both members and their assignments) and lists
     * it; the second leaves and the first gets every partition back.
     * Together they read every acknowledged record exactly once, in order,
     * and the committed offsets end at the log ends.
     */
    static void consumerProtocol(String bootstrap) throws Exception {
        String topic = "java-kip848";
        int partitions = 6;
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, List.of(topic), partitions);
        }
        Map<Integer, TreeMap<Long, String>> acked = produce(bootstrap, topic, 6000, Map.of());
        int total = acked.values().stream().mapToInt(Map::size).sum();
        for (String assignor : List.of("uniform", "range")) {
            String group = "java-kip848-" + assignor;
            Map<String, Object> props = Map.of(
                    ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                    ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor,
                    ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false",
                    ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50);
            Member a = new Member("a", consumer(bootstrap, group, props));
            Member b = null;
            try (Admin admin = adminClient(bootstrap)) {
                a.consumer.subscribe(List.of(topic), a);
                long deadline = System.nanoTime() + TIMEOUT.toNanos();
                int readA = 0;
                while (readA < total / 4 || a.consumer.assignment().size() < partitions) {
                    check(System.nanoTime() < deadline, group + ": a alone read " + readA
                            + ", assigned " + a.consumer.assignment());
                    readA += a.poll(topic, acked);
                }
                a.consumer.commitSync();
                b = new Member("b", consumer(bootstrap, group, props));
                b.consumer.subscribe(List.of(topic), b);
                deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (a.consumer.assignment().size() != partitions / 2
                        || b.consumer.assignment().size() != partitions / 2) {
                    check(System.nanoTime() < deadline, group + ": split " + a.consumer.assignment()
                            + " / " + b.consumer.assignment());
                    a.poll(topic, acked);
                    b.poll(topic, acked);
                }
                Set<TopicPartition> both = new java.util.HashSet<>(a.consumer.assignment());
                both.addAll(b.consumer.assignment());
                check(both.size() == partitions, group + ": every partition once: " + both);
                check(a.revocations > 0, group + ": a revoked partitions for b");

                // The coordinator's view catches up at the members' next heartbeats.
                ConsumerGroupDescription described;
                deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (true) {
                    described = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
                    if (described.groupState() == GroupState.STABLE) {
                        break;
                    }
                    check(System.nanoTime() < deadline, group + ": state " + described.groupState());
                    a.poll(topic, acked);
                    b.poll(topic, acked);
                }
                check(described.type() == GroupType.CONSUMER, group + ": type " + described.type());
                check(described.partitionAssignor().equals(assignor),
                        group + ": assignor " + described.partitionAssignor());
                check(described.members().size() == 2, group + ": members " + described.members());
                Set<TopicPartition> describedParts = new java.util.HashSet<>();
                for (MemberDescription m : described.members()) {
                    check(m.assignment().topicPartitions().size() == partitions / 2,
                            group + ": member " + m.consumerId() + " has " + m.assignment().topicPartitions());
                    describedParts.addAll(m.assignment().topicPartitions());
                }
                check(describedParts.equals(both), group + ": described " + describedParts + ", held " + both);
                boolean listed = false;
                for (GroupListing g : admin.listGroups().all().get()) {
                    if (g.groupId().equals(group)) {
                        listed = g.type().orElse(null) == GroupType.CONSUMER;
                    }
                }
                check(listed, group + ": listed as a consumer group");

                // Both read on until everything was read between them.
                deadline = System.nanoTime() + 2 * TIMEOUT.toNanos();
                while (count(a.read) + count(b.read) < total) {
                    check(System.nanoTime() < deadline, group + ": read " + (count(a.read) + count(b.read))
                            + " of " + total);
                    a.poll(topic, acked);
                    b.poll(topic, acked);
                }
                a.consumer.commitSync();
                b.consumer.commitSync();
                Map<Integer, TreeMap<Long, String>> readB = b.read;
                b.consumer.close();
                b = null;
                deadline = System.nanoTime() + TIMEOUT.toNanos();
                while (a.consumer.assignment().size() != partitions) {
                    check(System.nanoTime() < deadline, group + ": after b left, a has " + a.consumer.assignment());
                    check(a.poll(topic, acked) == 0, group + ": records past the committed offsets");
                }
                a.consumer.commitSync();
                // Every acknowledged record once between them.
                for (Map.Entry<Integer, TreeMap<Long, String>> p : acked.entrySet()) {
                    TreeMap<Long, String> ofA = a.read.getOrDefault(p.getKey(), new TreeMap<>());
                    TreeMap<Long, String> ofB = readB.getOrDefault(p.getKey(), new TreeMap<>());
                    TreeMap<Long, String> union = new TreeMap<>(ofA);
                    union.putAll(ofB);
                    check(union.size() == ofA.size() + ofB.size(), group + "/" + p.getKey() + ": read twice");
                    check(union.equals(p.getValue()), group + "/" + p.getKey() + ": read "
                            + union.size() + " of " + p.getValue().size());
                }
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get();
                for (Map.Entry<Integer, TreeMap<Long, String>> p : acked.entrySet()) {
                    OffsetAndMetadata at = committed.get(new TopicPartition(topic, p.getKey()));
                    check(at != null && at.offset() == p.getValue().lastKey() + 1,
                            group + "/" + p.getKey() + ": committed " + at);
                }
            } finally {
                if (b != null) {
                    b.consumer.close();
                }
                a.consumer.close();
            }
        }
    }

    /**
     * KIP-848 beyond the basics: a subscription by regular expression
     * (matched by the broker: the topic that matches, then one created
     * later, read in full), and static members (group.instance.id): one
     * closes (epoch -2, its place kept) and its successor takes over its
     * partitions without the other member revoking anything.
     */
    static void consumerProtocolRegexAndStatic(String bootstrap) throws Exception {
        Map<String, Object> props = Map.of(
                ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        String first = "java-kip848-re-1";
        String later = "java-kip848-re-2";
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, List.of(first), 2);
        }
        Map<String, Map<Integer, TreeMap<Long, String>>> acked = new HashMap<>();
        acked.put(first, produce(bootstrap, first, 500, Map.of()));
        Map<String, Map<Integer, TreeMap<Long, String>>> read = new HashMap<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, "java-kip848-regex", props)) {
            c.subscribe(new SubscriptionPattern("java-kip848-re-.*"));
            readUntil(c, acked, read, first);
            try (Admin admin = adminClient(bootstrap)) {
                createTopics(admin, List.of(later), 3);
            }
            acked.put(later, produce(bootstrap, later, 300, Map.of()));
            readUntil(c, acked, read, later);
            check(c.assignment().size() == 5, "regex: assigned " + c.assignment());
        }

        String topic = "java-kip848";
        String group = "java-kip848-static";
        Map<String, Object> staticA = new HashMap<>(props);
        staticA.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-a");
        Map<String, Object> staticB = new HashMap<>(props);
        staticB.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "static-b");
        Member a = new Member("a", consumer(bootstrap, group, staticA));
        Member b = new Member("b", consumer(bootstrap, group, staticB));
        Member b2 = null;
        try {
            a.consumer.subscribe(List.of(topic), a);
            b.consumer.subscribe(List.of(topic), b);
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (a.consumer.assignment().size() != 3 || b.consumer.assignment().size() != 3) {
                check(System.nanoTime() < deadline, "static: split " + a.consumer.assignment()
                        + " / " + b.consumer.assignment());
                a.consumer.poll(Duration.ofMillis(100));
                b.consumer.poll(Duration.ofMillis(100));
            }
            Set<TopicPartition> aHad = Set.copyOf(a.consumer.assignment());
            Set<TopicPartition> bHad = Set.copyOf(b.consumer.assignment());
            int revocations = a.revocations;
            b.consumer.close();
            b2 = new Member("b2", consumer(bootstrap, group, staticB));
            b2.consumer.subscribe(List.of(topic), b2);
            deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (b2.consumer.assignment().size() != 3) {
                check(System.nanoTime() < deadline, "static: b2 has " + b2.consumer.assignment());
                a.consumer.poll(Duration.ofMillis(100));
                b2.consumer.poll(Duration.ofMillis(100));
            }
            check(b2.consumer.assignment().equals(bHad), "static: b2 took " + b2.consumer.assignment()
                    + ", b had " + bHad);
            for (int i = 0; i < 10; i++) {
                a.consumer.poll(Duration.ofMillis(100));
                b2.consumer.poll(Duration.ofMillis(100));
            }
            check(a.revocations == revocations && a.consumer.assignment().equals(aHad),
                    "static: a kept " + aHad + " without revoking: now " + a.consumer.assignment());
        } finally {
            if (b2 != null) {
                b2.consumer.close();
            }
            a.consumer.close();
        }
    }

    /** Polls until every acknowledged record of `topic` was read: each once, in order, as acknowledged. */
    static void readUntil(KafkaConsumer<String, String> c, Map<String, Map<Integer, TreeMap<Long, String>>> acked,
            Map<String, Map<Integer, TreeMap<Long, String>>> read, String topic) {
        long deadline = System.nanoTime() + 2 * TIMEOUT.toNanos();
        int want = count(acked.get(topic));
        while (count(read.getOrDefault(topic, Map.of())) < want) {
            check(System.nanoTime() < deadline, topic + ": read " + count(read.getOrDefault(topic, Map.of()))
                    + " of " + want + ", assigned " + c.assignment());
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                TreeMap<Long, String> mine = read.computeIfAbsent(r.topic(), t -> new HashMap<>())
                        .computeIfAbsent(r.partition(), p -> new TreeMap<>());
                Long last = mine.isEmpty() ? null : mine.lastKey();
                check(last == null || r.offset() > last, r.topic() + "/" + r.partition() + "@" + r.offset()
                        + " after " + last);
                check(r.value().equals(acked.get(r.topic()).get(r.partition()).get(r.offset())),
                        r.topic() + "/" + r.partition() + "@" + r.offset() + " is not what was acknowledged");
                mine.put(r.offset(), r.value());
            }
        }
        check(read.get(topic).equals(acked.get(topic)), topic + ": read exactly what was acknowledged");
    }

    static int count(Map<Integer, TreeMap<Long, String>> read) {
        return read.values().stream().mapToInt(Map::size).sum();
    }

    /**
     * Static membership with auto-commit: a member that leaves and comes back
     * with the same group.instance.id resumes after what it committed.
     */
    static void staticMember(String bootstrap) throws Exception {
        String topic = "java-static";
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, List.of(topic), PARTITIONS);
        }
        Map<Integer, TreeMap<Long, String>> first = produce(bootstrap, topic, 300, Map.of());
        Map<String, Object> props = Map.of(
                ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "java-static-1",
                ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true",
                ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "100");
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-static-group", props)) {
            consumer.subscribe(List.of(topic));
            consumeAll(consumer, topic, first);
        } // close() commits the position (auto-commit)
        Map<Integer, TreeMap<Long, String>> second = produce(bootstrap, topic, 150, Map.of());
        Map<Integer, TreeMap<Long, String>> onlyNew = new HashMap<>(second);
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-static-group", props)) {
            consumer.subscribe(List.of(topic));
            consumeAll(consumer, topic, onlyNew);
            ConsumerRecords<String, String> more = consumer.poll(Duration.ofSeconds(1));
            check(more.isEmpty(), "the returning member read " + more.count() + " records twice");
        }
        try (Admin admin = adminClient(bootstrap)) {
            var description = admin.describeConsumerGroups(List.of("java-static-group")).all().get()
                    .get("java-static-group");
            check(description.members().stream().allMatch(m -> m.groupInstanceId().orElse("").equals("java-static-1")),
                    "members: " + description.members());
        }
    }

    static final String[] WORDS = {
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
        "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    };

    static org.apache.kafka.streams.KafkaStreams wordCount(String bootstrap, java.nio.file.Path stateDir,
            String input, String output) {
        Properties props = new Properties();
        props.putAll(COMMON);
        props.put(org.apache.kafka.streams.StreamsConfig.APPLICATION_ID_CONFIG, "java-wordcount");
        props.put(org.apache.kafka.streams.StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(org.apache.kafka.streams.StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                org.apache.kafka.streams.StreamsConfig.EXACTLY_ONCE_V2);
        props.put(org.apache.kafka.streams.StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        props.put(org.apache.kafka.streams.StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(org.apache.kafka.streams.StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG,
                org.apache.kafka.common.serialization.Serdes.StringSerde.class);
        props.put(org.apache.kafka.streams.StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG,
                org.apache.kafka.common.serialization.Serdes.StringSerde.class);
        var builder = new org.apache.kafka.streams.StreamsBuilder();
        builder.<String, String>stream(input)
                .flatMapValues(line -> java.util.Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word)
                .count(org.apache.kafka.streams.kstream.Materialized.as("counts"))
                .toStream()
                .mapValues(count -> Long.toString(count))
                .to(output);
        var streams = new org.apache.kafka.streams.KafkaStreams(builder.build(), props);
        streams.start();
        return streams;
    }

    /** Produces lines `from..to` of the word-count input; adds their words to `expected`. */
    static void produceLines(String bootstrap, String input, int from, int to, Map<String, Long> expected)
            throws Exception {
        try (KafkaProducer<String, String> producer = producer(bootstrap, Map.of())) {
            for (int i = from; i < to; i++) {
                StringBuilder line = new StringBuilder();
                for (int w = 0; w < 5; w++) {
                    String word = WORDS[(i * 7 + w * 3) % WORDS.length];
                    expected.merge(word, 1L, Long::sum);
                    line.append(w == 0 ? "" : " ").append(word);
                }
                producer.send(new ProducerRecord<>(input, "line-" + i, line.toString())).get();
            }
        }
    }

    /** Reads the output (read_committed) until every word's latest count is `expected`. */
    static void awaitCounts(String bootstrap, String output, Map<String, Long> expected) {
        Map<String, Long> latest = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-wordcount-check",
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"))) {
            List<TopicPartition> parts = new ArrayList<>();
            for (var info : consumer.partitionsFor(output, TIMEOUT)) {
                parts.add(new TopicPartition(output, info.partition()));
            }
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
            while (!latest.equals(expected)) {
                check(System.nanoTime() < deadline, "word counts: " + latest + ", expected " + expected);
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    long count = Long.parseLong(r.value());
                    Long before = latest.put(r.key(), count);
                    check(before == null || count > before, r.key() + ": count " + count + " after " + before);
                    check(count <= expected.getOrDefault(r.key(), 0L),
                            r.key() + ": counted " + count + ", only " + expected.get(r.key()) + " produced");
                }
            }
        }
    }

    /**
     * Kafka Streams word count with exactly_once_v2 (a state store, its
     * changelog, a repartition topic, transactions): half the input, the
     * application closed and started again, the rest; the counts exact.
     */
    static void streams(String bootstrap) throws Exception {
        String input = "java-streams-in";
        String output = "java-streams-out";
        try (Admin admin = adminClient(bootstrap)) {
            createTopics(admin, List.of(input, output), PARTITIONS);
        }
        java.nio.file.Path stateDir = java.nio.file.Files.createTempDirectory("shardlog-streams");
        try {
            Map<String, Long> expected = new TreeMap<>();
            var app = wordCount(bootstrap, stateDir, input, output);
            try {
                produceLines(bootstrap, input, 0, 200, expected);
                awaitCounts(bootstrap, output, expected);
            } finally {
                app.close(Duration.ofSeconds(30));
            }
            app = wordCount(bootstrap, stateDir, input, output);
            try {
                produceLines(bootstrap, input, 200, 400, expected);
                awaitCounts(bootstrap, output, expected);
            } finally {
                app.close(Duration.ofSeconds(30));
                app.cleanUp();
            }
        } finally {
            // The state directory is the test's: it goes whatever happened.
            try (var paths = java.nio.file.Files.walk(stateDir)) {
                paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * A compacted topic written by the default producer (zstd, small
     * batches), with tombstones, an aborted and a committed transaction,
     * cleaned by the broker (short backoff, 16 KiB segments): read from
     * the beginning by a read_committed consumer until exactly one record
     * per live key is left, each the latest acknowledged, the deleted keys
     * gone, the aborted writes never seen; offsets increasing throughout
     * (the Java client reads the cleaned log's gaps, empty batches and
     * markers).
     */
    static void compacted(String bootstrap) throws Exception {
        String topic = "java-table";
        try (Admin admin = adminClient(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of(
                    "cleanup.policy", "compact",
                    "segment.bytes", "16384",
                    "min.cleanable.dirty.ratio", "0.01",
                    "delete.retention.ms", "1000")))).all().get();
        }
        Map<String, String> latest = new TreeMap<>();
        Map<String, Object> small = Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, "zstd",
                ProducerConfig.BATCH_SIZE_CONFIG, 4096);
        try (KafkaProducer<String, String> producer = producer(bootstrap, small)) {
            for (int update = 0; update < 10; update++) {
                for (int key = 0; key < 300; key++) {
                    producer.send(new ProducerRecord<>(topic, "key-" + key, "v" + update));
                }
            }
            for (int key = 0; key < 300; key++) {
                latest.put("key-" + key, "v9");
            }
            for (int key = 0; key < 30; key++) {
                producer.send(new ProducerRecord<>(topic, "key-" + key, null)).get();
                latest.remove("key-" + key);
            }
        }
        Map<String, Object> txn = new HashMap<>(small);
        txn.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-table-writer");
        try (KafkaProducer<String, String> producer = producer(bootstrap, txn)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int key = 30; key < 60; key++) {
                producer.send(new ProducerRecord<>(topic, "key-" + key, "aborted"));
            }
            producer.flush();
            producer.abortTransaction();
            producer.beginTransaction();
            for (int key = 60; key < 90; key++) {
                producer.send(new ProducerRecord<>(topic, "key-" + key, "committed"));
                latest.put("key-" + key, "committed");
            }
            producer.commitTransaction();
        }
        // Filler with keys of its own seals the segments before it; then one
        // more request rolls the last.
        try (KafkaProducer<String, String> producer = producer(bootstrap, small)) {
            for (int i = 0; i < 400; i++) {
                producer.send(new ProducerRecord<>(topic, "filler-" + i, "f".repeat(200) + i));
            }
            producer.flush();
            producer.send(new ProducerRecord<>(topic, "filler-end", "end")).get();
        }
        TopicPartition p0 = new TopicPartition(topic, 0);
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (true) {
            Map<String, List<String>> read = readTable(bootstrap, p0);
            boolean exact = read.keySet().equals(latest.keySet())
                    && latest.entrySet().stream().allMatch(e -> read.get(e.getKey()).equals(List.of(e.getValue())));
            for (List<String> values : read.values()) {
                check(!values.contains("aborted"), "an aborted write was read: " + values);
            }
            if (exact) {
                return;
            }
            if (System.nanoTime() >= deadline) {
                Set<String> missing = new java.util.TreeSet<>(latest.keySet());
                missing.removeAll(read.keySet());
                Set<String> extra = new java.util.TreeSet<>(read.keySet());
                extra.removeAll(latest.keySet());
                check(false, "not compacted in 30 s: " + read.size() + " keys, "
                        + read.values().stream().mapToInt(List::size).sum() + " records; missing "
                        + missing + "; not expected " + extra);
            }
            Thread.sleep(500);
        }
    }

    /** The table's "key-" records from the beginning to the end, read_committed: key -> values in order. */
    static Map<String, List<String>> readTable(String bootstrap, TopicPartition p0) {
        Map<String, List<String>> read = new TreeMap<>();
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "java-table-reader",
                Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false))) {
            consumer.assign(List.of(p0));
            consumer.seekToBeginning(List.of(p0));
            long end = consumer.endOffsets(List.of(p0)).get(p0);
            long last = -1;
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (consumer.position(p0) < end) {
                check(System.nanoTime() < deadline, "read to " + end + " in time, at " + consumer.position(p0));
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    check(r.offset() > last, "offset " + r.offset() + " after " + last);
                    last = r.offset();
                    if (r.key().startsWith("key-")) {
                        read.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                    }
                }
            }
        }
        return read;
    }

}
