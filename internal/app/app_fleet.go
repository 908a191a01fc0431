package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/golivestream/live/directory"
	"github.com/golivestream/live/internal/streaminfo"
	"github.com/golivestream/live/origin"
)

// Fleet makes an origin one of many: it registers in the fleet's stream
// directory (package directory, on etcd), where PoPs and the gslb find
// it, and agrees there with the other origins on its streams' epochs.
type Fleet struct {
	// Client talks to etcd. Required; the App does not close it.
	Client *clientv3.Client
	// ID names the origin in the directory. Required.
	ID string
	// Zone is its failure domain: a stream's primary and backup are put
	// in different zones. Empty means none.
	Zone string
	// PublicURL is the HTTP base URL PoPs fetch from. Empty means
	// http://HOST:PORT of the origin's listener (loopback for an
	// unspecified address).
	PublicURL string
	// RTMPURL is the RTMP base URL the gslb sends publishers to. Empty
	// means rtmp://HOST:PORT/live of the RTMP listener.
	RTMPURL string
}

// newRegistration builds the origin's registration in the directory, with
// the load it reports; the origin's Directory is set from it by New.
func (a *App) newRegistration(f *Fleet, log *slog.Logger) (*directory.Registration, error) {
	if f.Client == nil || f.ID == "" {
		return nil, errors.New("fleet: Client and ID are required")
	}
	public, rtmp := f.PublicURL, f.RTMPURL
	if public == "" {
		public = "http://" + loopbackAddr(a.OriginAddr())
	}
	if rtmp == "" {
		rtmp = "rtmp://" + loopbackAddr(a.RTMPAddr()) + "/live"
	}
	return directory.NewRegistration(directory.RegistrationConfig{
		Client: f.Client, ID: f.ID, Zone: f.Zone, PublicURL: public, RTMPURL: rtmp,
		Load:   a.fleetLoad,
		Logger: log,
	})
}

// fleetLoad is what the origin reports of its load: its live streams and
// their ingest bit rate (the source renditions' recent rate).
func (a *App) fleetLoad() directory.Load {
	var l directory.Load
	for _, st := range a.origin.Streams() {
		if !st.Live {
			continue
		}
		l.Streams++
		for _, r := range st.Renditions {
			l.IngestBPS += float64(r.RecentBitrate)
		}
	}
	if a.transcoder != nil {
		// A ladder job takes most of a core (README: 0.74 of one for a
		// 1080p ladder): a job counts as one.
		l.TranscodeCPU = float64(len(a.transcoder.Status()))
	}
	return l
}

// originDirectory is the directory as the origin sees it
// (origin.Directory): a stream's role is primary for the origin that made
// its epoch, backup for one that adopted it, standby for one that came
// too late to adopt it and serves an epoch of its own.
type originDirectory struct {
	reg *directory.Registration

	mu    sync.Mutex
	setup map[string]agreed // guarded by mu
}

func (d *originDirectory) AgreeEpoch(ctx context.Context, name, fingerprint, proposed string) (string, error) {
	a, err := d.reg.AgreeEpoch(ctx, name, fingerprint, proposed)
	if errors.Is(err, directory.ErrSetupMismatch) {
		return "", fmt.Errorf("%w: %w", origin.ErrSetupMismatch, err)
	}
	if err != nil {
		return "", err
	}
	role := directory.RolePrimary
	switch {
	case a.Adopted:
		role = directory.RoleBackup
	case a.Standby:
		role = directory.RoleStandby
	}
	d.mu.Lock()
	d.setup[name] = agreed{role, fingerprint}
	d.mu.Unlock()
	return a.Epoch, nil
}

// agreed is a stream's role and setup, as the directory agreed them.
type agreed struct {
	role        directory.Role
	fingerprint string
}

func (d *originDirectory) Serving(name, epoch string, newest uint64) {
	if epoch == "" {
		d.reg.RemoveStream(name)
		d.mu.Lock()
		delete(d.setup, name)
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	setup, ok := d.setup[name]
	if !ok {
		setup.role = directory.RolePrimary // agreed when etcd was down: its own epoch
		d.setup[name] = setup
	}
	d.mu.Unlock()
	d.reg.SetStream(name, directory.StreamState{Epoch: epoch, Role: setup.role, NewestSegment: newest, Fingerprint: setup.fingerprint})
}

func (d *originDirectory) Placement(name string) (streaminfo.Placement, bool) {
	d.mu.Lock()
	setup, ok := d.setup[name]
	d.mu.Unlock()
	if !ok {
		return streaminfo.Placement{}, false
	}
	id, zone := d.reg.Origin()
	return streaminfo.Placement{Origin: id, Zone: zone, Role: string(setup.role)}, true
}
