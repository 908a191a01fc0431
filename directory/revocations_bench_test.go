package directory

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// BenchmarkRevocationsList measures a list of DefaultMaxSessions
// sessions with ids of 40 bytes: the memory the list holds (MB-held),
// and the time and memory of a change of one session handed to Apply.
func BenchmarkRevocationsList(b *testing.B) {
	r := &Revocations{cfg: RevocationsConfig{MaxSessions: DefaultMaxSessions, Apply: func(RevocationChange) {}}, keys: schema{DefaultPrefix}}
	r.cfg.Logger = slog.New(slog.DiscardHandler)
	kvs := make([]*mvccpb.KeyValue, DefaultMaxSessions)
	for i := range kvs {
		kvs[i] = &mvccpb.KeyValue{Key: fmt.Appendf(nil, "%srevoked/%040d", DefaultPrefix, i)}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := &revocationSink{r: r, ids: map[string]struct{}{}, reset: true}
	for _, kv := range kvs[:len(kvs)-1] {
		s.apply(kv, false)
	}
	s.publish(0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := float64(after.HeapAlloc-before.HeapAlloc) / 1e6
	last := kvs[len(kvs)-1]
	b.ResetTimer()
	b.ReportAllocs()
	for i := range b.N {
		s.apply(last, i%2 == 1) // added, then taken away
		s.publish(int64(i))
	}
	b.ReportMetric(held, "MB-held")
	runtime.KeepAlive(s)
}
