package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/protection"
)

// kidOf returns a KID made of b.
func kidOf(b byte) protection.KID {
	var k protection.KID
	for i := range k {
		k[i] = b
	}
	return k
}

// keysOf returns the numbers and KIDs of enc's keys, for comparisons.
func keysOf(enc *Encryption) string {
	if enc == nil {
		return "clear"
	}
	var out []string
	for _, k := range enc.Keys {
		out = append(out, fmt.Sprintf("%d:%x:%d", k.Number, k.KID[0], len(k.Systems)))
	}
	return enc.Scheme + " " + enc.KeyPeriod.String() + "/" + enc.SegmentDuration.String() + " " + strings.Join(out, ",")
}

// TestEncryptionRecord: an encrypted epoch's record names its key period
// rule and the key of each period as it is added, a repeated period
// keeping its first key; an epoch begun again (a restarted origin) keeps
// the keys its record held. Both stores.
func TestEncryptionRecord(t *testing.T) {
	for _, sc := range stores {
		t.Run(sc.name, func(t *testing.T) {
			st := sc.new(t)
			w, err := NewWriter(WriterConfig{Store: st, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			runWriter(t, w)
			f := makeEpoch("enc", "m1abd", 6, epochStart)
			ep := f.write(t, w, time.Time{})
			ep.AddKey(PeriodKey{Number: 9, KID: kidOf(9)}) // not encrypted yet: nothing
			ep.Encrypted(Encryption{Scheme: "cbcs", KeyPeriod: 2 * time.Second, SegmentDuration: time.Second,
				Keys: []PeriodKey{{Number: 0, KID: kidOf(0xa0)}}})
			ep.AddKey(PeriodKey{Number: 2, KID: kidOf(0xa2)})
			ep.AddKey(PeriodKey{Number: 1, KID: kidOf(0xa1), Systems: []protection.System{{ID: protection.SystemWidevine, PSSH: []byte{1, 2}}}})
			ep.AddKey(PeriodKey{Number: 1, KID: kidOf(0xff)}) // recorded already
			flush(t, w)
			f.check(t, st, time.Time{})
			r, _ := NewReader(ReaderConfig{Store: st})
			m, err := r.Meta(t.Context(), f.stream, f.epoch)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := keysOf(m.Encryption), "cbcs 2s/1s 0:a0:0,1:a1:1,2:a2:0"; got != want {
				t.Errorf("record: %s, want %s", got, want)
			}

			// Another process takes the epoch up again: its first key is
			// period 0's, then the period it is in. Its Begin writes the
			// record before it says the epoch is encrypted (flushed
			// here, as a fast writer does): that write keeps the keys.
			w2, err := NewWriter(WriterConfig{Store: st, Logger: discard})
			if err != nil {
				t.Fatal(err)
			}
			runWriter(t, w2)
			ep2, err := w2.Begin(f.stream, f.epoch, f.start)
			if err != nil {
				t.Fatal(err)
			}
			flush(t, w2)
			if m, err := r.Meta(t.Context(), f.stream, f.epoch); err != nil || keysOf(m.Encryption) != "cbcs 2s/1s 0:a0:0,1:a1:1,2:a2:0" {
				t.Errorf("record after Begin again: %+v, %v; want the keys kept", m.Encryption, err)
			}
			ep2.Encrypted(Encryption{Scheme: "cbcs", KeyPeriod: 2 * time.Second, SegmentDuration: time.Second,
				Keys: []PeriodKey{{Number: 0, KID: kidOf(0xa0)}}})
			ep2.AddKey(PeriodKey{Number: 7, KID: kidOf(0xa7)})
			ep2.End(epochStart.Add(time.Minute))
			flush(t, w2)
			m, err = r.Meta(t.Context(), f.stream, f.epoch)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := keysOf(m.Encryption), "cbcs 2s/1s 0:a0:0,1:a1:1,2:a2:0,7:a7:0"; got != want || !m.Ended {
				t.Errorf("begun again: %s (ended %v), want %s", got, m.Ended, want)
			}
		})
	}
}

// metaCases are epoch records, valid and not; they seed FuzzEpochMeta.
var metaCases = []struct {
	name, json string
	want       string // keysOf the record's Encryption; "" when it must not parse
}{
	{"clear, written before encryption was recorded", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false}`, "clear"},
	{"encrypted", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,
		"encryption":{"scheme":"cbcs","keyPeriod":"1h0m0s","segmentDuration":"1s","keys":[{"number":1,"kid":"a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1"},{"number":0,"kid":"a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"},{"number":1,"kid":"ffffffffffffffffffffffffffffffff"}]}}`,
		"cbcs 1h0m0s/1s 0:a0:0,1:a1:0"},
	{"one key", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,
		"encryption":{"scheme":"cbcs","keyPeriod":"0s","segmentDuration":"2s","keys":[{"number":0,"kid":"a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0","systems":[{"id":"edef8ba9-79d6-4ace-a3c8-27dcd51d21ed","pssh":"AAAA"}]}]}}`,
		"cbcs 0s/2s 0:a0:1"},
	{"bad KID", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,
		"encryption":{"scheme":"cbcs","keyPeriod":"1s","segmentDuration":"1s","keys":[{"number":0,"kid":"a0"}]}}`, ""},
	{"negative key period", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,
		"encryption":{"scheme":"cbcs","keyPeriod":"-1s","segmentDuration":"1s","keys":[]}}`, ""},
	{"no segment duration", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,
		"encryption":{"scheme":"cbcs","keyPeriod":"1s","segmentDuration":"0s","keys":[]}}`, ""},
	{"no scheme", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,
		"encryption":{"keyPeriod":"1s","segmentDuration":"1s"}}`, ""},
	{"torn", `{"stream":"s","epoch":"m1","start":"2026-12-02T06:44:00.000Z","renditions":[],"ended":false,"encryption":{"scheme":"cb`, ""},
}

// TestEpochMetaJSON: records with and without encryption parse, their
// keys in order, and write back to themselves; bad ones are refused
// with ErrInvalid.
func TestEpochMetaJSON(t *testing.T) {
	for _, tc := range metaCases {
		t.Run(tc.name, func(t *testing.T) {
			var m EpochMeta
			err := json.Unmarshal([]byte(tc.json), &m)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", m)
				}
				if !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), "unexpected end") {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := keysOf(m.Encryption); got != tc.want {
				t.Errorf("encryption %s, want %s", got, tc.want)
			}
			assertMetaRoundTrip(t, m)
		})
	}
}

// assertMetaRoundTrip checks that m, written and parsed again, is m.
func assertMetaRoundTrip(t *testing.T, m EpochMeta) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back EpochMeta
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s does not parse again: %v", b, err)
	}
	if keysOf(back.Encryption) != keysOf(m.Encryption) {
		t.Errorf("round trip gives keys %s, want %s", keysOf(back.Encryption), keysOf(m.Encryption))
	}
	b2, _ := json.Marshal(back)
	if string(b2) != string(b) {
		t.Errorf("written again differs:\n%s\n%s", b2, b)
	}
}

// FuzzEpochMeta checks that no record makes the parser panic, and that
// every record it accepts writes back to one that parses the same.
func FuzzEpochMeta(f *testing.F) {
	for _, tc := range metaCases {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m EpochMeta
		if json.Unmarshal(b, &m) != nil {
			return
		}
		assertMetaRoundTrip(t, m)
	})
}
