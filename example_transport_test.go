package phx_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"

	"github.com/phxgo/phx"
)

// lineTransport is a custom phx.Transport: V2 text frames over any byte
// stream (a TCP connection, a pipe), one per line.
type lineTransport struct {
	nc      net.Conn
	conn    *phx.Conn
	writers sync.WaitGroup
}

// Serve reads lines and hands each to the connection until the stream
// ends; Close ends it when the server closes the connection.
func (t *lineTransport) Serve(conn *phx.Conn) error {
	t.conn = conn
	lines := bufio.NewScanner(t.nc)
	for lines.Scan() {
		if err := conn.Receive(phx.Frame{Data: lines.Bytes()}); err != nil {
			return err // malformed: the connection is closing
		}
	}
	select {
	case <-conn.Done():
		return nil // the server closed the connection (Close ended the stream)
	default:
		return lines.Err()
	}
}

// Wake starts a writer, which writes what is queued until nothing is.
func (t *lineTransport) Wake() {
	t.writers.Add(1)
	go func() {
		defer t.writers.Done()
		var batch []phx.Frame
		var line []byte
		for {
			var ok bool
			if batch, ok = t.conn.TakeFrames(batch); !ok {
				return
			}
			for _, f := range batch {
				// Copy: f.Data may be shared with other connections.
				line = append(append(line[:0], f.Data...), '\n')
				if _, err := t.nc.Write(line); err != nil {
					t.conn.Close(1001, "write failed")
					return
				}
			}
		}
	}()
}

// Close has no close code to send on a plain stream: it ends it.
func (t *lineTransport) Close(code int, reason string) { t.nc.Close() }

// This example serves a connection over a custom transport: Accept runs
// Connect and chooses the serializer, Serve runs the connection until the
// stream ends.
func ExampleTransport() {
	srv := phx.NewServer(&phx.Options{Logger: slog.New(slog.DiscardHandler)})
	srv.Channel("room:*", func() phx.Channel { return &Room{} })
	serverSide, clientSide := net.Pipe()

	served := make(chan error, 1)
	go func() {
		conn, err := srv.AcceptAuthenticated(&phx.ConnectInfo{
			Context:   context.Background(),
			Params:    url.Values{"vsn": {"2.0.0"}},
			Transport: "lines",
		}, phx.Assigns{"user": "ann"}, "")
		if err != nil {
			served <- err
			return
		}
		served <- conn.Serve(&lineTransport{nc: serverSide}, phx.TransportFeatures{TextOnly: true})
	}()

	fmt.Fprintln(clientSide, `["1","1","room:lobby","phx_join",{}]`)
	reply, _ := bufio.NewReader(clientSide).ReadString('\n')
	fmt.Print(reply)
	clientSide.Close()
	fmt.Println(<-served)
	// Output:
	// ["1","1","room:lobby","phx_reply",{"status":"ok","response":{"welcome":"ann"}}]
	// <nil>
}
