//go:build !linux

package loadtest

import "errors"

// canDiscardRaw says that discardRaw does not work on this system:
// bodies are read into a pooled buffer and dropped.
const canDiscardRaw = false

func (l *lane) discardRaw(int64) (int64, error) { return 0, errors.New("not supported") }

func (l *lane) rawTrunc(uintptr) bool { return true }
