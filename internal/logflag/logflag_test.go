package logflag

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestLogger(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		err     string   // part of the error, "" for none
		logged  []string // messages that come out of debug, info, warn, error
		jsonOut bool
	}{
		{args: nil, logged: []string{"info", "warn", "error"}},
		{args: []string{"-log-level", "debug"}, logged: []string{"debug", "info", "warn", "error"}},
		{args: []string{"-log-level", "WARN"}, logged: []string{"warn", "error"}},
		{args: []string{"-log-level", "error", "-log-format", "json"}, logged: []string{"error"}, jsonOut: true},
		{args: []string{"-log-format", "json"}, logged: []string{"info", "warn", "error"}, jsonOut: true},
		{args: []string{"-log-level", "loud"}, err: `-log-level "loud"`},
		{args: []string{"-log-format", "xml"}, err: `-log-format "xml"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := Add(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			log, err := f.Logger(&out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Debug("debug", "k", 1)
			log.Info("info", "k", 1)
			log.Warn("warn", "k", 1)
			log.Error("error", "k", 1)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if tc.jsonOut {
					var rec struct {
						Msg string
						K   int
					}
					if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.K != 1 {
						t.Fatalf("not a JSON record with k=1: %q (%v)", line, err)
					}
					got = append(got, rec.Msg)
					continue
				}
				msg, ok := strings.CutPrefix(line[strings.Index(line, " msg=")+1:], "msg=")
				if !ok || !strings.HasSuffix(msg, " k=1") {
					t.Fatalf("not a text record with k=1: %q", line)
				}
				got = append(got, strings.TrimSuffix(msg, " k=1"))
			}
			if strings.Join(got, ",") != strings.Join(tc.logged, ",") {
				t.Errorf("logged %v, want %v", got, tc.logged)
			}
		})
	}
}
