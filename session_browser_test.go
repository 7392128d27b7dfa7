package phx_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/internal/nodetest"
	"github.com/phxgo/phx/token"
)

// sessionPage is the page of TestSessionCSRFInChromium: it connects with
// the official client, passing the CSRF token rendered into it (or the one
// in ?csrf= when the test forges one), over WebSocket or, with ?lp=1,
// long-poll, and records the outcome on <body>.
var sessionPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta name="csrf-token" content="{{.}}"></head>
<body data-state="loading">
<script type="module">
import {Socket, LongPoll} from "/phoenix.mjs"
const q = new URLSearchParams(location.search)
const csrf = q.has("csrf") ? q.get("csrf") : document.querySelector("meta[name=csrf-token]").content
const socket = new Socket("/socket", {
  params: {_csrf_token: csrf},
  transport: q.has("lp") ? LongPoll : WebSocket,
  reconnectAfterMs: () => 60000,
})
socket.onError(() => { if(document.body.dataset.state !== "joined"){ document.body.dataset.state = "refused" } })
socket.connect()
socket.channel("room:lobby").join().receive("ok", reply => {
  document.body.dataset.user = reply.user
  document.body.dataset.state = "joined"
})
</script></body></html>`))

// sessionApp is a cookie-session app in the way the ExampleOptions_loadSession
// describes: /login signs {user, csrf} into a cookie, / renders the CSRF
// token, LoadSession reads the cookie back.
type sessionApp struct {
	signer *token.Signer
	srv    *phx.Server

	mu       sync.Mutex
	accepted []string // "user/transport" per accepted connection
	refused  int
}

type sessionCookie struct {
	User string `json:"user"`
	CSRF string `json:"csrf"`
}

func newSessionApp(t *testing.T) *httptest.Server {
	signer, err := token.NewSigner(bytes.Repeat([]byte("k"), 32), "session", nil)
	if err != nil {
		t.Fatal(err)
	}
	app := &sessionApp{signer: signer}
	app.srv = phx.NewServer(&phx.Options{
		LoadSession: app.loadSession,
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			app.mu.Lock()
			defer app.mu.Unlock()
			user, ok := info.Session.(string)
			if !ok {
				app.refused++
				return nil, errors.New("not logged in")
			}
			app.accepted = append(app.accepted, user+"/"+info.Transport)
			return phx.Assigns{"user": user}, nil
		},
	})
	app.srv.Channel("room:*", func() phx.Channel { return sessionRoom{} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", app.srv)
	mux.HandleFunc("GET /phoenix.mjs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, filepath.Join(interopDir, "node_modules", "phoenix", "priv", "static", "phoenix.mjs"))
	})
	mux.HandleFunc("GET /login", app.login)
	mux.HandleFunc("GET /{$}", app.page)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ts.Close()
		_ = app.srv.Shutdown(context.Background())
	})
	t.Cleanup(func() {
		app.mu.Lock()
		defer app.mu.Unlock()
		if t.Failed() {
			return
		}
		// What the script did (see session_browser.mjs): ann over WebSocket
		// and long-poll, bob over WebSocket; every other attempt refused.
		slices.Sort(app.accepted)
		if want := []string{"ann/longpoll", "ann/websocket", "bob/websocket"}; !slices.Equal(app.accepted, want) {
			t.Errorf("accepted %v, want %v", app.accepted, want)
		}
		if app.refused < 5 {
			t.Errorf("%d refused connection attempts, want at least 5 (one per refused page)", app.refused)
		}
	})
	return ts
}

func (a *sessionApp) loadSession(r *http.Request) (*phx.Session, error) {
	c, err := r.Cookie("session")
	if errors.Is(err, http.ErrNoCookie) {
		return nil, nil
	}
	var s sessionCookie
	if err := a.signer.Verify(c.Value, &s); err != nil {
		return nil, err
	}
	return &phx.Session{Value: s.User, CSRFToken: s.CSRF}, nil
}

func (a *sessionApp) login(w http.ResponseWriter, r *http.Request) {
	b := make([]byte, 18)
	rand.Read(b)
	v, err := a.signer.Sign(sessionCookie{User: r.URL.Query().Get("user"), CSRF: base64.RawURLEncoding.EncodeToString(b)})
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "session", Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusFound)
}

func (a *sessionApp) page(w http.ResponseWriter, r *http.Request) {
	csrf := ""
	if sess, err := a.loadSession(r); err == nil && sess != nil {
		csrf = sess.CSRFToken
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = sessionPage.Execute(w, csrf)
}

type sessionRoom struct{}

func (sessionRoom) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	return map[string]any{"user": s.Assigns["user"]}, nil
}

// TestSessionCSRFInChromium drives a cookie-session app with real headless
// Chromium and the official client: a logged-in page connects with its
// CSRF token over WebSocket and long-poll and Connect sees the session; the
// same cookie with no token, a forged token, or another session's token is
// refused, and so is a page without a cookie.
func TestSessionCSRFInChromium(t *testing.T) {
	t.Parallel()
	const chromium = "/usr/bin/chromium"
	node, flags := nodetest.Require(t, "session browser test",
		filepath.Join(interopDir, "node_modules", "phoenix", "package.json"),
		filepath.Join(interopDir, "node_modules", "playwright-core", "package.json"))
	if _, err := os.Stat(chromium); err != nil {
		nodetest.Missing(t, "session browser test", chromium+" is missing (apt-get install chromium)")
	}
	ts := newSessionApp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append(slices.Clone(flags), filepath.Join(interopDir, "session_browser.mjs"), ts.URL)...)
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("session_browser.mjs: %v\n%s", err, out.String())
	}
	t.Log(out.String())
}
