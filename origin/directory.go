package origin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/golivestream/live/internal/streaminfo"
)

// Directory is where an origin of a fleet says which streams it serves
// and agrees with the others on a stream's epoch (package directory, on
// etcd, wired by internal/app). Two origins fed the same publisher (an
// encoder pushing to both: dual hot ingest) make the same epoch, so that
// their files have the same URLs, and, packaged from the same access
// units, the same bytes: a PoP goes on from one to the other. Declared
// here, by its consumer; its methods are safe for concurrent use.
type Directory interface {
	// AgreeEpoch returns the epoch of stream name for a publisher whose
	// setup is fingerprint: proposed, or the epoch of another origin
	// already serving the same setup. ErrSetupMismatch (wrapped) refuses
	// a setup other than the one being served elsewhere; any other error
	// means the directory cannot be reached.
	AgreeEpoch(ctx context.Context, name, fingerprint, proposed string) (string, error)
	// Serving tells the directory this origin serves epoch of stream name
	// up to segment newest, or, with epoch "", no longer serves it. It
	// must not wait: the directory writes it when it can.
	Serving(name, epoch string, newest uint64)
	// Placement says where this origin stands for stream name, for
	// /api/streams: its ID, zone and role (the Epoch is the origin's to
	// fill in); ok is false when the origin does not serve the stream.
	Placement(name string) (p streaminfo.Placement, ok bool)
}

// ErrSetupMismatch is the error of a publisher whose setup differs from
// the one another origin serves the stream with.
var ErrSetupMismatch = errors.New("another origin serves the stream with another setup")

// agreeTimeout bounds the wait for the directory's agreement on an epoch:
// past it the origin goes on with its own (the directory is down: fail
// static).
const agreeTimeout = 3 * time.Second

// fingerprint sums up the setup a publisher's tracks describe: what must
// match for two origins to make the same files.
func fingerprint(tracks []codecs.Codec) string {
	h := sha256.New()
	for _, c := range tracks {
		switch c := c.(type) {
		case *codecs.H264:
			fmt.Fprintf(h, "h264 %x %x;", c.SPS, c.PPS)
		case *codecs.H265:
			fmt.Fprintf(h, "h265 %x %x %x;", c.VPS, c.SPS, c.PPS)
		case *codecs.MPEG4Audio:
			b, _ := c.Config.Marshal()
			fmt.Fprintf(h, "aac %x;", b)
		default:
			fmt.Fprintf(h, "%T %+v;", c, c)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// agreedEpoch asks the directory for the epoch of a new instance of
// stream name, proposing the one it would have (epoch milliseconds), and
// returns it in milliseconds: its own when there is no directory or the
// directory cannot be reached.
func (s *Server) agreedEpoch(name string, tracks []codecs.Codec, proposed int64) (int64, error) {
	if s.cfg.Directory == nil {
		return proposed, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), agreeTimeout)
	defer cancel()
	epoch, err := s.cfg.Directory.AgreeEpoch(ctx, name, fingerprint(tracks), strconv.FormatInt(proposed, 36))
	switch {
	case errors.Is(err, ErrSetupMismatch):
		return 0, err
	case err != nil:
		s.log.Warn("the directory cannot agree on an epoch; going on with this origin's own", "stream", name, "error", err)
		return proposed, nil
	}
	ms, err := strconv.ParseInt(epoch, 36, 64)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("the directory's epoch %q of %s: not an epoch", epoch, name)
	}
	if ms != proposed {
		s.log.Info("adopting the epoch another origin serves", "stream", name, "epoch", epoch)
	}
	return ms, nil
}
