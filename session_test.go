package phx_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// The session reaches Connect only with the session's own CSRF token in the
// params; every other case fails closed (Session nil), on Accept and over
// the WebSocket and long-poll handshakes.
func TestLoadSession(t *testing.T) {
	t.Parallel()
	loaders := map[string]func(*http.Request) (*phx.Session, error){
		"cookie": func(r *http.Request) (*phx.Session, error) {
			c, err := r.Cookie("sid")
			if err != nil {
				return nil, nil
			}
			switch c.Value {
			case "ann":
				return &phx.Session{Value: "ann", CSRFToken: "tok-ann"}, nil
			case "notoken":
				return &phx.Session{Value: "notoken"}, nil
			case "broken":
				return nil, errors.New("bad signature")
			case "panic":
				panic("loader bug")
			}
			return nil, nil
		},
	}
	var seen = make(chan any, 1)
	srv, err := phx.New(&phx.Options{
		LoadSession: loaders["cookie"],
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			seen <- info.Session
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	cases := []struct {
		name   string
		cookie string
		params url.Values
		want   any
	}{
		{"no cookie", "", url.Values{"_csrf_token": {"tok-ann"}}, nil},
		{"cookie and its token", "ann", url.Values{"_csrf_token": {"tok-ann"}}, "ann"},
		{"cookie, no token", "ann", url.Values{}, nil},
		{"cookie, empty token", "ann", url.Values{"_csrf_token": {""}}, nil},
		{"cookie, forged token", "ann", url.Values{"_csrf_token": {"tok-bob"}}, nil},
		{"cookie, token prefix", "ann", url.Values{"_csrf_token": {"tok-an"}}, nil},
		{"cookie, token twice", "ann", url.Values{"_csrf_token": {"tok-ann", "tok-ann"}}, nil},
		{"session without a token", "notoken", url.Values{"_csrf_token": {""}}, nil},
		{"loader error", "broken", url.Values{"_csrf_token": {"tok-ann"}}, nil},
		{"loader panic", "panic", url.Values{"_csrf_token": {"tok-ann"}}, nil},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/socket/websocket", nil)
		if tc.cookie != "" {
			r.AddCookie(&http.Cookie{Name: "sid", Value: tc.cookie})
		}
		tc.params.Set("vsn", "2.0.0")
		c, err := srv.Accept(&phx.ConnectInfo{Context: t.Context(), Request: r, Header: r.Header, Params: tc.params, Transport: "test"})
		if err != nil {
			t.Fatalf("%s: Accept: %v", tc.name, err)
		}
		c.Close(1000, "") // never served
		if got := <-seen; got != tc.want {
			t.Errorf("%s: Connect saw Session %v, want %v", tc.name, got, tc.want)
		}
	}
	// Without a request (phxtest, custom transports), LoadSession does not run.
	c, err := srv.Accept(&phx.ConnectInfo{Context: t.Context(), Params: url.Values{"vsn": {"2.0.0"}}, Transport: "test"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close(1000, "")
	if got := <-seen; got != nil {
		t.Errorf("no request: Session %v", got)
	}
}

// Over both real transports: the cookie and the token travel as browsers
// send them (Cookie header, query parameter).
func TestLoadSessionTransports(t *testing.T) {
	t.Parallel()
	ts, _ := newRoomServer(t, lpOptions(&phx.Options{
		LoadSession: func(r *http.Request) (*phx.Session, error) {
			if c, err := r.Cookie("sid"); err == nil && c.Value == "ann" {
				return &phx.Session{Value: "ann", CSRFToken: "tok-ann"}, nil
			}
			return nil, nil
		},
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			user, ok := info.Session.(string)
			if !ok {
				return nil, errors.New("no session")
			}
			return phx.Assigns{"user": user}, nil
		},
	}))
	cookie := http.Header{"Cookie": {"sid=ann"}}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"vsn=2.0.0&_csrf_token=tok-ann", 101},
		{"vsn=2.0.0&_csrf_token=forged", 403},
		{"vsn=2.0.0", 403},
	} {
		c, err := tryDial(t, ts.url, tc.query, &websocket.DialOptions{HTTPHeader: cookie})
		got := 101
		if err != nil {
			var de *dialError
			if !errorsAs(err, &de) {
				t.Fatal(err)
			}
			got = de.status
		} else {
			c.join("room:s", "1", map[string]any{})
			c.conn.CloseNow()
		}
		if got != tc.want {
			t.Errorf("websocket %s: HTTP %d, want %d", tc.query, got, tc.want)
		}
		lp := lpDo(t, ts, "GET", lpURL(ts)+"?"+tc.query, map[string]string{"Cookie": "sid=ann"}, "")
		if want := map[int]int{101: 410, 403: 403}[tc.want]; lp.Status != want {
			t.Errorf("longpoll %s: %s, want status %d", tc.query, lp.raw, want)
		}
	}
}
