package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
)

var saramaCodecs = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// saramaClients: sarama at its default protocol version (its producer's
// defaults: acks=1, not idempotent) and at the newest it speaks (an
// idempotent producer, acks=all), each producing every codec, reading it
// back in a consumer group with commits, and the cluster admin's calls.
func saramaClients(ctx context.Context, bootstrap string) error {
	for _, version := range []sarama.KafkaVersion{sarama.DefaultVersion, sarama.MaxVersion} {
		if err := saramaAt(ctx, bootstrap, version); err != nil {
			return fmt.Errorf("at version %s: %w", version, err)
		}
	}
	return nil
}

func saramaConfig(version sarama.KafkaVersion) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = "shardlog-sarama-test"
	return cfg
}

func saramaAt(ctx context.Context, bootstrap string, version sarama.KafkaVersion) error {
	newest := version == sarama.MaxVersion
	cfg := saramaConfig(version)
	admin, err := sarama.NewClusterAdmin([]string{bootstrap}, cfg)
	if err != nil {
		return fmt.Errorf("cluster admin: %w", err)
	}
	defer admin.Close()

	prefix := "go-sarama-default"
	if newest {
		prefix = "go-sarama-newest"
	}
	topics := []string{}
	wants := map[string]expected{}
	for _, codec := range codecs {
		topic := prefix + "-" + codec
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
		topics = append(topics, topic)
		wants[topic] = values(400, topic)
	}

	for _, codec := range codecs {
		topic := prefix + "-" + codec
		pcfg := saramaConfig(version)
		pcfg.Producer.Return.Successes = true
		pcfg.Producer.Compression = saramaCodecs[codec]
		if newest {
			pcfg.Producer.Idempotent = true
			pcfg.Producer.RequiredAcks = sarama.WaitForAll
			pcfg.Net.MaxOpenRequests = 1
		}
		producer, err := sarama.NewSyncProducer([]string{bootstrap}, pcfg)
		if err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		msgs := []*sarama.ProducerMessage{}
		for k, v := range wants[topic] {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(v)})
		}
		err = producer.SendMessages(msgs)
		producer.Close()
		if err != nil {
			return fmt.Errorf("produce %s: %w", topic, err)
		}
	}

	group := prefix + "-group"
	if err := saramaConsume(ctx, bootstrap, version, group, topics, wants); err != nil {
		return fmt.Errorf("group %s: %w", group, err)
	}

	// Committed offsets are the ends of the partitions.
	client, err := sarama.NewClient([]string{bootstrap}, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	parts := map[string][]int32{}
	for _, t := range topics {
		parts[t] = []int32{0, 1, 2}
	}
	committed, err := admin.ListConsumerGroupOffsets(group, parts)
	if err != nil {
		return fmt.Errorf("list group offsets: %w", err)
	}
	for _, t := range topics {
		for _, p := range parts[t] {
			end, err := client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return fmt.Errorf("end offset %s[%d]: %w", t, p, err)
			}
			block := committed.GetBlock(t, p)
			if block == nil || block.Err != sarama.ErrNoError || block.Offset != end {
				return fmt.Errorf("%s[%d]: committed %+v, end %d", t, p, block, end)
			}
		}
	}
	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(groups) != 1 || groups[0].Err != sarama.ErrNoError {
		return fmt.Errorf("describe group: %+v %v", groups, err)
	}
	listedGroups, err := admin.ListConsumerGroups()
	if _, ok := listedGroups[group]; err != nil || !ok {
		return fmt.Errorf("list groups: %v %v", listedGroups, err)
	}

	return saramaAdmin(admin, topics)
}

// saramaAdmin: topics listed, configs described and altered, partitions
// added, records deleted, topics deleted.
func saramaAdmin(admin sarama.ClusterAdmin, topics []string) error {
	listed, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics {
		if d, ok := listed[t]; !ok || d.NumPartitions != 3 {
			return fmt.Errorf("list topics: %s missing or not 3 partitions: %+v", t, d)
		}
	}
	brokers, controller, err := admin.DescribeCluster()
	if err != nil || len(brokers) == 0 || controller < 0 {
		return fmt.Errorf("describe cluster: %v %d %v", brokers, controller, err)
	}
	topic := topics[0]
	retention := "7200000"
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &retention}, false); err != nil {
		return fmt.Errorf("alter config: %w", err)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		return fmt.Errorf("describe config: %w", err)
	}
	found := false
	for _, e := range entries {
		if e.Name == "retention.ms" && e.Value == retention {
			found = true
		}
	}
	if !found {
		return errors.New("describe config: retention.ms was not altered")
	}
	if err := admin.CreatePartitions(topic, 4, nil, false); err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	if err := admin.DeleteRecords(topic, map[int32]int64{0: 5}); err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(meta) != 1 || len(meta[0].Partitions) != 4 {
		return fmt.Errorf("describe topics after adding a partition: %+v %v", meta, err)
	}
	// The others stay, for the test to look at how their batches are stored.
	if err := admin.DeleteTopic(topic); err != nil {
		return fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return nil
}

type saramaHandler struct {
	mu     sync.Mutex
	got    map[string]map[string]string
	order  map[string]inOrder
	total  int
	want   int
	done   chan struct{}
	closed bool
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.mu.Lock()
		if h.got[msg.Topic] == nil {
			h.got[msg.Topic] = map[string]string{}
			h.order[msg.Topic] = inOrder{}
		}
		h.got[msg.Topic][string(msg.Key)] = string(msg.Value)
		h.order[msg.Topic].add(msg.Partition, msg.Offset)
		h.total++
		if h.total >= h.want && !h.closed {
			h.closed = true
			close(h.done)
		}
		h.mu.Unlock()
		sess.MarkMessage(msg, "")
	}
	return nil
}

func saramaConsume(ctx context.Context, bootstrap string, version sarama.KafkaVersion, group string, topics []string, wants map[string]expected) error {
	cfg := saramaConfig(version)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	consumer, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
	if err != nil {
		return err
	}
	h := &saramaHandler{got: map[string]map[string]string{}, order: map[string]inOrder{}, done: make(chan struct{})}
	for _, w := range wants {
		h.want += len(w)
	}
	cctx, cancel := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		for cctx.Err() == nil {
			if err := consumer.Consume(cctx, topics, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	var failed error
	select {
	case <-h.done:
	case err := <-consumer.Errors():
		failed = fmt.Errorf("consumer error: %w", err)
	case err := <-consumed:
		failed = fmt.Errorf("consume ended: %v", err)
	case <-ctx.Done():
		failed = fmt.Errorf("read %d of %d records: %w", h.total, h.want, ctx.Err())
	}
	cancel()
	// Close commits what was marked.
	if err := consumer.Close(); err != nil && failed == nil {
		failed = fmt.Errorf("close: %w", err)
	}
	if failed != nil {
		return failed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for topic, w := range wants {
		if err := check(topic, w, h.got[topic]); err != nil {
			return err
		}
		if err := h.order[topic].check(topic); err != nil {
			return err
		}
	}
	if h.total != h.want {
		return fmt.Errorf("read %d records, produced %d", h.total, h.want)
	}
	return nil
}
