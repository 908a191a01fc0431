// Package testpipeline runs the whole system in-process for the load
// generator's tests: RTMP ingest, packager, origin and a PoP on loopback
// ports. It is for tests only, as net/http/httptest is.
package testpipeline

import (
	"context"
	"log/slog"
	"testing"

	"github.com/golivestream/live/internal/app"
	"github.com/golivestream/live/internal/logtest"
	"github.com/golivestream/live/pop"
)

// Pipeline is an in-process App (ingest, packager, origin, PoP).
type Pipeline struct {
	PoP    string // the PoP's base URL, where players go
	Origin string // the origin's base URL
	RTMP   string // where to publish: rtmp://127.0.0.1:port/live/
	// PublishKey is the key publishers must give ({name}?key=KEY).
	PublishKey string
}

// publishKey is every pipeline's: the load generator's broadcasters
// must give it, as they would to a server set up with one.
const publishKey = "loadtest-key"

// Start runs an App on 127.0.0.1:0 until the test ends, its warnings in
// the test's log.
func Start(t testing.TB) *Pipeline {
	t.Helper()
	app, err := app.New(app.Config{
		RTMPAddr:   "127.0.0.1:0",
		HTTPAddr:   "127.0.0.1:0",
		PoP:        &pop.Config{},
		PublishKey: publishKey,
		Logger:     logtest.Logger(t, slog.LevelWarn),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("app.Run: %v", err)
		}
	})
	return &Pipeline{
		PoP:        "http://" + app.HTTPAddr().String(),
		Origin:     "http://" + app.OriginAddr().String(),
		RTMP:       "rtmp://" + app.RTMPAddr().String() + "/live/",
		PublishKey: publishKey,
	}
}
