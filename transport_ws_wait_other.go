//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package phx

import (
	"errors"
	"net"
	"syscall"
)

// waitableSocket returns nil: on this system awaitInput does not wait, the
// reader waits in coder/websocket's Read.
func waitableSocket(net.Conn) syscall.RawConn { return nil }

// peekReadable is never called here (waitableSocket returns nil).
func (in *wsInput) peekReadable(uintptr) bool { return true }

// writeNonblocking is never called here (waitableSocket returns nil, and
// writers run on goroutines of their own).
func writeNonblocking(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
