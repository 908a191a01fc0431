package ingest

import (
	"io"
	"time"
)

// Read reads from the connection, notes when bytes came, and passes them
// on only if the guard lets them.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.nc.Read(p)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
		c.srv.metrics.bytesIn.Add(float64(n))
		if gerr := c.guard.feed(p[:n]); gerr != nil {
			return 0, gerr
		}
	}
	return n, err
}

// readerSwitch reads from r, which its owner may replace between reads,
// when r holds no bytes read and not returned. Not safe for concurrent
// use.
type readerSwitch struct{ r io.Reader }

func (s *readerSwitch) Read(p []byte) (int, error) { return s.r.Read(p) }
