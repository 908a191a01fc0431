package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golivestream/live/access"
	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/directory/etcdtest"
	"github.com/golivestream/live/internal/layout"
	"github.com/golivestream/live/internal/proctest"
)

// TestRevocationsThroughEtcd runs a real pop process with -etcd,
// -token-keys and -revoked in front of an origin whose stream needs a
// token: a session revoked in etcd is denied at once (403, revoked)
// while another session plays on, and admitted again once unrevoked;
// the file's sessions are denied too; with etcd stopped, the last list
// stays in force; a pop started anew denies what etcd lists before it
// serves its first request.
func TestRevocationsThroughEtcd(t *testing.T) {
	bin := proctest.Build(t, t.TempDir(), ".")
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(layout.AccessHeader, "token")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write([]byte("media"))
	}))
	defer origin.Close()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	pem, err := access.MarshalPublicKey(pub, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "k1.pub"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	revokedFile := filepath.Join(t.TempDir(), "revoked")
	if err := os.WriteFile(revokedFile, []byte("filed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, sid := range []string{"a", "b", "c", "early", "filed"} {
		if tokens[sid], err = access.Issue(priv, "k1", access.Claims{Stream: "priv", Session: sid, Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	revoke := func(sid string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := directory.Revoke(ctx, cli, "", sid, time.Hour, "test"); err != nil {
			t.Fatal(err)
		}
	}
	unrevoke := func(sid string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ok, err := directory.Unrevoke(ctx, cli, "", sid); !ok || err != nil {
			t.Fatalf("unrevoke %s: %v %v", sid, ok, err)
		}
	}
	startPoP := func() (*proctest.Proc, string) {
		t.Helper()
		return startProcess(t, bin, "-http", "127.0.0.1:0", "-origin", origin.URL, "-token-keys", keys,
			"-revoked", revokedFile, "-etcd", strings.Join(etcd.Endpoints(), ","))
	}
	// check asks the PoP for a segment with the token of each session:
	// those revoked get 403 revoked, the others 200.
	const seg = "/live/priv/e1/v0/1.m4s"
	check := func(when, addr string, revoked map[string]bool) {
		t.Helper()
		for sid, isRevoked := range revoked {
			resp, err := http.Get("http://" + addr + "/t/" + tokens[sid] + seg)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			code, reason := resp.StatusCode, resp.Header.Get("X-Access-Denied")
			if isRevoked && (code != 403 || reason != "revoked") || !isRevoked && code != 200 {
				t.Errorf("%s: session %s: %d %q, want revoked %v", when, sid, code, reason, isRevoked)
			}
		}
	}

	revoke("early") // before the PoP starts
	p, addr := startPoP()
	// The whole list, applied before the PoP serves: logged already, and
	// not to be taken below for the change that follows a revoke.
	p.Await(t, "revocations applied")
	check("started", addr, map[string]bool{"a": false, "b": false, "early": true, "filed": true})

	revoke("a")
	p.Await(t, "revocations applied")
	check("a revoked", addr, map[string]bool{"a": true, "b": false, "early": true, "filed": true})
	unrevoke("a")
	p.Await(t, "revocations applied")
	check("a unrevoked", addr, map[string]bool{"a": false, "b": false, "early": true})

	revoke("b")
	p.Await(t, "revocations applied")
	etcd.Stop(0)
	check("etcd stopping", addr, map[string]bool{"a": false, "b": true, "early": true, "filed": true})
	// Stopped, etcd says nothing: the PoP goes stale when it has not
	// heard from it for 15 s (3 progress intervals of 5 s).
	p.AwaitWithin(t, "revocations: etcd unreachable; the last list stays in force", time.Minute)
	check("etcd stopped", addr, map[string]bool{"a": false, "b": true, "early": true, "filed": true})
	etcd.StartAgain(0)
	p.AwaitWithin(t, "revocations: current again", 2*time.Minute)
	check("etcd back", addr, map[string]bool{"a": false, "b": true, "early": true, "filed": true})

	// While no PoP runs, b is unrevoked and c revoked: a PoP started
	// anew reads the whole list before it serves.
	p.Cmd.Process.Kill()
	p.Wait()
	unrevoke("b")
	revoke("c")
	_, addr = startPoP()
	check("a new PoP", addr, map[string]bool{"a": false, "b": false, "c": true, "early": true, "filed": true})
}
