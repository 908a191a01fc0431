//go:build !linux

package pop

import (
	"errors"
	"net/http"
)

// bodyFile is, on Linux, a body copied into a memory file for sendfile(2);
// elsewhere there is none, and hits are written from the heap.
type bodyFile struct{ size int64 }

var errNoBodyFile = errors.New("no body files on this system")

// fileBudget bounds, on Linux, the body files open at once.
type fileBudget struct{}

func newFileBudget() *fileBudget { return &fileBudget{} }

func newBodyFile([]byte, *fileBudget) (*bodyFile, error) { return nil, errNoBodyFile }
func (f *bodyFile) drop()                                {}

// sendTo sends, on Linux, f as the body of the response w.
func (f *bodyFile) sendTo(http.ResponseWriter) (int64, bool) { return 0, false }
