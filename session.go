package phx

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime/debug"
)

// CSRFParam is the connect parameter that carries the page's CSRF token
// when [Options.LoadSession] is set: "_csrf_token", the name Phoenix reads.
// With phoenix.js:
//
//	new Socket("/socket", {params: {_csrf_token: csrfTokenFromThePage}})
const CSRFParam = "_csrf_token"

// A Session is what [Options.LoadSession] reads from a handshake's HTTP
// request, usually from its session cookie.
type Session struct {
	// Value is the application's session (a user ID, a struct); it reaches
	// Connect as [ConnectInfo.Session] once the CSRF check passed.
	Value any
	// CSRFToken is the CSRF token stored in this session, the one the
	// page was rendered with. A session without one is never handed to
	// Connect: the check fails closed.
	CSRFToken string
}

// Reasons a session read by [Options.LoadSession] was not handed to
// Connect; they are logged, and Connect sees [ConnectInfo.Session] nil.
var (
	// ErrCSRFTokenInvalid: the connect params carry no CSRFParam, carry it
	// more than once, or carry one that is not the session's.
	ErrCSRFTokenInvalid = errors.New("phx: CSRF token missing or invalid")
	// ErrSessionWithoutCSRFToken: LoadSession returned a session whose
	// CSRFToken is empty.
	ErrSessionWithoutCSRFToken = errors.New("phx: session has no CSRF token")
)

// loadSession sets info.Session from Options.LoadSession: the session's
// value when the connect params carry the session's CSRF token, nil
// otherwise (fail closed, as Phoenix drops a session whose token does not
// match). Nothing happens without LoadSession or without a request.
func (s *Server) loadSession(info *ConnectInfo) {
	if s.opts.LoadSession == nil || info.Request == nil {
		return
	}
	sess, err := s.callLoadSession(info)
	if err == nil && sess != nil {
		err = checkCSRF(info.Params[CSRFParam], sess.CSRFToken)
	}
	if err != nil {
		s.log.Info("phx: session not handed to Connect", "err", err, "transport", info.Transport, "remote", info.RemoteAddr)
		return
	}
	if sess != nil {
		info.Session = sess.Value
	}
}

func (s *Server) callLoadSession(info *ConnectInfo) (sess *Session, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("phx: LoadSession panicked", "panic", v, "stack", string(debug.Stack()))
			sess, err = nil, fmt.Errorf("phx: LoadSession panicked: %v", v)
		}
	}()
	sess, err = s.opts.LoadSession(info.Request)
	if err != nil {
		return nil, fmt.Errorf("phx: LoadSession: %w", err)
	}
	return sess, nil
}

// checkCSRF compares the token the client sent with the session's, in
// constant time.
func checkCSRF(sent []string, want string) error {
	if want == "" {
		return ErrSessionWithoutCSRFToken
	}
	if len(sent) != 1 || subtle.ConstantTimeCompare([]byte(sent[0]), []byte(want)) != 1 {
		return ErrCSRFTokenInvalid
	}
	return nil
}
