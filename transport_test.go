package phx_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// The transport contract, through lineTransport (example_transport_test.go),
// a transport written against the public API only.

// statusError is a Connect error carrying an HTTP status.
type statusError int

func (e statusError) Error() string   { return fmt.Sprintf("status %d", int(e)) }
func (e statusError) StatusCode() int { return int(e) }

// recordingTransport is a lineTransport that records its close code.
type recordingTransport struct {
	*lineTransport
	closed chan int
}

func (t *recordingTransport) Close(code int, reason string) {
	t.closed <- code
	t.lineTransport.Close(code, reason)
}

// lineConn is a connection served over a pipe by a recordingTransport.
type lineConn struct {
	conn   *phx.Conn
	t      *recordingTransport
	client net.Conn
	read   *bufio.Reader
	served chan error
}

func newLineServer(t *testing.T, opts *phx.Options) *phx.Server {
	t.Helper()
	if opts == nil {
		opts = &phx.Options{}
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	srv := phx.NewServer(opts)
	srv.Channel("room:*", func() phx.Channel { return &Room{} })
	return srv
}

func lineInfo(vsn string) *phx.ConnectInfo {
	return &phx.ConnectInfo{Context: context.Background(), Params: url.Values{"vsn": {vsn}}, Transport: "lines"}
}

// serveLines accepts a connection and serves it on a goroutine.
func serveLines(t *testing.T, srv *phx.Server, before func(*phx.Conn)) *lineConn {
	t.Helper()
	conn, err := srv.Accept(lineInfo("2.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	serverSide, clientSide := net.Pipe()
	lc := &lineConn{
		conn:   conn,
		t:      &recordingTransport{lineTransport: &lineTransport{nc: serverSide}, closed: make(chan int, 1)},
		client: clientSide,
		read:   bufio.NewReader(clientSide),
		served: make(chan error, 1),
	}
	if before != nil {
		before(conn)
	}
	go func() { lc.served <- conn.Serve(lc.t, phx.TransportFeatures{}) }()
	t.Cleanup(func() { clientSide.Close() })
	return lc
}

func (lc *lineConn) roundTrip(t *testing.T, frame string) string {
	t.Helper()
	if _, err := fmt.Fprintln(lc.client, frame); err != nil {
		t.Fatal(err)
	}
	line, err := lc.read.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func (lc *lineConn) awaitEnd(t *testing.T) (code int, err error) {
	t.Helper()
	select {
	case code = <-lc.t.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the transport was not closed")
	}
	select {
	case err = <-lc.served:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	return code, err
}

func TestTransportServesJoinsAndHeartbeats(t *testing.T) {
	srv := newLineServer(t, &phx.Options{Connect: func(*phx.ConnectInfo) (phx.Assigns, error) {
		return phx.Assigns{"user": "bob"}, nil
	}})
	lc := serveLines(t, srv, nil)
	if got, want := lc.roundTrip(t, `["1","1","room:a","phx_join",{}]`),
		`["1","1","room:a","phx_reply",{"status":"ok","response":{"welcome":"bob"}}]`; got != want {
		t.Fatalf("join reply %s, want %s", got, want)
	}
	if got, want := lc.roundTrip(t, `[null,"2","phoenix","heartbeat",{}]`),
		`[null,"2","phoenix","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Fatalf("heartbeat reply %s, want %s", got, want)
	}
	if n := srv.Stats().Connections; n != 1 {
		t.Fatalf("%d connections registered, want 1", n)
	}
	lc.client.Close()
	if code, err := lc.awaitEnd(t); code != 1001 || err != nil {
		t.Fatalf("ended with code %d, Serve error %v; want 1001, nil", code, err)
	}
	if n := srv.Stats().Connections; n != 0 {
		t.Fatalf("%d connections registered after Serve returned, want 0", n)
	}
}

func TestAcceptRefusals(t *testing.T) {
	srv := newLineServer(t, &phx.Options{Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
		switch info.Params.Get("user") {
		case "":
			return nil, statusError(429)
		case "banned":
			return nil, &phx.RefusedError{Status: http.StatusUnavailableForLegalReasons, Err: errors.New("banned")}
		}
		return nil, nil
	}})
	_, err := srv.Accept(lineInfo("2.0.0"))
	var refused *phx.RefusedError
	if !errors.As(err, &refused) || refused.Status != 429 || !errors.Is(err, statusError(429)) {
		t.Fatalf("Connect refusal: %v, want a RefusedError with status 429", err)
	}
	banned := lineInfo("2.0.0")
	banned.Params.Set("user", "banned")
	_, err = srv.Accept(banned)
	if !errors.As(err, &refused) || refused.Status != 451 {
		t.Fatalf("Connect returning a RefusedError: %v, want status 451", err)
	}
	_, err = srv.Accept(lineInfo("9.0.0"))
	if !errors.As(err, &refused) || refused.Status != 403 || !errors.Is(err, phx.ErrUnsupportedVsn) {
		t.Fatalf("vsn refusal: %v, want a RefusedError with status 403 wrapping ErrUnsupportedVsn", err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Accept(lineInfo("2.0.0")); !errors.Is(err, phx.ErrServerClosed) {
		t.Fatalf("Accept after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestServeAfterShutdownBegan(t *testing.T) {
	srv := newLineServer(t, nil)
	conn, err := srv.Accept(lineInfo("2.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	serverSide, _ := net.Pipe()
	if err := conn.Serve(&lineTransport{nc: serverSide}, phx.TransportFeatures{}); !errors.Is(err, phx.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
	if err := conn.Serve(&lineTransport{nc: serverSide}, phx.TransportFeatures{}); err == nil {
		t.Fatal("a second Serve returned nil")
	}
}

func TestTransportClosedBeforeServe(t *testing.T) {
	srv := newLineServer(t, nil)
	lc := serveLines(t, srv, func(conn *phx.Conn) { conn.Close(1001, "early") })
	if code, err := lc.awaitEnd(t); code != 1001 || err != nil {
		t.Fatalf("ended with code %d, Serve error %v; want 1001, nil", code, err)
	}
}

func TestTransportShutdownAndLimits(t *testing.T) {
	srv := newLineServer(t, &phx.Options{MaxMessageSize: 64, Connect: func(*phx.ConnectInfo) (phx.Assigns, error) {
		return phx.Assigns{"user": "bob"}, nil
	}})

	big := serveLines(t, srv, nil)
	fmt.Fprintln(big.client, `["1","1","room:a","phx_join",{"padding":"`+strings.Repeat("x", 64)+`"}]`)
	if code, _ := big.awaitEnd(t); code != 1009 {
		t.Fatalf("frame over MaxMessageSize: close code %d, want 1009", code)
	}

	bad := serveLines(t, srv, nil)
	fmt.Fprintln(bad.client, `["1","1","room:a"`)
	if code, err := bad.awaitEnd(t); code != 1007 || !errors.Is(err, phx.ErrMalformed) {
		t.Fatalf("malformed frame: close code %d, Serve error %v; want 1007, ErrMalformed", code, err)
	}
	if n := srv.Stats().MalformedFrames; n != 1 {
		t.Fatalf("Stats().MalformedFrames = %d, want 1", n)
	}

	live := serveLines(t, srv, nil)
	live.roundTrip(t, `["1","1","room:a","phx_join",{}]`)
	go srv.Shutdown(context.Background())
	if code, err := live.awaitEnd(t); code != 1012 || err != nil {
		t.Fatalf("Shutdown: close code %d, Serve error %v; want 1012, nil", code, err)
	}
}

// ConnectErrorHandler writes the response of a refused WebSocket connect.
func TestConnectErrorHandler(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, &phx.Options{
		Connect: func(*phx.ConnectInfo) (phx.Assigns, error) {
			return nil, &phx.RefusedError{Status: http.StatusPaymentRequired, Err: errors.New("plan expired")}
		},
		ConnectErrorHandler: func(w http.ResponseWriter, r *http.Request, err *phx.RefusedError) {
			w.Header().Set("X-Reason", err.Err.Error())
			w.WriteHeader(err.Status)
			fmt.Fprint(w, `{"error":"upgrade your plan"}`)
		},
	}, nil)
	resp, err := http.Get(strings.Replace(ts.url, "ws", "http", 1) + "/websocket?vsn=2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPaymentRequired || resp.Header.Get("X-Reason") == "" || string(body) != `{"error":"upgrade your plan"}` {
		t.Fatalf("refusal answered %d %q %q", resp.StatusCode, resp.Header.Get("X-Reason"), body)
	}
}
