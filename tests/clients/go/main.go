// Go Kafka clients (franz-go, sarama, segmentio/kafka-go) against a running
// broker, each with its defaults unless a scenario says otherwise: every
// codec produced and read back, groups with commits, admin calls,
// transactions. Run as `goclients SCENARIO BOOTSTRAP`; it exits non-zero,
// saying why, on the first thing that does not hold.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"
)

var scenarios = map[string]func(ctx context.Context, bootstrap string) error{
	"franz":     franzClients,
	"franz-txn": franzTransactions,
	"sarama":    saramaClients,
	"segmentio": segmentioClients,
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goclients SCENARIO BOOTSTRAP")
		os.Exit(2)
	}
	run, ok := scenarios[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "no scenario %q\n", os.Args[1])
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	if err := run(ctx, os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	fmt.Printf("%s: ok\n", os.Args[1])
}

// codecs are the names every client uses for Kafka's codecs.
var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// expected is what a scenario produced to a topic: value by key.
type expected map[string]string

func values(n int, topic string) expected {
	want := expected{}
	for i := 0; i < n; i++ {
		want[fmt.Sprintf("k-%d", i)] = fmt.Sprintf("%s value %d %s", topic, i, pad(i))
	}
	return want
}

// pad makes values compressible and of varied length.
func pad(i int) string {
	b := make([]byte, i%200)
	for j := range b {
		b[j] = 'a' + byte((i+j)%7)
	}
	return string(b)
}

// check compares what was read with what was produced, by key, and that
// each partition's offsets came in order without a gap or a repeat.
func check(topic string, want expected, got map[string]string) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: read %d distinct keys, produced %d", topic, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Errorf("%s: key %s read as %q, produced %q", topic, k, got[k], v)
		}
	}
	return nil
}

// inOrder checks that offsets per partition are strictly increasing.
type inOrder map[int32][]int64

func (o inOrder) add(p int32, off int64) { o[p] = append(o[p], off) }

func (o inOrder) check(topic string) error {
	for p, offs := range o {
		if !sort.SliceIsSorted(offs, func(i, j int) bool { return offs[i] < offs[j] }) {
			return fmt.Errorf("%s[%d]: offsets out of order", topic, p)
		}
		for i := 1; i < len(offs); i++ {
			if offs[i] == offs[i-1] {
				return fmt.Errorf("%s[%d]: offset %d read twice", topic, p, offs[i])
			}
		}
	}
	return nil
}
