package wire

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Message is one decoded client message; phx.Message has the same fields.
// JoinRef, Ref and Payload.Data share memory with the frame.
type Message struct {
	JoinRef Ref
	Ref     Ref
	Topic   string
	Event   string
	Payload Payload
}

// Ref is a ref as the client sent it, the raw JSON token (`"3"`, `12`); nil
// means null. phx.Ref documents it for users; it converts to and from this
// type for free.
type Ref []byte

// IsNull reports whether r means "no ref": nil, `null`, or the empty JSON
// string `""` (nshafer/phx sends "" instead of null).
func (r Ref) IsNull() bool {
	return len(r) == 0 || string(r) == "null" || string(r) == `""`
}

// String returns the text of the ref: `"3"` gives 3, `12` gives 12, and a
// null ref gives the empty string. It is the form written in binary frames.
func (r Ref) String() string {
	if r.IsNull() {
		return ""
	}
	if r[0] != '"' {
		return string(r)
	}
	if s, ok := unquote(r); ok {
		return s
	}
	return string(r) // not a valid JSON string: show it as is
}

// Equal reports whether r and o are the same token byte for byte. All null
// forms (see [Ref.IsNull]) are equal to each other.
func (r Ref) Equal(o Ref) bool {
	if r.IsNull() || o.IsNull() {
		return r.IsNull() && o.IsNull()
	}
	return bytes.Equal(r, o)
}

// StringRef returns the JSON string token for s, as used for the refs of
// binary frames (which carry refs as strings).
func StringRef(s string) Ref {
	return Ref(AppendJSONString(make([]byte, 0, len(s)+2), s))
}

// CheckRef returns an error if r is neither nil nor a single JSON string,
// number or null token, so that encoders never write invalid JSON.
func CheckRef(field string, r Ref) error {
	if len(r) == 0 {
		return nil
	}
	s := scanner{data: r}
	ok := false
	switch c := r[0]; {
	case c == '"':
		_, err := s.scanString()
		ok = err == nil
	case c == '-' || isDigit(c):
		ok = s.scanNumber() == nil
	case c == 'n':
		ok = s.scanLiteral("null") == nil
	}
	if !ok || s.pos != len(r) || !utf8.Valid(r) {
		return malformed("%s %q is not a JSON string, number or null", field, []byte(r))
	}
	return nil
}

// malformed returns an error wrapping ErrMalformed that says what is wrong.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
