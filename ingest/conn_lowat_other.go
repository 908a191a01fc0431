//go:build !linux

package ingest

import "net"

// setRcvLowat does nothing where SO_RCVLOWAT is not known to reduce wakeups.
func setRcvLowat(net.Conn, int) {}
