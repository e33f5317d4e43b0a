// The compatibility scenario of ../scenario.py with franz-go and its default
// producer settings (idempotent, acks=all): create 3 partitions, produce
// 10,000 keyed messages, two members split and commit, 1,000 more, a new
// member resumes after the commits, describe and delete. Prints one JSON line.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"crypto/tls"
	"crypto/x509"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// base: the seed brokers and the runner's security settings
// (CHRONIK_COMPAT_*, see ../security_env.py).
func base(seeds []string) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	protocol := os.Getenv("CHRONIK_COMPAT_SECURITY")
	if ca := os.Getenv("CHRONIK_COMPAT_CA"); ca != "" && (protocol == "SSL" || protocol == "SASL_SSL") {
		pem, err := os.ReadFile(ca)
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: pool}))
	}
	if protocol == "SASL_SSL" || protocol == "SASL_PLAINTEXT" {
		user, pass := os.Getenv("CHRONIK_COMPAT_USER"), os.Getenv("CHRONIK_COMPAT_PASSWORD")
		var m sasl.Mechanism
		switch os.Getenv("CHRONIK_COMPAT_MECHANISM") {
		case "PLAIN":
			m = plain.Auth{User: user, Pass: pass}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
		default:
			m = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

const (
	first, second, partitions = 10000, 1000, 3
	timeout                   = 90 * time.Second
)

type pos struct {
	p int32
	o int64
}

func produce(seeds []string, topic, prefix string, n int) (map[string]pos, error) {
	cl, err := kgo.NewClient(base(seeds)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s%d", prefix, i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	acked := map[string]pos{}
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			return nil, fmt.Errorf("produce: %w", r.Err)
		}
		acked[string(r.Record.Value)] = pos{r.Record.Partition, r.Record.Offset}
	}
	return acked, nil
}

type member struct {
	cl       *kgo.Client
	mu       sync.Mutex
	assigned map[int32]bool
	// The assignment when consumption stopped (leaving revokes it all).
	final   map[int32]bool
	records []struct {
		pos
		v string
	}
}

// runGroup runs `count` members until `want` distinct values arrived, then
// commits, leaves, and returns the members.
func runGroup(seeds []string, topic, group string, count, want int) ([]*member, error) {
	var members []*member
	seen := map[string]bool{}
	var seenMu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < count; i++ {
		m := &member{assigned: map[int32]bool{}}
		cl, err := kgo.NewClient(append(base(seeds), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				for _, p := range a[topic] {
					m.assigned[p] = true
				}
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(ctx context.Context, c *kgo.Client, r map[string][]int32) {
				m.mu.Lock()
				for _, p := range r[topic] {
					delete(m.assigned, p)
				}
				m.mu.Unlock()
			}))...)
		if err != nil {
			cancel()
			return nil, err
		}
		m.cl = cl
		members = append(members, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				fs.EachRecord(func(r *kgo.Record) {
					m.mu.Lock()
					m.records = append(m.records, struct {
						pos
						v string
					}{pos{r.Partition, r.Offset}, string(r.Value)})
					m.mu.Unlock()
					seenMu.Lock()
					seen[string(r.Value)] = true
					seenMu.Unlock()
				})
			}
		}()
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		seenMu.Lock()
		n := len(seen)
		seenMu.Unlock()
		if n >= want {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	for _, m := range members {
		m.mu.Lock()
		m.final = map[int32]bool{}
		for p := range m.assigned {
			m.final[p] = true
		}
		m.mu.Unlock()
	}
	for _, m := range members {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.cl.CommitUncommittedOffsets(cctx)
		ccancel()
		if err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	for _, m := range members {
		m.cl.Close()
	}
	return members, nil
}

func check(cond bool, format string, args ...any) {
	if !cond {
		panic(fmt.Errorf(format, args...))
	}
}

func scenario(seeds []string, topic, group string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	ctx := context.Background()
	cl, err := kgo.NewClient(base(seeds)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	acked, err := produce(seeds, topic, "v", first)
	if err != nil {
		return err
	}
	members, err := runGroup(seeds, topic, group, 2, first)
	if err != nil {
		return err
	}
	a, b := members[0].final, members[1].final
	check(len(a) > 0 && len(b) > 0 && len(a)+len(b) == partitions, "the two members must split the partitions, got %v %v", a, b)
	for p := range a {
		check(!b[p], "partition %d held by both members", p)
	}
	distinct := map[string]bool{}
	for _, m := range members {
		for _, r := range m.records {
			check(acked[r.v] == r.pos, "%s read at %v, acknowledged at %v", r.v, r.pos, acked[r.v])
			distinct[r.v] = true
		}
	}
	check(len(distinct) == first, "read %d distinct of %d", len(distinct), first)
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return fmt.Errorf("fetch offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	for p := int32(0); p < partitions; p++ {
		c, _ := committed.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		check(c.At == e.Offset, "partition %d committed %d, end %d", p, c.At, e.Offset)
	}
	acked2, err := produce(seeds, topic, "n", second)
	if err != nil {
		return err
	}
	again, err := runGroup(seeds, topic, group, 1, second)
	if err != nil {
		return err
	}
	got := map[string]bool{}
	firstOff := map[int32]int64{}
	for _, r := range again[0].records {
		check(acked2[r.v] == r.pos, "%s read at %v, acknowledged at %v (or an old message re-read)", r.v, r.pos, acked2[r.v])
		got[r.v] = true
		if o, ok := firstOff[r.p]; !ok || r.o < o {
			firstOff[r.p] = r.o
		}
	}
	check(len(got) == second, "the new member read %d distinct of %d new", len(got), second)
	for p, o := range firstOff {
		c, _ := committed.Lookup(topic, p)
		check(o == c.At, "partition %d resumed at %d, committed %d", p, o, c.At)
	}
	td, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	check(len(td[topic].Partitions) == partitions, "describe: %v", td[topic])
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

func main() {
	seeds, topic, group := []string{os.Args[1]}, os.Args[2], os.Args[3]
	version := "?"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				version = d.Version
			}
		}
	}
	res := map[string]any{"client": "franz-go", "version": version, "ok": true, "error": ""}
	if err := scenario(seeds, topic, group); err != nil {
		res["ok"], res["error"] = false, err.Error()
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res["ok"] == false {
		os.Exit(1)
	}
}
