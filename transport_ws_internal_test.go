package phx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn is a net.Conn that records every Write call and every
// write deadline set on it. Writes up to 1 MiB are recorded as copies;
// larger ones are not copied (the copy would take time counted against the
// write's deadline), and the tests look only at their length.
type recordingConn struct {
	net.Conn

	mu        sync.Mutex
	writes    [][]byte
	deadlines []time.Time
}

func (c *recordingConn) Write(p []byte) (int, error) {
	rec := p
	if len(p) <= 1<<20 {
		rec = bytes.Clone(p)
	}
	c.mu.Lock()
	c.writes = append(c.writes, rec)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recordingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// Writes returns a copy of the recorded Write calls.
func (c *recordingConn) Writes() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.writes...)
}

func (c *recordingConn) Deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.deadlines...)
}

// farSide collects what arrives at the other end of a connection.
type farSide struct {
	conn net.Conn
	mu   sync.Mutex
	got  []byte
	done chan struct{}
}

// tcpPair returns both ends of a loopback TCP connection: near, wrapped
// in a recordingConn, and far. Both are closed when the test ends.
func tcpPair(t *testing.T) (*recordingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	near, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a.err != nil {
		near.Close()
		t.Fatal(a.err)
	}
	t.Cleanup(func() {
		near.Close()
		a.c.Close()
	})
	return &recordingConn{Conn: near}, a.c
}

// readAll starts reading c until it fails; the reader ends when the test
// closes c.
func readAll(t *testing.T, c net.Conn) *farSide {
	f := &farSide{conn: c, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			f.mu.Lock()
			f.got = append(f.got, buf[:n]...)
			f.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-f.done
	})
	return f
}

// waitFor polls until n bytes have arrived and returns them.
func (f *farSide) waitFor(t *testing.T, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		got := bytes.Clone(f.got)
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("far side got %d bytes, want %d", len(got), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestBatchWriterCorkedWritesGoOutAsOneWrite(t *testing.T) {
	near, far := tcpPair(t)
	fs := readAll(t, far)
	w := &batchWriter{conn: near, timeout: 5 * time.Second}

	w.cork(false)
	var want []byte
	for i, s := range []string{"first frame|", "second|", strings.Repeat("x", 3000), "|last"} {
		n, err := w.Write([]byte(s))
		if err != nil || n != len(s) {
			t.Fatalf("corked Write %d = %d, %v; want %d, nil", i, n, err, len(s))
		}
		want = append(want, s...)
	}
	if got := near.Writes(); len(got) != 0 {
		t.Fatalf("%d socket writes while corked, want none before uncork", len(got))
	}
	if err := w.uncork(); err != nil {
		t.Fatalf("uncork: %v", err)
	}
	writes := near.Writes()
	if len(writes) != 1 {
		t.Fatalf("uncork made %d socket writes, want exactly 1", len(writes))
	}
	if !bytes.Equal(writes[0], want) {
		t.Fatalf("the write carried %q..., want the corked writes concatenated (%d bytes)", trunc(writes[0]), len(want))
	}
	if got := fs.waitFor(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("far side got %q..., want %q...", trunc(got), trunc(want))
	}

	// An empty batch writes nothing.
	w.cork(false)
	if err := w.uncork(); err != nil {
		t.Fatalf("uncork of an empty batch: %v", err)
	}
	if n := len(near.Writes()); n != 1 {
		t.Fatalf("an empty batch made %d more socket writes", n-1)
	}

	// Batches can be corked again after an uncork.
	w.cork(false)
	w.Write([]byte("again-"))
	w.Write([]byte("and again"))
	if n := len(near.Writes()); n != 1 {
		t.Fatalf("%d socket writes while corked the second time, want none", n-1)
	}
	if err := w.uncork(); err != nil {
		t.Fatal(err)
	}
	writes = near.Writes()
	if len(writes) != 2 || string(writes[1]) != "again-and again" {
		t.Fatalf("second batch: writes %q", writes[1:])
	}
	want = append(want, "again-and again"...)
	if got := fs.waitFor(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("far side got %q..., want %q...", trunc(got), trunc(want))
	}
}

func TestBatchWriterUncorkedWritesGoStraightThrough(t *testing.T) {
	near, far := tcpPair(t)
	fs := readAll(t, far)
	const timeout = 3 * time.Second
	w := &batchWriter{conn: near, timeout: timeout}

	var want []byte
	for i, s := range []string{"a", "bc", strings.Repeat("d", 70<<10)} {
		before := time.Now()
		n, err := w.Write([]byte(s))
		after := time.Now()
		if err != nil || n != len(s) {
			t.Fatalf("Write %d = %d, %v; want %d, nil", i, n, err, len(s))
		}
		writes := near.Writes()
		if len(writes) != i+1 || string(writes[i]) != s {
			t.Fatalf("after Write %d: %d socket writes, want %d, the last carrying the written bytes", i, len(writes), i+1)
		}
		// Each write has a fresh deadline of timeout.
		ds := near.Deadlines()
		if len(ds) != i+1 {
			t.Fatalf("after Write %d: %d write deadlines set, want %d", i, len(ds), i+1)
		}
		if d := ds[i]; d.Before(before.Add(timeout)) || d.After(after.Add(timeout)) {
			t.Fatalf("Write %d: deadline %v from the write's start, want %v", i, d.Sub(before), timeout)
		}
		want = append(want, s...)
		if got := fs.waitFor(t, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("far side got %q..., want %q...", trunc(got), trunc(want))
		}
	}
}

func TestBatchWriterWriteDeadline(t *testing.T) {
	near, _ := tcpPair(t) // the far side never reads
	const timeout = 100 * time.Millisecond
	w := &batchWriter{conn: near, timeout: timeout}

	// The deadline is set for each write, not once: a write made after an
	// earlier write's deadline has passed still succeeds.
	if _, err := w.Write([]byte("early")); err != nil {
		t.Fatalf("first write: %v", err)
	}
	time.Sleep(2 * timeout)
	if _, err := w.Write([]byte("later")); err != nil {
		t.Fatalf("write after the first write's deadline passed: %v (deadline not renewed)", err)
	}

	// More than the socket buffers hold: the write blocks until the
	// deadline. Should no deadline be set, the watchdog ends the write (and
	// the test) by closing the connection.
	watchdog := time.AfterFunc(5*time.Second, func() { near.Conn.Close() })
	defer watchdog.Stop()
	big := make([]byte, 16<<20)
	start := time.Now()
	n, err := w.Write(big)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("a %d-byte write to a peer that never reads succeeded", len(big))
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write error %v, want a deadline exceeded error", err)
	}
	if n >= len(big) {
		t.Fatalf("write wrote %d of %d bytes and failed", n, len(big))
	}
	t.Logf("write of %d bytes failed after %v having written %d", len(big), elapsed, n)
	if elapsed < timeout-10*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("write failed after %v, want about %v", elapsed, timeout)
	}
	writes := len(near.Writes())

	// Every later write fails with the same error, without touching the
	// socket: uncorked, corked, and at uncork.
	if n, err2 := w.Write([]byte("x")); n != 0 || err2 != err {
		t.Fatalf("uncorked write after the failure = %d, %v; want 0, %v", n, err2, err)
	}
	w.cork(false)
	if n, err2 := w.Write([]byte("y")); n != 0 || err2 != err {
		t.Fatalf("corked write after the failure = %d, %v; want 0, %v", n, err2, err)
	}
	if err2 := w.uncork(); err2 != err {
		t.Fatalf("uncork after the failure = %v, want %v", err2, err)
	}
	w.cork(false)
	if err2 := w.uncork(); err2 != err {
		t.Fatalf("uncork of an empty batch after the failure = %v, want %v", err2, err)
	}
	if got := len(near.Writes()); got != writes {
		t.Fatalf("%d socket writes after the failure, want none", got-writes)
	}
}

func TestBatchWriterFlushesLargeBatchBeforeUncork(t *testing.T) {
	near, far := tcpPair(t)
	fs := readAll(t, far)
	w := &batchWriter{conn: near, timeout: 5 * time.Second}

	// Many small writes: written out as soon as the batch reaches
	// wsMaxBatchBytes.
	const chunk = 1 << 10
	var want []byte
	w.cork(false)
	for i := 0; len(want)+chunk <= wsMaxBatchBytes; i++ {
		b := bytes.Repeat([]byte{byte('a' + i%26)}, chunk)
		if n, err := w.Write(b); err != nil || n != chunk {
			t.Fatalf("corked Write %d = %d, %v", i, n, err)
		}
		want = append(want, b...)
		writes := near.Writes()
		if len(want) < wsMaxBatchBytes && len(writes) != 0 {
			t.Fatalf("batch of %d bytes (under %d) went to the socket before uncork", len(want), wsMaxBatchBytes)
		}
	}
	writes := near.Writes()
	if len(writes) != 1 || !bytes.Equal(writes[0], want) {
		t.Fatalf("a %d-byte corked batch made %d socket writes before uncork, want 1 with the whole batch", len(want), len(writes))
	}
	// The batch goes on after the early flush.
	w.Write([]byte("tail"))
	if n := len(near.Writes()); n != 1 {
		t.Fatalf("%d socket writes after the early flush, want none until uncork", n-1)
	}
	if err := w.uncork(); err != nil {
		t.Fatal(err)
	}
	writes = near.Writes()
	if len(writes) != 2 || string(writes[1]) != "tail" {
		t.Fatalf("uncork wrote %d chunks, want the 4 bytes after the early flush", len(writes)-1)
	}
	want = append(want, "tail"...)

	// A large piece (a big frame's payload): what the batch gathered goes
	// out first, then the piece as it is, not copied into the batch.
	huge := bytes.Repeat([]byte("0123456789"), (wsMaxBatchBytes+wsMaxBatchBytes/2)/10)
	w.cork(false)
	w.Write([]byte("head-"))
	if n, err := w.Write(huge); err != nil || n != len(huge) {
		t.Fatalf("corked Write of %d bytes = %d, %v", len(huge), n, err)
	}
	writes = near.Writes()
	if len(writes) != 4 || string(writes[2]) != "head-" || !bytes.Equal(writes[3], huge) {
		t.Fatalf("a large corked piece: %d socket writes, want the gathered bytes then the piece", len(writes)-2)
	}
	if err := w.uncork(); err != nil {
		t.Fatal(err)
	}
	if n := len(near.Writes()); n != 4 {
		t.Fatalf("uncork after the large piece wrote %d more times, want none", n-4)
	}
	// A piece just under wsDirectWriteBytes is gathered like a small one.
	under := bytes.Repeat([]byte("u"), wsDirectWriteBytes-1)
	w.cork(false)
	w.Write(under)
	if n := len(near.Writes()); n != 4 {
		t.Fatalf("a %d-byte piece went to the socket before uncork", len(under))
	}
	if err := w.uncork(); err != nil {
		t.Fatal(err)
	}
	if writes = near.Writes(); len(writes) != 5 || !bytes.Equal(writes[4], under) {
		t.Fatalf("uncork: %d socket writes, want the gathered piece once", len(writes)-4)
	}
	want = append(want, "head-"...)
	want = append(want, huge...)
	want = append(want, under...)
	if got := fs.waitFor(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("far side got %d bytes, not the %d written in order", len(got), len(want))
	}
}

func TestPrefixedConnReturnsPrefixFirst(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pc := &prefixedConn{Conn: a, prefix: []byte("prefix bytes|")}
	wrote := make(chan error, 1)
	go func() {
		_, err := b.Write([]byte("conn bytes"))
		wrote <- err
	}()

	// A small buffer: the prefix takes more than one read, and no read
	// mixes the prefix with the connection's bytes.
	var got []string
	buf := make([]byte, 5)
	for total := 0; total < len("prefix bytes|"); {
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got = append(got, string(buf[:n]))
		total += n
	}
	if want := []string{"prefi", "x byt", "es|"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("prefix reads %q, want %q", got, want)
	}
	rest := make([]byte, len("conn bytes"))
	if _, err := io.ReadFull(pc, rest); err != nil {
		t.Fatal(err)
	}
	if string(rest) != "conn bytes" {
		t.Fatalf("after the prefix: %q, want the connection's bytes", rest)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}

	// The prefix is not returned again, and writes go to the connection.
	go func() {
		_, err := b.Write([]byte("more"))
		wrote <- err
	}()
	big := make([]byte, 64)
	n, err := pc.Read(big)
	if err != nil || string(big[:n]) != "more" {
		t.Fatalf("read after the prefix = %q, %v; want \"more\"", big[:n], err)
	}
	<-wrote
	go func() {
		_, err := pc.Write([]byte("out"))
		wrote <- err
	}()
	n, err = io.ReadFull(b, big[:3])
	if err != nil || string(big[:n]) != "out" {
		t.Fatalf("far side read %q, %v; want \"out\"", big[:n], err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestPrefixedConnAfterHijack checks upgradeWriter.Hijack: small buffers,
// writes through a batchWriter, and bytes the client sent right behind its
// request (read by net/http already) still read first.
func TestPrefixedConnAfterHijack(t *testing.T) {
	type result struct {
		err  error
		info string
	}
	res := make(chan result, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uw := &upgradeWriter{ResponseWriter: w, writeTimeout: 7 * time.Second}
		nc, brw, err := uw.Hijack()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer nc.Close()
		_, prefixed := nc.(*prefixedConn)
		info := fmt.Sprintf("read buffer %d, write buffer %d, batchWriter %v, prefixed %v",
			brw.Reader.Size(), brw.Writer.Size(), uw.out != nil, prefixed)
		switch {
		case brw.Reader.Size() != wsReadBufferSize || brw.Writer.Size() != wsWriteBufferSize:
			res <- result{err: errors.New("wrong buffer sizes"), info: info}
			return
		case uw.out == nil || uw.out.timeout != 7*time.Second:
			res <- result{err: errors.New("no batchWriter with the write timeout"), info: info}
			return
		}
		// What the client sent with its request, then what it sends
		// after our answer.
		early := make([]byte, len("PIPELINED"))
		if _, err := io.ReadFull(brw, early); err != nil || string(early) != "PIPELINED" {
			res <- result{err: fmt.Errorf("pipelined bytes: %q, %v", early, err), info: info}
			return
		}
		brw.WriteString("ready\n")
		if err := brw.Flush(); err != nil {
			res <- result{err: err, info: info}
			return
		}
		late := make([]byte, len("LATER"))
		if _, err := io.ReadFull(brw, late); err != nil || string(late) != "LATER" {
			res <- result{err: fmt.Errorf("later bytes: %q, %v", late, err), info: info}
			return
		}
		// Corked writes through the returned writer reach the client.
		uw.out.cork(true)
		brw.WriteString("got ")
		brw.Flush()
		brw.WriteString(string(early) + "+" + string(late) + "\n")
		brw.Flush()
		if err := uw.out.uncork(); err != nil {
			res <- result{err: err, info: info}
			return
		}
		res <- result{info: info}
	}))
	defer hs.Close()

	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\nPIPELINED")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "ready\n" {
		select {
		case r := <-res:
			t.Fatalf("server: %v (%s)", r.err, r.info)
		default:
		}
		t.Fatalf("read %q, %v; want ready", line, err)
	}
	if _, err := c.Write([]byte("LATER")); err != nil {
		t.Fatal(err)
	}
	line, err = br.ReadString('\n')
	r := <-res
	if r.err != nil {
		t.Fatalf("server: %v (%s)", r.err, r.info)
	}
	if err != nil || line != "got PIPELINED+LATER\n" {
		t.Fatalf("read %q, %v; want the server's answer", line, err)
	}
	t.Log(r.info)
}

// trunc shortens b for failure messages.
func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
