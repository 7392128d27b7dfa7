//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package phx

import (
	"net"
	"os"
	"syscall"
)

// waitableSocket returns the socket under nc for awaitInput to wait on:
// only a plain TCP or Unix connection, whose reads are the socket's. Any
// other net.Conn (TLS, or a wrapper that may buffer bytes of its own) gets
// nil, and its reader waits in coder/websocket's Read.
func waitableSocket(nc net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := nc.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
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

// writeNonblocking writes as much of p to the socket as it takes without
// waiting: n < len(p) with a nil error when it is full.
func writeNonblocking(raw syscall.RawConn, p []byte) (n int, err error) {
	var werr error
	if err := raw.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, err := syscall.Write(int(fd), p[n:])
			if m > 0 {
				n += m
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				return true
			case err != nil:
				werr = os.NewSyscallError("write", err)
				return true
			case m == 0:
				return true
			}
		}
		return true // done, never wait: that is the caller's to decide
	}); err != nil {
		return n, err
	}
	return n, werr
}
