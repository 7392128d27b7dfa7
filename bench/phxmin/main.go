// Command phxmin is the library alone, with nothing of an application: the
// README's quickstart channel without auth. "room:*" joins are accepted
// with {}; any event pushed is broadcast to the topic as is and replied ok
// {}. It isolates what github.com/phxgo/phx costs from what examples/chat
// adds (tokens, the message store, presence on every join). With -presence
// it tracks every join and pushes presence_state, as the chat example does.
//
//	phxmin -addr 127.0.0.1:0   # logs "phxmin: listening on http://127.0.0.1:PORT/"
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/phxgo/phx"
)

type room struct{ presence *phx.Presence }

// Join accepts; with -presence it tracks the joiner (key u<n>, meta
// online_at) and pushes presence_state, as examples/chat does.
func (r room) Join(s *phx.Socket, p phx.Payload) (any, error) {
	if r.presence == nil {
		return nil, nil
	}
	key := fmt.Sprintf("u%d", users.Add(1))
	if err := r.presence.Track(s, key, map[string]any{"online_at": time.Now().UnixMilli()}); err != nil {
		return nil, err
	}
	return nil, r.presence.PushState(s)
}

var users atomic.Uint64

func (room) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	return nil, s.Broadcast(event, json.RawMessage(p.Data))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `address`")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this loopback `address` (e.g. 127.0.0.1:6060)")
	withPresence := flag.Bool("presence", false, "track every join with a phx.Presence and push presence_state, as examples/chat does")
	flag.Parse()
	if *pprofAddr != "" {
		servePprof(*pprofAddr)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := phx.NewServer(&phx.Options{Logger: logger})
	var r room
	if *withPresence {
		r.presence = phx.NewPresence(srv, nil)
	}
	srv.Channel("room:*", func() phx.Channel { return r })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	fmt.Fprintf(os.Stderr, "phxmin: listening on http://%s/\n", ln.Addr())
	go hs.Serve(ln)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	srv.Shutdown(sctx)
}

// servePprof serves the profiles on their own listener, away from the
// measured mux.
func servePprof(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	fmt.Fprintf(os.Stderr, "%s: pprof on %s\n", "phxmin", ln.Addr())
	go http.Serve(ln, mux)
}
