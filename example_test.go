package phx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/clienttest"
)

// Room is a chat room channel: clients join "room:<name>" and push
// "new_msg"; every member receives the message.
type Room struct {
	user string // channel state lives in the struct
}

func (r *Room) Join(s *phx.Socket, payload phx.Payload) (any, error) {
	r.user, _ = s.Assigns["user"].(string)
	if r.user == "" {
		return nil, phx.Errorf("unauthorized")
	}
	return map[string]string{"welcome": r.user}, nil
}

func (r *Room) HandleIn(s *phx.Socket, event string, payload phx.Payload) (any, error) {
	switch event {
	case "new_msg":
		var msg struct {
			Body string `json:"body"`
		}
		if err := payload.Decode(&msg); err != nil || msg.Body == "" {
			return nil, phx.Errorf("empty")
		}
		return nil, s.Broadcast("new_msg", map[string]string{"user": r.user, "body": msg.Body})
	}
	return nil, phx.Errorf("unknown event")
}

// This example mounts a server with one channel route, then plays the
// client's part with raw V2 frames, as phoenix.js sends them.
func Example() {
	srv := phx.NewServer(&phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			user := info.Params.Get("user") // in real life: verify a token
			if user == "" {
				return nil, errors.New("no user")
			}
			return phx.Assigns{"user": user}, nil
		},
		ID:     func(a phx.Assigns) string { return "users_socket:" + a["user"].(string) },
		Logger: slog.New(slog.DiscardHandler),
	})
	srv.Channel("room:*", func() phx.Channel { return &Room{} })

	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	// The client side (phoenix.js does this for you).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := strings.Replace(hs.URL, "http", "ws", 1) + "/socket/websocket?user=ann&vsn=2.0.0"
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	send := func(frame string) { c.Write(ctx, websocket.MessageText, []byte(frame)) }
	recv := func() { _, b, _ := c.Read(ctx); fmt.Println(string(b)) }

	send(`["1","1","room:lobby","phx_join",{}]`)
	recv()
	send(`["1","2","room:lobby","new_msg",{"body":"hello"}]`)
	recv() // the broadcast
	recv() // the reply to the push
	send(`["1","3","room:lobby","new_msg",{"body":""}]`)
	recv()
	// Output:
	// ["1","1","room:lobby","phx_reply",{"status":"ok","response":{"welcome":"ann"}}]
	// [null,null,"room:lobby","new_msg",{"body":"hello","user":"ann"}]
	// ["1","2","room:lobby","phx_reply",{"status":"ok","response":{}}]
	// ["1","3","room:lobby","phx_reply",{"status":"error","response":{"reason":"empty"}}]
}

// Rate limits per route and event, on top of the connection's
// MaxInboundRate: each room a client joins takes 30 cursor moves a second
// from it and a chat message a second, in bursts of 2. What goes over is
// refused with an error reply, which phoenix.js hands to the push's
// receive("error") callbacks; the connection stays open.
func ExampleInboundLimit() {
	srv := phx.NewServer(&phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
		InboundLimits: []phx.InboundLimit{
			{Topic: "room:*", Event: "cursor", Rate: 30},
			{Topic: "room:*", Event: "new_msg", Rate: 1, Burst: 2},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	srv.Channel("room:*", func() phx.Channel { return &Room{} })
	hs := httptest.NewServer(srv)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	// The client side: three chat messages in a row.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := strings.Replace(hs.URL, "http", "ws", 1) + "/socket/websocket?user=ann&vsn=2.0.0"
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	send := func(frame string) { c.Write(ctx, websocket.MessageText, []byte(frame)) }
	recv := func() { _, b, _ := c.Read(ctx); fmt.Println(string(b)) }
	send(`["1","1","room:lobby","phx_join",{}]`)
	recv()
	for ref := 2; ref <= 3; ref++ {
		send(fmt.Sprintf(`["1","%d","room:lobby","new_msg",{"body":"hi"}]`, ref))
		recv() // the broadcast
		recv() // the reply
	}
	send(`["1","4","room:lobby","new_msg",{"body":"hi"}]`)
	recv() // refused: the burst is spent
	// Output:
	// ["1","1","room:lobby","phx_reply",{"status":"ok","response":{"welcome":"ann"}}]
	// [null,null,"room:lobby","new_msg",{"body":"hi","user":"ann"}]
	// ["1","2","room:lobby","phx_reply",{"status":"ok","response":{}}]
	// [null,null,"room:lobby","new_msg",{"body":"hi","user":"ann"}]
	// ["1","3","room:lobby","phx_reply",{"status":"ok","response":{}}]
	// ["1","4","room:lobby","phx_reply",{"status":"error","response":{"reason":"rate limited"}}]
}

// Broadcasting from outside any channel, e.g. from an HTTP handler.
func ExampleServer_Broadcast() {
	srv := phx.NewServer(nil)
	http.HandleFunc("POST /announce", func(w http.ResponseWriter, r *http.Request) {
		err := srv.Broadcast("room:lobby", "announcement", map[string]string{"text": r.FormValue("text")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
}

// Disconnecting every connection of a user, e.g. when they log out.
func ExampleServer_Disconnect() {
	srv := phx.NewServer(&phx.Options{
		ID: func(a phx.Assigns) string { return fmt.Sprintf("users_socket:%v", a["user_id"]) },
	})
	// Later, anywhere in the program:
	if err := srv.Disconnect("users_socket:42"); err != nil {
		log.Print(err)
	}
}

// Draining on shutdown: shut down the http.Server first (it stops
// accepting, and the phx Server it serves starts closing its connections
// with 1012 at once, so clients reconnect to another instance), then wait
// for the drain with Server.Shutdown.
func ExampleServer_Shutdown() {
	srv := phx.NewServer(nil)
	httpSrv := &http.Server{Addr: "127.0.0.1:0", Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go httpSrv.ListenAndServe()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := errors.Join(
		httpSrv.Shutdown(ctx), // stops accepting; phx starts draining
		srv.Shutdown(ctx),     // waits until every channel has terminated
	)
	if err != nil {
		log.Print(err)
	}
	fmt.Println("drained")
	// Output: drained
}

// Moderated filters broadcasts per recipient with HandleOut: "new_msg"
// is intercepted, so every subscriber's channel decides what its own
// client sees.
type Moderated struct{ user string }

func (m *Moderated) Join(s *phx.Socket, p phx.Payload) (any, error) {
	m.user = s.Assigns["user"].(string)
	return nil, nil
}

func (m *Moderated) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	return nil, s.Broadcast(event, json.RawMessage(p.Data))
}

func (m *Moderated) Intercept() []string { return []string{"new_msg"} }

func (m *Moderated) HandleOut(s *phx.Socket, event string, p phx.Payload) {
	var msg struct{ To, Body string }
	p.Decode(&msg)
	if msg.To != "" && msg.To != m.user {
		return // a direct message for someone else: drop it
	}
	s.Push(event, map[string]string{"body": msg.Body, "seen_by": m.user})
}

// Intercepting outgoing broadcasts to filter or rewrite them per client.
func ExampleOutHandler() {
	srv := phx.NewServer(&phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	srv.Channel("dm:*", func() phx.Channel { return &Moderated{} })
	url, stop := serveExample(srv)
	defer stop()

	ann, bob := exampleClient(url, "ann"), exampleClient(url, "bob")
	defer ann.close()
	defer bob.close()
	ann.send(`["1","1","dm:x","phx_join",{}]`)
	ann.recv()
	bob.send(`["1","1","dm:x","phx_join",{}]`)
	bob.recv()
	ann.send(`["1","2","dm:x","new_msg",{"to":"bob","body":"psst"}]`)
	fmt.Println("bob:", bob.recv())
	fmt.Println("ann:", ann.recv()) // only the reply to her push
	// Output:
	// bob: ["1",null,"dm:x","new_msg",{"body":"psst","seen_by":"bob"}]
	// ann: ["1","2","dm:x","phx_reply",{"status":"ok","response":{}}]
}

// Lobby tracks who is online with Presence.
type Lobby struct{ presence *phx.Presence }

func (l *Lobby) Join(s *phx.Socket, p phx.Payload) (any, error) {
	user := s.Assigns["user"].(string)
	if err := l.presence.Track(s, user, map[string]any{"device": "web"}); err != nil {
		return nil, err
	}
	return nil, l.presence.PushState(s) // sent right after the join reply
}

// Tracking who is online; clients use the JS Presence class.
func ExamplePresence() {
	srv := phx.NewServer(&phx.Options{
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	presence := phx.NewPresence(srv, nil)
	srv.Channel("lobby", func() phx.Channel { return &Lobby{presence: presence} })
	url, stop := serveExample(srv)
	defer stop()

	ann := exampleClient(url, "ann")
	ann.send(`["1","1","lobby","phx_join",{}]`)
	ann.recv() // join reply
	ann.recv() // presence_state
	bob := exampleClient(url, "bob")
	bob.send(`["1","1","lobby","phx_join",{}]`)
	bob.recv()
	bob.recv()

	list := presence.List("lobby")
	fmt.Println(len(list), "online; bob's device:", list["bob"].Metas[0]["device"])
	bob.close()
	for len(presence.List("lobby")) != 1 {
		time.Sleep(time.Millisecond) // bob's entry leaves with his channel
	}
	_, stillThere := presence.List("lobby")["ann"]
	fmt.Println("after bob left:", len(presence.List("lobby")), "online, ann:", stillThere)
	ann.close()
	// Output:
	// 2 online; bob's device: web
	// after bob left: 1 online, ann: true
}

// exampleConn is a bare V2 client for the examples (phoenix.js in real life).
type exampleConn struct {
	*clienttest.Conn
	in chan []byte
}

func exampleClient(url, user string) *exampleConn {
	e := &exampleConn{in: make(chan []byte, 64)}
	c, _, err := clienttest.Dial(context.Background(), url+"?vsn=2.0.0&user="+user, nil, func(f clienttest.Frame) { e.in <- f.Data })
	if err != nil {
		log.Fatal(err)
	}
	e.Conn = c
	return e
}

func (e *exampleConn) send(frame string) { e.Write(context.Background(), []byte(frame), false) }

func (e *exampleConn) recv() string {
	select {
	case b := <-e.in:
		return string(b)
	case <-time.After(5 * time.Second):
		return "timed out"
	}
}

func (e *exampleConn) close() { e.Close() }

// serveExample mounts srv and returns its WebSocket URL and a stop func.
func serveExample(srv *phx.Server) (string, func()) {
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	return strings.Replace(hs.URL, "http", "ws", 1) + "/socket/websocket", func() {
		srv.Shutdown(context.Background())
		hs.Close()
	}
}

// A server that maps a new protocol version to its own serializer, next to
// Phoenix's defaults. The custom serializer embeds V2 and overrides Decode
// to understand one more binary frame kind (see serializer_test.go for a
// complete one).
func ExampleOptions_serializers() {
	type extendedV2 struct{ phx.Serializer }
	srv := phx.NewServer(&phx.Options{
		Serializers: append(phx.DefaultSerializers(),
			phx.VersionedSerializer{Version: "~> 2.1.0", Serializer: extendedV2{phx.V2JSONSerializer()}}),
	})
	_ = srv // mount it: mux.Handle("/socket/", srv)
}
