package phx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/token"
)

// A cookie-authenticated socket, as Phoenix's connect_info: [session: ...]:
// the login handler stores the user and a CSRF token in a signed cookie and
// renders the token into the page; the page passes it in the connect params
// (phoenix.js: params: {_csrf_token: token}); LoadSession reads the cookie
// back, and Connect sees the session only when the two tokens agree.
func ExampleOptions_loadSession() {
	type session struct {
		User string `json:"user"`
		CSRF string `json:"csrf"`
	}
	signer, err := token.NewSigner([]byte("a secret of at least thirty-two bytes!"), "session cookie", nil)
	if err != nil {
		panic(err)
	}
	srv := phx.NewServer(&phx.Options{
		LoadSession: func(r *http.Request) (*phx.Session, error) {
			c, err := r.Cookie("session")
			if errors.Is(err, http.ErrNoCookie) {
				return nil, nil // not logged in
			}
			var s session
			if err := signer.Verify(c.Value, &s); err != nil {
				return nil, err
			}
			return &phx.Session{Value: s.User, CSRFToken: s.CSRF}, nil
		},
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			user, ok := info.Session.(string)
			if !ok {
				return nil, errors.New("not logged in")
			}
			return phx.Assigns{"user": user}, nil
		},
	})
	defer srv.Shutdown(context.Background())

	// What the login handler would set and render (a real one makes the
	// CSRF token with crypto/rand, once per session).
	cookie, err := signer.Sign(session{User: "ann", CSRF: "k3Jz9"})
	if err != nil {
		panic(err)
	}
	open := func(csrf string) string {
		r := httptest.NewRequest("GET", "/socket/longpoll?vsn=2.0.0&_csrf_token="+csrf, nil)
		r.AddCookie(&http.Cookie{Name: "session", Value: cookie})
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return strings.TrimSpace(w.Body.String())[:13] // {"status":NNN
	}
	fmt.Println("page's token:", open("k3Jz9"))
	fmt.Println("no token:    ", open(""))
	fmt.Println("forged token:", open("guess"))
	// Output:
	// page's token: {"status":410
	// no token:     {"status":403
	// forged token: {"status":403
}
