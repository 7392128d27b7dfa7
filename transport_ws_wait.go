//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package phx

import (
	"net"
	"syscall"
)

// waitableSocket returns the socket under nc for awaitInput to wait on,
// nil when nc is not a system socket (a TLS connection).
func waitableSocket(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// peekReadable is the raw read awaitInput waits with: true (done) when
// the socket has a byte to read, has ended or failed; false (wait for
// input, then call again) when a read would block. Nothing is consumed.
func (in *wsInput) peekReadable(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), in.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
}
