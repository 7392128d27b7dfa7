package wire

import (
	"encoding/base64"
	"errors"
	"strings"
)

// AuthTokenPrefix marks the Sec-WebSocket-Protocol element in which
// phoenix.js (1.8+, the authToken socket option) sends a token: the prefix,
// then the token in base64url. The client offers "phoenix" next to it, and the
// server answers with "phoenix".
const AuthTokenPrefix = "base64url.bearer.phx."

// maxAuthTokenLen bounds the encoded token, so a huge header cannot make the
// server decode megabytes.
const maxAuthTokenLen = 8 << 10

// ExtractAuthToken finds the authToken element among the offered
// subprotocols, decodes it (standard or URL-safe base64, padded or not) and
// returns the others. More than one token element is an error.
func ExtractAuthToken(offered []string) (token string, rest []string, err error) {
	found := false
	for _, p := range offered {
		enc, ok := strings.CutPrefix(p, AuthTokenPrefix)
		if !ok {
			rest = append(rest, p)
			continue
		}
		if found {
			return "", nil, errors.New("phx: more than one auth token subprotocol")
		}
		found = true
		if len(enc) > maxAuthTokenLen {
			return "", nil, errors.New("phx: auth token too long")
		}
		b, err := decodeBase64Any(enc)
		if err != nil {
			return "", nil, errors.New("phx: auth token is not base64")
		}
		token = string(b)
	}
	return token, rest, nil
}

// decodeBase64Any decodes standard or URL-safe base64, padded or not.
func decodeBase64Any(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// AuthTokenProtocol returns the subprotocol element that carries token, as
// phoenix.js builds it: standard base64 without padding, despite the
// prefix's name (the client half of ExtractAuthToken).
func AuthTokenProtocol(token string) string {
	return AuthTokenPrefix + base64.RawStdEncoding.EncodeToString([]byte(token))
}
