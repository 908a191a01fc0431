package directory

import (
	"hash/maphash"
	"log/slog"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

var parseCases = []struct {
	key      string
	kind     keyKind
	name, id string
}{
	{"/golivestream/origins/o-1.eu", keyOrigin, "", "o-1.eu"},
	{"/golivestream/streams/demo/o1", keyStream, "demo", "o1"},
	{"/golivestream/epochs/demo", keyEpoch, "demo", ""},
	{"/golivestream/origins/", keyOther, "", ""},
	{"/golivestream/origins/a/b", keyOther, "", ""},
	{"/golivestream/streams/demo", keyOther, "", ""},
	{"/golivestream/streams/demo/", keyOther, "", ""},
	{"/golivestream/streams/de.mo/o1", keyOther, "", ""},
	{"/golivestream/streams/demo/o1/x", keyOther, "", ""},
	{"/golivestream/epochs/", keyOther, "", ""},
	{"/golivestream/other/x", keyOther, "", ""},
	{"/elsewhere/origins/o1", keyOther, "", ""},
}

func TestSchemaParse(t *testing.T) {
	s := schema{DefaultPrefix}
	for _, c := range parseCases {
		t.Run(c.key, func(t *testing.T) {
			kind, name, id := s.parse(c.key)
			if kind != c.kind || name != c.name || id != c.id {
				t.Errorf("parse = %v, %q, %q; want %v, %q, %q", kind, name, id, c.kind, c.name, c.id)
			}
		})
	}
}

// FuzzSchemaParse checks that every key parse accepts is the one the
// schema spells for what it returns.
func FuzzSchemaParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.key)
	}
	s := schema{DefaultPrefix}
	f.Fuzz(func(t *testing.T, key string) {
		kind, name, id := s.parse(key)
		var spelled string
		switch kind {
		case keyOther:
			return
		case keyOrigin:
			spelled = s.originKey(id)
		case keyStream:
			spelled = s.streamKey(name, id)
		case keyEpoch:
			spelled = s.epochKey(name)
		}
		if spelled != key {
			t.Errorf("parse(%q) = %v, %q, %q, spelled %q", key, kind, name, id, spelled)
		}
	})
}

// Lookups on the request path allocate nothing.
func TestLookupAllocatesNothing(t *testing.T) {
	m := newModel(schema{DefaultPrefix}, slog.New(slog.DiscardHandler), maphash.MakeSeed())
	for _, kv := range []struct{ k, v string }{
		{"/golivestream/origins/a", `{"id":"a","zone":"z1","public_url":"http://a"}`},
		{"/golivestream/origins/b", `{"id":"b","zone":"z2","public_url":"http://b"}`},
		{"/golivestream/streams/s/a", `{"epoch":"e1","role":"primary"}`},
		{"/golivestream/streams/s/b", `{"epoch":"e1","role":"backup"}`},
	} {
		m.apply(&mvccpb.KeyValue{Key: []byte(kv.k), Value: []byte(kv.v)}, false)
	}
	s := m.snapshot(1, emptySnapshot(m.seed))
	allocs := testing.AllocsPerRun(1000, func() {
		p, b, ok := s.Lookup("s")
		if !ok || p.ID != "a" || b.ID != "b" {
			t.Fatalf("lookup: %q, %q, %v", p.ID, b.ID, ok)
		}
		if _, _, ok := s.Lookup("none"); ok {
			t.Fatal("found none")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup", allocs)
	}
}
