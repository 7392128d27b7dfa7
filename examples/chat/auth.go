package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/token"
)

// tokenMaxAge is how long a token from /api/token lets its holder connect.
const tokenMaxAge = 24 * time.Hour

// tokenSalt separates these tokens from any other use of the secret.
const tokenSalt = "chat user socket"

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// validUser reports whether name is a user name: 1 to 32 ASCII letters,
// digits, '_' or '-'.
func validUser(name string) bool { return userNameRE.MatchString(name) }

// tokenData is what a token carries.
type tokenData struct {
	User string `json:"user"`
}

// auth issues the tokens that authenticate socket connections, and checks
// them when a client connects.
//
// This demo has no passwords: anyone may get a token for any free-form name.
// A real application would issue the token only to a logged-in user (for
// example by rendering it into the page), and the rest would stay the same.
type auth struct {
	signer *token.Signer
}

func newAuth(secret []byte, now func() time.Time) (*auth, error) {
	s, err := token.NewSigner(secret, tokenSalt, &token.Options{MaxAge: tokenMaxAge, Now: now})
	if err != nil {
		return nil, err
	}
	return &auth{signer: s}, nil
}

// handleToken serves POST /api/token with {"user":"NAME"} and
// GET /api/token?user=NAME: it replies {"token":"..."} for a valid name, or
// 400 {"error":"..."}.
func (a *auth) handleToken(w http.ResponseWriter, r *http.Request) {
	var user string
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		var in struct {
			User string `json:"user"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, jsonError{`invalid request body: want JSON {"user":"NAME"}`})
			return
		}
		user = in.User
	} else {
		user = r.URL.Query().Get("user")
	}
	if !validUser(user) {
		writeJSON(w, http.StatusBadRequest, jsonError{"invalid user name: use 1 to 32 letters, digits, _ or -"})
		return
	}
	tok, err := a.signer.Sign(tokenData{User: user})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, jsonError{"cannot make a token"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// connect is the socket's Connect hook: the client must send a valid token
// from /api/token as the "token" parameter. A refusal gets HTTP 403.
func (a *auth) connect(info *phx.ConnectInfo) (phx.Assigns, error) {
	var d tokenData
	if err := a.signer.Verify(info.Params.Get("token"), &d); err != nil {
		return nil, fmt.Errorf("chat: token refused: %w", err)
	}
	if !validUser(d.User) {
		return nil, errors.New("chat: token for an invalid user name")
	}
	// The chat's channels need no value of the upgrade request's context:
	// a connection that does not keep it is about 0.3 KiB smaller for its
	// life. (An app tracing with phxotel keeps it, the default.)
	info.Context = context.Background()
	return phx.Assigns{"user": d.User}, nil
}

// socketID names a user's connections, so that the server could close them
// all with Server.Disconnect (e.g. when the user logs out).
func socketID(a phx.Assigns) string {
	user, _ := a["user"].(string)
	return "users_socket:" + user
}

// jsonError is the body of the HTTP API's error responses.
type jsonError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
