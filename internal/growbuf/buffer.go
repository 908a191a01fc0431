// Package growbuf is a byte buffer read while it is written: a body
// arriving from upstream at a PoP, a segment being packaged at the origin.
// Any number of readers share prefixes of one array without copying, each
// at its own pace, woken by a channel closed on every change, never by
// polling.
package growbuf

import "sync"

// Buffer is an append-only byte buffer that ends once, complete or failed.
// Bytes once appended never change: an append may move the content to a
// bigger array, but the prefix a reader took stays valid and unchanged in
// the old one. It is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	// data is the content so far; done is set once it is over, err says
	// how (nil: complete). more is closed and replaced whenever data grows
	// or done is set. All guarded by mu.
	data []byte
	done bool
	err  error
	more chan struct{}
}

// New returns an empty Buffer with room for capacity bytes (0 if unknown).
func New(capacity int) *Buffer {
	return &Buffer{data: make([]byte, 0, max(capacity, 0)), more: make(chan struct{})}
}

// Append adds a copy of p and wakes the readers. Once the Buffer is over
// it does nothing.
func (b *Buffer) Append(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.data = append(b.data, p...)
	b.wakeLocked()
}

// Extend makes content the Buffer's content, without copying, and wakes
// the readers: content must begin with the content so far and never
// change (an immutable prefix of a growing array, say). Once the Buffer
// is over it does nothing.
func (b *Buffer) Extend(content []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.data = content[:len(content):len(content)]
	b.wakeLocked()
}

// Finish ends the Buffer: complete when err is nil, else failed with err.
// The first call decides; later ones do nothing.
func (b *Buffer) Finish(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done, b.err = true, err
	close(b.more)
	b.more = nil // nobody waits on an ended Buffer: Next returns no channel
}

func (b *Buffer) wakeLocked() {
	close(b.more)
	b.more = make(chan struct{})
}

// Next returns the bytes after offset off that are there now, and whether
// the Buffer is over (with its error). When nothing is there and the
// Buffer goes on, it returns the channel that announces more; when bytes
// are returned, more is nil if they are the last ones.
func (b *Buffer) Next(off int) (p []byte, over bool, err error, more <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off < len(b.data) {
		if !b.done {
			more = b.more
		}
		return b.data[off:len(b.data):len(b.data)], false, nil, more
	}
	if b.done {
		return nil, true, b.err, nil
	}
	return nil, false, nil, b.more
}

// Bytes returns the whole content once complete, or nil and false.
func (b *Buffer) Bytes() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done || b.err != nil {
		return nil, false
	}
	return b.data[:len(b.data):len(b.data)], true
}

// Over reports whether the Buffer has ended, complete or not.
func (b *Buffer) Over() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}
