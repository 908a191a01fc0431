//go:build !linux

package fastpath

// fileSend is, on Linux, the writer's state for bodies sent from files.
type fileSend struct{}

// SendFile implements FileSender: there is no sendfile(2) here, and the
// handler writes the body.
func (w *writer) SendFile(int, int64) (int64, bool) { return 0, false }
