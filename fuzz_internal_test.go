package phx

import (
	"bytes"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"
)

// discardTransport is a Transport whose client never reads: it drops every
// frame the server writes. The test goroutine calls Receive itself.
type discardTransport struct {
	conn    *Conn
	started chan struct{}
	writers sync.WaitGroup
}

func (d *discardTransport) Serve(conn *Conn) error {
	close(d.started)
	<-conn.Done()
	return nil
}

func (d *discardTransport) Wake() {
	d.writers.Add(1)
	go func() {
		defer d.writers.Done()
		var batch []Frame
		for ok := true; ok; {
			batch, ok = d.conn.TakeFrames(batch)
		}
	}()
}

func (d *discardTransport) Close(int, string) {}

// fuzzRoom is a channel whose events exercise every reply path.
type fuzzRoom struct{}

func (fuzzRoom) Join(s *Socket, p Payload) (any, error) {
	if bytes.Contains(p.Data, []byte("deny")) {
		return nil, Errorf("denied")
	}
	if bytes.Contains(p.Data, []byte("panic")) {
		panic("join panic")
	}
	return nil, nil
}

func (fuzzRoom) HandleIn(s *Socket, event string, p Payload) (any, error) {
	switch event {
	case "panic":
		panic("handle_in panic")
	case "stop":
		s.Stop(nil)
	case "bcast":
		return nil, s.Broadcast("b", nil)
	case "noreply":
		return nil, NoReply
	case "push":
		return nil, s.Push("p", Binary(p.Data))
	}
	return nil, nil
}

// FuzzSession feeds a random sequence of frames, valid and invalid, to one
// in-memory connection. Invariants: no panic, the channel limit holds, and
// every goroutine is gone once the connection closes (the package's leak
// check runs after the fuzz target's seeds in go test).
func FuzzSession(f *testing.F) {
	f.Add([]byte(`["1","1","room:a","phx_join",{}]` + "\n" + `["1","2","room:a","x",{}]` + "\n" + `[null,"3","phoenix","heartbeat",{}]`))
	f.Add([]byte(`["1","1","room:a","phx_join",{}]` + "\n" + `["1","2","room:a","panic",{}]` + "\n" + `["2","2","room:a","phx_join",{}]`))
	f.Add([]byte(`["1","1","room:a","phx_join",{"deny":1}]` + "\n" + `["1","2","room:a","phx_leave",{}]`))
	f.Add([]byte(`["1","1","room:a","phx_join",{}]` + "\n" + `["1","1","room:a","phx_join",{}]` + "\n" + `["1","3","room:a","stop",{}]`))
	f.Add([]byte("\x00\x01\x01\x06\x04" + "12room:apush" + "\x01\x02"))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := NewServer(&Options{Logger: slog.New(slog.DiscardHandler), MaxChannels: 3})
		srv.Channel("room:*", func() Channel { return fuzzRoom{} })
		info := &ConnectInfo{Params: url.Values{"vsn": {"2.0.0"}}, Transport: "fuzz"}
		conn, err := srv.AcceptAuthenticated(info, nil, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		d := &discardTransport{conn: conn, started: make(chan struct{})}
		served := make(chan error, 1)
		go func() { served <- conn.Serve(d, TransportFeatures{}) }()
		<-d.started
		for _, line := range bytes.Split(data, []byte("\n")) {
			binary := len(line) > 0 && line[0] == 0
			if conn.Receive(Frame{Data: line, Binary: binary}) != nil {
				break
			}
			conn.c.mu.Lock()
			n := conn.c.channels.len()
			conn.c.mu.Unlock()
			if n > 3 {
				t.Fatalf("%d channels joined, limit 3", n)
			}
		}
		conn.Close(closeGoingAway, "client closed")
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		d.writers.Wait()
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(t.Context()) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown hung")
		}
		if st := srv.Stats(); st.Connections != 0 {
			t.Fatalf("%d connections left", st.Connections)
		}
	})
}
