//go:build linux

package pop

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/golivestream/live/internal/fastpath"
)

// bodyFile is a copy of a complete cached body in a memory file
// (memfd_create(2)), from which the fast path sends it with sendfile(2):
// the kernel moves the file's pages into the socket instead of copying
// the body from our heap, which was a third of the CPU of a segment hit.
// The heap copy stays for everything else (ranges, net/http, peers).
type bodyFile struct {
	fd     int
	size   int64
	budget *fileBudget // gets the descriptor back when fd is closed
	// state is twice the number of senders holding fd, plus 1 once the
	// file is dropped: whoever leaves it at 1 closes fd, so that a sender
	// never uses an fd number closed, and maybe reused, under it.
	state atomic.Int64
}

// fileBudget bounds the body files open at once, so that they never take
// the descriptors that connections need: half of the soft limit on open
// files (which Go raises to the hard limit at start).
type fileBudget struct{ left atomic.Int64 }

func newFileBudget() *fileBudget {
	b := &fileBudget{}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil {
		b.left.Store(int64(min(rl.Cur/2, 1<<30)))
	}
	return b
}

// newBodyFile copies body into a new memory file, if b has a descriptor
// to spare.
func newBodyFile(body []byte, b *fileBudget) (*bodyFile, error) {
	if b.left.Add(-1) < 0 {
		b.left.Add(1)
		return nil, errNoDescriptors
	}
	fd, err := unix.MemfdCreate("pop-body", unix.MFD_CLOEXEC)
	if err != nil {
		b.left.Add(1)
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := &bodyFile{fd: fd, size: int64(len(body)), budget: b}
	for off := 0; off < len(body); {
		n, err := unix.Pwrite(fd, body[off:], int64(off))
		if err != nil || n == 0 {
			f.close()
			return nil, fmt.Errorf("write body file: %w", errors.Join(err, errShortWrite))
		}
		off += n
	}
	return f, nil
}

var errNoDescriptors = errors.New("no descriptors to spare for body files")

// close closes fd and gives the descriptor back to the budget.
func (f *bodyFile) close() {
	unix.Close(f.fd)
	f.budget.left.Add(1)
}

var errShortWrite = errors.New("short write")

// acquire reports whether f may be sent from, and holds it until release.
func (f *bodyFile) acquire() bool {
	for {
		s := f.state.Load()
		if s&1 != 0 {
			return false
		}
		if f.state.CompareAndSwap(s, s+2) {
			return true
		}
	}
}

// release lets go of f after acquire.
func (f *bodyFile) release() {
	if f.state.Add(-2) == 1 {
		f.close()
	}
}

// sendTo sends f as the body of the response w, when w can send it from
// a file (the fast path's, fastpath.FileSender): the kernel takes the
// bytes from f's pages. It reports false, having sent nothing, when it
// cannot: f is nil or dropped, or w cannot send it.
func (f *bodyFile) sendTo(w http.ResponseWriter) (int64, bool) {
	if f == nil {
		return 0, false
	}
	fs, ok := w.(fastpath.FileSender)
	if !ok || !f.acquire() {
		return 0, false
	}
	defer f.release()
	return fs.SendFile(f.fd, f.size)
}

// drop closes f once no sender holds it; the object it belonged to has
// left the cache. Pages the kernel still has in flight stay valid: they
// are referenced, not borrowed.
func (f *bodyFile) drop() {
	if f == nil {
		return
	}
	if f.state.Or(1) == 0 {
		f.close()
	}
}
