package phx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// upper is a raw socket with a protocol of its own: it greets, then answers
// every text message in upper case.
type upper struct{}

func (upper) Init(c *phx.RawConn) error {
	return c.Push(phx.RawMessage{Data: []byte("hello")})
}

func (upper) HandleIn(c *phx.RawConn, m phx.RawMessage) error {
	return c.Push(phx.RawMessage{Data: []byte(strings.ToUpper(string(m.Data)))})
}

// A raw socket (Phoenix.Socket.Transport) next to the channel sockets of
// the same server: same checks, limits, drain and telemetry, no channels.
func ExampleServer_RawSocketHandler() {
	srv := phx.NewServer(nil)
	defer srv.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	mux.Handle("/raw/", srv.RawSocketHandler(func(info *phx.ConnectInfo) (phx.RawSocket, error) {
		return upper{}, nil
	}))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/raw/websocket", nil)
	if err != nil {
		panic(err)
	}
	defer ws.CloseNow()
	_, greeting, _ := ws.Read(ctx)
	_ = ws.Write(ctx, websocket.MessageText, []byte("shout"))
	_, answer, _ := ws.Read(ctx)
	fmt.Println(string(greeting), string(answer))
	// Output: hello SHOUT
}
