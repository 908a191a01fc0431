package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/directory/etcdtest"
)

// TestRevoke revokes a session with the command against a real etcd, as
// an operator would, and reads back what PoPs follow: the key, its
// value and its lease; then unrevokes it.
func TestRevoke(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Config{})
	cli := etcd.Client()
	endpoints := strings.Join(etcd.Endpoints(), ",")
	key := directory.DefaultPrefix + "revoked/u42"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	code, out, errOut := token(t, t0, "revoke", "-etcd", endpoints, "-sid", "u42", "-ttl", "2h", "-reason", "shared on a forum")
	if code != 0 || !strings.HasPrefix(out, "revoked\tu42\nuntil\t") {
		t.Fatalf("revoke: %d %q %q", code, out, errOut)
	}
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("%s: %v %v", key, resp, err)
	}
	var rec directory.Revocation
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Reason != "shared on a forum" || rec.Expires.Sub(rec.Revoked) != 2*time.Hour || time.Since(rec.Revoked) > time.Minute {
		t.Errorf("stored %+v", rec)
	}
	if !strings.Contains(out, rec.Expires.Format(time.RFC3339)) {
		t.Errorf("printed %q, stored expiry %v", out, rec.Expires)
	}
	lease, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || lease.GrantedTTL != 7200 || lease.TTL <= 7000 {
		t.Errorf("lease %+v, %v; want 7200 s", lease, err)
	}

	// The default ttl: a day.
	if code, _, errOut := token(t, t0, "revoke", "-etcd", endpoints, "-sid", "u43"); code != 0 {
		t.Fatalf("revoke u43: %d %q", code, errOut)
	}
	resp, err = cli.Get(ctx, directory.DefaultPrefix+"revoked/u43")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("u43: %v %v", resp, err)
	}
	if lease, err := cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil || lease.GrantedTTL != 24*3600 {
		t.Errorf("default lease %+v, %v; want a day", lease, err)
	}

	if code, out, errOut := token(t, t0, "unrevoke", "-etcd", endpoints, "-sid", "u42"); code != 0 || out != "unrevoked\tu42\n" {
		t.Fatalf("unrevoke: %d %q %q", code, out, errOut)
	}
	if resp, err := cli.Get(ctx, key); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("%s after unrevoke: %v %v", key, resp, err)
	}
	if code, _, errOut := token(t, t0, "unrevoke", "-etcd", endpoints, "-sid", "u42"); code != 1 || !strings.Contains(errOut, "was not revoked") {
		t.Errorf("unrevoke twice: %d %q", code, errOut)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no -etcd", []string{"revoke", "-sid", "u1"}, 2},
		{"no -sid", []string{"revoke", "-etcd", endpoints}, 2},
		{"unrevoke without -sid", []string{"unrevoke", "-etcd", endpoints}, 2},
		{"a ttl under a second", []string{"revoke", "-etcd", endpoints, "-sid", "u1", "-ttl", "0s"}, 1},
		{"a session id too long", []string{"revoke", "-etcd", endpoints, "-sid", strings.Repeat("x", 129)}, 1},
		{"etcd unreachable", []string{"revoke", "-etcd", "http://127.0.0.1:1", "-sid", "u1", "-timeout", "500ms"}, 1},
	} {
		if code, _, errOut := token(t, t0, tc.args...); code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, errOut, tc.code)
		}
	}
}
