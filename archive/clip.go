package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golivestream/live/archive/store"
	"github.com/golivestream/live/internal/layout"
)

// ErrEpochGone is returned (wrapped) by PutClip when the clip's epoch is
// not archived, or is being deleted.
var ErrEpochGone = errors.New("epoch not archived")

// Clip is a saved part of an archived epoch. Storing it pins the epoch:
// the Sweeper keeps an epoch that any unexpired clip names, whole,
// whatever its age. Deleting the clip (or its expiry) unpins it.
type Clip struct {
	// ID names the clip: [A-Za-z0-9_-]{1,64}.
	ID string `json:"id"`
	// Stream and Epoch name the epoch the clip is cut from.
	Stream string `json:"stream"`
	Epoch  string `json:"epoch"`
	// Renditions are the renditions of the clip; empty means all.
	Renditions []string `json:"renditions,omitempty"`
	// From and To are the numbers of its first and last segments.
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// Created is when the clip was made.
	Created time.Time `json:"created"`
	// Expires is when the clip may be deleted; zero means never.
	Expires time.Time `json:"expires,omitzero"`
}

// clipKey is the key of a clip's record: one prefix per clip, so that
// DeletePrefix deletes it.
func clipKey(id string) string { return clipsPrefix + id + "/clip.json" }

// validate checks the clip's names and range.
func (c *Clip) validate() error {
	switch {
	case !layout.ValidStream(c.ID):
		return fmt.Errorf("%w: clip id %q", ErrInvalid, c.ID)
	case !layout.ValidStream(c.Stream) || !layout.ValidEpoch(c.Epoch):
		return fmt.Errorf("%w: clip %s: epoch %q of stream %q", ErrInvalid, c.ID, c.Epoch, c.Stream)
	case c.To < c.From:
		return fmt.Errorf("%w: clip %s: segments %d to %d", ErrInvalid, c.ID, c.From, c.To)
	}
	for _, r := range c.Renditions {
		if !layout.ValidRendition(r) {
			return fmt.Errorf("%w: clip %s: rendition %q", ErrInvalid, c.ID, r)
		}
	}
	return nil
}

// PutClip stores c, pinning its epoch, and then checks that the epoch
// is archived and not being deleted; if it is not, it deletes the clip
// again and returns ErrEpochGone. Pinning first and checking after (while
// the Sweeper marks an epoch Deleting first and looks for pins after)
// means that a clip PutClip accepts is never left without its epoch.
func PutClip(ctx context.Context, st store.Store, c Clip) error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.Created.IsZero() {
		c.Created = time.Now().UTC().Truncate(time.Millisecond)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put clip %s: %w", c.ID, err)
	}
	if err := st.Put(ctx, clipKey(c.ID), append(b, '\n')); err != nil {
		return fmt.Errorf("put clip %s: %w", c.ID, err)
	}
	r := Reader{st: st}
	m, err := r.Meta(ctx, c.Stream, c.Epoch)
	switch {
	case err == nil && !m.Deleting:
		return nil
	case err == nil || errors.Is(err, store.ErrNotFound):
		if derr := DeleteClip(ctx, st, c.ID); derr != nil {
			return fmt.Errorf("put clip %s: %w (and deleting it again: %w)", c.ID, ErrEpochGone, derr)
		}
		return fmt.Errorf("put clip %s: %w", c.ID, ErrEpochGone)
	default:
		return fmt.Errorf("put clip %s: check epoch: %w", c.ID, err)
	}
}

// DeleteClip deletes a clip, unpinning its epoch.
func DeleteClip(ctx context.Context, st store.Store, id string) error {
	if !layout.ValidStream(id) {
		return fmt.Errorf("%w: clip id %q", ErrInvalid, id)
	}
	if err := st.DeletePrefix(ctx, clipsPrefix+id+"/"); err != nil {
		return fmt.Errorf("delete clip %s: %w", id, err)
	}
	return nil
}

// Clips returns the stored clips, by ID. Records that do not parse are
// skipped.
func Clips(ctx context.Context, st store.Store) ([]Clip, error) {
	es, err := st.List(ctx, clipsPrefix)
	if err != nil {
		return nil, fmt.Errorf("list clips: %w", err)
	}
	var out []Clip
	for _, e := range es {
		if !e.Dir || !layout.ValidStream(e.Name()) {
			continue
		}
		b, err := st.Get(ctx, clipKey(e.Name()), 0, -1)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since listed
		}
		if err != nil {
			return nil, fmt.Errorf("read clip %s: %w", e.Name(), err)
		}
		var c Clip
		if json.Unmarshal(b, &c) != nil || c.validate() != nil || c.ID != e.Name() {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}
