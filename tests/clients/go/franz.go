package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var franzCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// franzClients: franz-go's default producer (idempotent, acks=all) with each
// codec, a classic group and a KIP-848 group reading it all back with
// commits, and kadm's admin calls.
func franzClients(ctx context.Context, bootstrap string) error {
	admin, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)

	prefix := "go-franz"
	topics := []string{}
	wants := map[string]expected{}
	for _, codec := range codecs {
		topic := prefix + "-" + codec
		topics = append(topics, topic)
		wants[topic] = values(500, topic)
	}
	created, err := adm.CreateTopics(ctx, 3, 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	if err := created.Error(); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}

	for _, codec := range codecs {
		topic := prefix + "-" + codec
		producer, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ProducerBatchCompression(franzCodecs[codec]))
		if err != nil {
			return err
		}
		records := []*kgo.Record{}
		for k, v := range wants[topic] {
			records = append(records, &kgo.Record{Topic: topic, Key: []byte(k), Value: []byte(v)})
		}
		results := producer.ProduceSync(ctx, records...)
		producer.Close()
		if err := results.FirstErr(); err != nil {
			return fmt.Errorf("produce %s: %w", topic, err)
		}
	}

	// A classic group (franz-go's default) over every topic, then a KIP-848
	// group over the same topics.
	for _, group := range []struct {
		name string
		opts []kgo.Opt
	}{
		{prefix + "-classic", nil},
		{prefix + "-848", []kgo.Opt{kgo.ServerSideBalancer()}},
	} {
		if err := franzConsume(ctx, bootstrap, group.name, topics, wants, group.opts...); err != nil {
			return fmt.Errorf("group %s: %w", group.name, err)
		}
		committed, err := adm.FetchOffsets(ctx, group.name)
		if err != nil {
			return fmt.Errorf("fetch offsets of %s: %w", group.name, err)
		}
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("end offsets: %w", err)
		}
		var missing error
		ends.Each(func(end kadm.ListedOffset) {
			c, ok := committed.Lookup(end.Topic, end.Partition)
			if !ok || c.At != end.Offset {
				missing = fmt.Errorf("%s[%d]: committed %v, end %d", end.Topic, end.Partition, c.At, end.Offset)
			}
		})
		if missing != nil {
			return missing
		}
		// DescribeGroups describes classic groups; ConsumerGroupDescribe
		// KIP-848's (as Kafka answers them).
		if group.opts == nil {
			described, err := adm.DescribeGroups(ctx, group.name)
			if err != nil {
				return fmt.Errorf("describe group %s: %w", group.name, err)
			}
			if d, ok := described[group.name]; !ok || d.Err != nil || d.State != "Empty" {
				return fmt.Errorf("describe group %s: %+v", group.name, described)
			}
		} else {
			described, err := adm.DescribeConsumerGroups(ctx, group.name)
			if err != nil {
				return fmt.Errorf("describe consumer group %s: %w", group.name, err)
			}
			if d, ok := described[group.name]; !ok || d.Err != nil {
				return fmt.Errorf("describe consumer group %s: %+v", group.name, described)
			}
		}
	}

	return franzAdmin(ctx, adm, topics)
}

func franzConsume(ctx context.Context, bootstrap, group string, topics []string, wants map[string]expected, opts ...kgo.Opt) error {
	opts = append(opts,
		kgo.SeedBrokers(bootstrap),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	consumer, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer consumer.Close()
	got := map[string]map[string]string{}
	order := map[string]inOrder{}
	total, want := 0, 0
	for _, w := range wants {
		want += len(w)
	}
	for total < want {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("read %d of %d records: %w", total, want, ctx.Err())
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if got[r.Topic] == nil {
				got[r.Topic] = map[string]string{}
				order[r.Topic] = inOrder{}
			}
			got[r.Topic][string(r.Key)] = string(r.Value)
			order[r.Topic].add(r.Partition, r.Offset)
			total++
		})
	}
	for topic, w := range wants {
		if err := check(topic, w, got[topic]); err != nil {
			return err
		}
		if err := order[topic].check(topic); err != nil {
			return err
		}
	}
	if total != want {
		return fmt.Errorf("read %d records, produced %d", total, want)
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// franzAdmin: the admin calls kadm users make first.
func franzAdmin(ctx context.Context, adm *kadm.Client, topics []string) error {
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics {
		if !listed.Has(t) || len(listed[t].Partitions) != 3 {
			return fmt.Errorf("list topics: %s missing or not 3 partitions", t)
		}
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) == 0 {
		return fmt.Errorf("list brokers: %v %v", brokers, err)
	}

	topic := topics[0]
	altered, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("3600000")}}, topic)
	if err != nil {
		return fmt.Errorf("alter configs: %w", err)
	}
	if _, err := altered.On(topic, nil); err != nil {
		return fmt.Errorf("alter configs: %w", err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("describe configs: %w", err)
	}
	rc, err := configs.On(topic, nil)
	if err != nil {
		return fmt.Errorf("describe configs: %w", err)
	}
	found := false
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.MaybeValue() == "3600000" {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("describe configs: retention.ms is not 3600000 after the alter")
	}

	// DeleteRecords up to offset 10 of partition 0; the start offset follows.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	end, _ := ends.Lookup(topic, 0)
	if end.Offset < 10 {
		return fmt.Errorf("%s[0] has %d records, fewer than 10", topic, end.Offset)
	}
	to := kadm.Offsets{}
	to.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10})
	deleted, err := adm.DeleteRecords(ctx, to)
	if err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	if err := deleted.Error(); err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("start offsets: %w", err)
	}
	if s, _ := starts.Lookup(topic, 0); s.Offset != 10 {
		return fmt.Errorf("start offset after DeleteRecords: %d, want 10", s.Offset)
	}

	grown, err := adm.UpdatePartitions(ctx, 4, topic)
	if err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	if err := grown.Error(); err != nil {
		return fmt.Errorf("create partitions: %w", err)
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil || len(groups) < 2 {
		return fmt.Errorf("list groups: %v %v", groups, err)
	}
	// The others stay, for the test to look at how their batches are stored.
	dropped, err := adm.DeleteTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	if err := dropped.Error(); err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	return nil
}

// franzTransactions: a committed and an aborted transaction; a
// read_committed consumer reads the committed records only, a
// read_uncommitted one all of them.
func franzTransactions(ctx context.Context, bootstrap string) error {
	topic := "go-franz-txn"
	producer, err := kgo.NewClient(
		kgo.SeedBrokers(bootstrap),
		kgo.TransactionalID(topic+"-producer"),
		kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return err
	}
	defer producer.Close()
	committed := values(200, topic+"-committed")
	aborted := values(100, topic+"-aborted")
	for _, txn := range []struct {
		records expected
		end     kgo.TransactionEndTry
	}{{committed, kgo.TryCommit}, {aborted, kgo.TryAbort}} {
		if err := producer.BeginTransaction(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for k, v := range txn.records {
			producer.Produce(ctx, &kgo.Record{Key: []byte(k), Value: []byte(v)}, nil)
		}
		if err := producer.Flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if err := producer.EndTransaction(ctx, txn.end); err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
	}
	for _, isolation := range []struct {
		level kgo.IsolationLevel
		want  int
	}{{kgo.ReadCommitted(), len(committed)}, {kgo.ReadUncommitted(), len(committed) + len(aborted)}} {
		consumer, err := kgo.NewClient(
			kgo.SeedBrokers(bootstrap),
			kgo.ConsumeTopics(topic),
			kgo.FetchIsolationLevel(isolation.level),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)
		if err != nil {
			return err
		}
		got := map[string]string{}
		n := 0
		for n < isolation.want && ctx.Err() == nil {
			fetches := consumer.PollFetches(ctx)
			fetches.EachRecord(func(r *kgo.Record) {
				got[string(r.Key)] = string(r.Value)
				n++
			})
		}
		// Anything past what is expected would come within a poll or two.
		pollCtx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		consumer.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) { n++ })
		cancel()
		consumer.Close()
		if n != isolation.want {
			return fmt.Errorf("isolation %v: read %d records, want %d", isolation.level, n, isolation.want)
		}
		if isolation.want == len(committed) {
			if err := check(topic, committed, got); err != nil {
				return err
			}
		}
	}
	return nil
}
