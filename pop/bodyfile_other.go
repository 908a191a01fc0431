//go:build !linux

package pop

import "errors"

// bodyFile is, on Linux, a body copied into a memory file for sendfile(2);
// elsewhere there is none, and hits are written from the heap.
type bodyFile struct{ size int64 }

var errNoBodyFile = errors.New("no body files on this system")

// fileBudget bounds, on Linux, the body files open at once.
type fileBudget struct{}

func newFileBudget() *fileBudget { return &fileBudget{} }

func newBodyFile([]byte, *fileBudget) (*bodyFile, error) { return nil, errNoBodyFile }
func (f *bodyFile) acquire() bool                        { return false }
func (f *bodyFile) release()                             {}
func (f *bodyFile) drop()                                {}

// fileSend is, on Linux, one response sent from a bodyFile.
type fileSend struct {
	head []byte
	f    *bodyFile
	off  int64
	err  error
}

func (s *fileSend) step(uintptr) bool {
	s.err = errNoBodyFile
	return true
}
