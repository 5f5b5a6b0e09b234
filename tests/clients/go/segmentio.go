package main

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

var segmentioCodecs = map[string]kafka.Compression{
	"none":   0,
	"gzip":   kafka.Gzip,
	"snappy": kafka.Snappy,
	"lz4":    kafka.Lz4,
	"zstd":   kafka.Zstd,
}

// segmentioClients: segmentio/kafka-go's Writer (its default acks=0 on the
// uncompressed topic, acks=all on the others) with every codec, its Reader
// in a group with commits, a partition Reader from an offset looked up by
// time, and its Client's admin calls.
func segmentioClients(ctx context.Context, bootstrap string) error {
	client := &kafka.Client{Addr: kafka.TCP(bootstrap), Timeout: 30 * time.Second}
	prefix := "go-segmentio"
	topics := []string{}
	wants := map[string]expected{}
	configs := []kafka.TopicConfig{}
	for _, codec := range codecs {
		topic := prefix + "-" + codec
		topics = append(topics, topic)
		wants[topic] = values(300, topic)
		configs = append(configs, kafka.TopicConfig{Topic: topic, NumPartitions: 3, ReplicationFactor: 1})
	}
	created, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: configs})
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for t, err := range created.Errors {
		if err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}

	before := time.Now().Add(-time.Second)
	for i, codec := range codecs {
		topic := prefix + "-" + codec
		writer := &kafka.Writer{
			Addr:        kafka.TCP(bootstrap),
			Topic:       topic,
			Compression: segmentioCodecs[codec],
			Balancer:    &kafka.Hash{},
		}
		if i > 0 {
			writer.RequiredAcks = kafka.RequireAll
		}
		msgs := []kafka.Message{}
		for k, v := range wants[topic] {
			msgs = append(msgs, kafka.Message{Key: []byte(k), Value: []byte(v)})
		}
		err := writer.WriteMessages(ctx, msgs...)
		if cerr := writer.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", topic, err)
		}
	}

	group := prefix + "-group"
	for _, topic := range topics {
		if err := segmentioGroupRead(ctx, bootstrap, group, topic, wants[topic]); err != nil {
			return fmt.Errorf("group %s on %s: %w", group, topic, err)
		}
	}

	// The committed offsets are the ends of the partitions.
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	fetchReq := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for _, t := range topics {
		req.Topics[t] = []kafka.OffsetRequest{kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2), kafka.TimeOffsetOf(0, before)}
		fetchReq.Topics[t] = []int{0, 1, 2}
	}
	listed, err := client.ListOffsets(ctx, req)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	committed, err := client.OffsetFetch(ctx, fetchReq)
	if err != nil || committed.Error != nil {
		return fmt.Errorf("offset fetch: %v %v", err, committed)
	}
	for _, t := range topics {
		ends := map[int]int64{}
		for _, p := range listed.Topics[t] {
			if p.Error != nil {
				return fmt.Errorf("list offsets %s[%d]: %w", t, p.Partition, p.Error)
			}
			ends[p.Partition] = p.LastOffset
		}
		for _, c := range committed.Topics[t] {
			if c.Error != nil || c.CommittedOffset != ends[c.Partition] {
				return fmt.Errorf("%s[%d]: committed %d (%v), end %d", t, c.Partition, c.CommittedOffset, c.Error, ends[c.Partition])
			}
		}
		if len(committed.Topics[t]) != 3 {
			return fmt.Errorf("%s: %d partitions committed", t, len(committed.Topics[t]))
		}
	}

	// A partition reader from the first offset at or after a time.
	if err := segmentioPartitionRead(ctx, bootstrap, topics[1], before); err != nil {
		return err
	}
	if err := segmentioConn(ctx, bootstrap, prefix+"-conn"); err != nil {
		return fmt.Errorf("conn: %w", err)
	}
	return segmentioAdmin(ctx, client, group, topics)
}

// segmentioConn: the low-level Conn of kafka-go's README, on a topic it
// creates: messages written to the leader (each codec), read back as a
// batch, offsets looked up at both ends and by time, partitions listed.
func segmentioConn(ctx context.Context, bootstrap, topic string) error {
	conn, err := kafka.Dial("tcp", bootstrap)
	if err != nil {
		return err
	}
	err = conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1})
	conn.Close()
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	leader, err := kafka.DialLeader(ctx, "tcp", bootstrap, topic, 0)
	if err != nil {
		return fmt.Errorf("dial leader: %w", err)
	}
	defer leader.Close()
	if err := leader.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	want := []string{}
	for _, codec := range codecs {
		msgs := []kafka.Message{}
		for i := 0; i < 20; i++ {
			v := fmt.Sprintf("%s %s %d %s", topic, codec, i, pad(i*7))
			want = append(want, v)
			msgs = append(msgs, kafka.Message{Value: []byte(v)})
		}
		if _, err := leader.WriteCompressedMessages(segmentioCodecs[codec].Codec(), msgs...); err != nil {
			return fmt.Errorf("write %s: %w", codec, err)
		}
	}
	first, last, err := leader.ReadOffsets()
	if err != nil || first != 0 || last != int64(len(want)) {
		return fmt.Errorf("read offsets: %d..%d, %v; want 0..%d", first, last, err, len(want))
	}
	if _, err := leader.Seek(0, kafka.SeekAbsolute); err != nil {
		return fmt.Errorf("seek: %w", err)
	}
	batch := leader.ReadBatch(1, 10<<20)
	got := []string{}
	for len(got) < len(want) {
		msg, err := batch.ReadMessage()
		if err != nil {
			break
		}
		if msg.Offset != int64(len(got)) {
			return fmt.Errorf("message %d read at offset %d", len(got), msg.Offset)
		}
		got = append(got, string(msg.Value))
	}
	if err := batch.Close(); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("read %d messages in a batch, wrote %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("message %d read as %q, written %q", i, got[i], want[i])
		}
	}
	partitions, err := leader.ReadPartitions(topic)
	if err != nil || len(partitions) != 1 || partitions[0].Leader.Port == 0 {
		return fmt.Errorf("read partitions: %+v %v", partitions, err)
	}
	return nil
}

func segmentioGroupRead(ctx context.Context, bootstrap, group, topic string, want expected) error {
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     []string{bootstrap},
		GroupID:     group,
		Topic:       topic,
		StartOffset: kafka.FirstOffset,
		MaxWait:     500 * time.Millisecond,
	})
	defer reader.Close()
	got := map[string]string{}
	order := inOrder{}
	for n := 0; n < len(want); n++ {
		msg, err := reader.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("after %d messages: %w", n, err)
		}
		got[string(msg.Key)] = string(msg.Value)
		order.add(int32(msg.Partition), msg.Offset)
		if err := reader.CommitMessages(ctx, msg); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	if err := check(topic, want, got); err != nil {
		return err
	}
	return order.check(topic)
}

func segmentioPartitionRead(ctx context.Context, bootstrap, topic string, since time.Time) error {
	for p := 0; p < 3; p++ {
		reader := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: p, MaxWait: 500 * time.Millisecond})
		if err := reader.SetOffsetAt(ctx, since); err != nil {
			reader.Close()
			return fmt.Errorf("set offset by time on %s[%d]: %w", topic, p, err)
		}
		msg, err := reader.ReadMessage(ctx)
		reader.Close()
		if err != nil {
			return fmt.Errorf("read %s[%d] from a time: %w", topic, p, err)
		}
		if msg.Offset != 0 {
			return fmt.Errorf("%s[%d]: read from offset %d by time, want 0", topic, p, msg.Offset)
		}
	}
	return nil
}

func segmentioAdmin(ctx context.Context, client *kafka.Client, group string, topics []string) error {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, t := range meta.Topics {
		if t.Error != nil || len(t.Partitions) != 3 {
			return fmt.Errorf("metadata of %s: %v, %d partitions", t.Name, t.Error, len(t.Partitions))
		}
	}
	described, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topics[0], ConfigNames: []string{"cleanup.policy"},
	}}})
	if err != nil || len(described.Resources) != 1 || described.Resources[0].Error != nil {
		return fmt.Errorf("describe configs: %v %+v", err, described)
	}
	entries := described.Resources[0].ConfigEntries
	if len(entries) != 1 || entries[0].ConfigValue != "delete" {
		return fmt.Errorf("describe configs: cleanup.policy %+v", entries)
	}
	groups, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(groups.Groups) != 1 || groups.Groups[0].Error != nil {
		return fmt.Errorf("describe groups: %v %+v", err, groups)
	}
	listedGroups, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil || listedGroups.Error != nil {
		return fmt.Errorf("list groups: %v %+v", err, listedGroups)
	}
	// The others stay, for the test to look at how their batches are stored.
	deleted, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics[:1]})
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	for t, err := range deleted.Errors {
		if err != nil {
			return fmt.Errorf("delete topic %s: %w", t, err)
		}
	}
	return nil
}
