//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package phx

import (
	"net"
	"os"
	"sync"
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
	op := rawWrites.Get().(*rawWrite)
	op.p = p
	err = raw.Write(op.fn)
	n = op.n
	if err == nil {
		err = op.err
	}
	*op = rawWrite{fn: op.fn}
	rawWrites.Put(op)
	return n, err
}

// rawWrite is one writeNonblocking: pooled with its func value, so that a
// write allocates nothing (a closure over p, n and err would be three
// allocations per write, per subscriber of a broadcast).
type rawWrite struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // write, as a func value
}

var rawWrites = sync.Pool{New: func() any {
	op := new(rawWrite)
	op.fn = op.write
	return op
}}

// write is the raw write: done (true) whatever happened, never "wait for
// the socket" (false), which is the caller's to decide.
func (op *rawWrite) write(fd uintptr) bool {
	for op.n < len(op.p) {
		m, err := syscall.Write(int(fd), op.p[op.n:])
		if m > 0 {
			op.n += m
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			return true
		case err != nil:
			op.err = os.NewSyscallError("write", err)
			return true
		case m == 0:
			return true
		}
	}
	return true
}
