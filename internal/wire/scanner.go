package wire

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// scanner is a strict JSON scanner over one frame. It validates syntax; the
// caller has already checked that the frame is valid UTF-8.
type scanner struct {
	data []byte
	pos  int
}

// peek returns the current byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) skipWS() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// found describes what is at the current position, for error messages.
func (s *scanner) found() string {
	return JSONKind(s.data, s.pos)
}

// JSONKind names the kind of JSON value starting at data[pos].
func JSONKind(data []byte, pos int) string {
	if pos >= len(data) {
		return "end of input"
	}
	switch c := data[pos]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '-' || isDigit(c):
		return "a number"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		r, _ := utf8.DecodeRune(data[pos:])
		return fmt.Sprintf("%q at offset %d", r, pos)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ref scans a join_ref or ref: a string, a number or null (nil).
func (s *scanner) ref(field string) (Ref, error) {
	start := s.pos
	switch c := s.peek(); {
	case c == '"':
		escaped, err := s.scanString()
		if err != nil {
			return nil, err
		}
		n := s.pos - start - 2
		if escaped {
			str, ok := unquote(s.data[start:s.pos])
			if !ok {
				return nil, malformed("%s at offset %d is not valid Unicode", field, start)
			}
			n = len(str)
		}
		if n > MaxFieldLen {
			return nil, malformed("%s is %d bytes, limit %d", field, n, MaxFieldLen)
		}
	case c == '-' || isDigit(c):
		if err := s.scanNumber(); err != nil {
			return nil, err
		}
		if n := s.pos - start; n > MaxFieldLen {
			return nil, malformed("%s is %d bytes, limit %d", field, n, MaxFieldLen)
		}
	case c == 'n':
		if err := s.scanLiteral("null"); err != nil {
			return nil, err
		}
		return nil, nil
	default:
		return nil, malformed("%s must be a string, a number or null, found %s", field, s.found())
	}
	return Ref(s.data[start:s.pos:s.pos]), nil
}

// metaString scans a topic or event: a JSON string of valid Unicode, at most
// maxFieldLen bytes once decoded.
func (s *scanner) metaString(field string) (metaField, error) {
	if s.peek() != '"' {
		return metaField{}, malformed("%s must be a string, found %s", field, s.found())
	}
	start := s.pos
	escaped, err := s.scanString()
	if err != nil {
		return metaField{}, err
	}
	f := metaField{raw: s.data[start+1 : s.pos-1]}
	n := len(f.raw)
	if escaped {
		var ok bool
		if f.str, ok = unquote(s.data[start:s.pos]); !ok {
			return metaField{}, malformed("%s at offset %d is not valid Unicode", field, start)
		}
		f.decoded, n = true, len(f.str)
	}
	if n > MaxFieldLen {
		return metaField{}, malformed("%s is %d bytes, limit %d", field, n, MaxFieldLen)
	}
	return f, nil
}

// scanString scans the string starting at s.pos (a '"') and reports whether
// it contains escapes. Control characters must be escaped.
func (s *scanner) scanString() (escaped bool, err error) {
	start := s.pos
	i := s.pos + 1
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(s.data) {
				return false, malformed("unterminated string at offset %d", start)
			}
			switch s.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s.data) || !isHex4(s.data[i+2:i+6]) {
					return false, malformed("invalid \\u escape at offset %d", i)
				}
				i += 6
			default:
				return false, malformed("invalid escape at offset %d", i)
			}
		case c < 0x20:
			return false, malformed("control character in string at offset %d", i)
		default:
			i++
		}
	}
	return false, malformed("unterminated string at offset %d", start)
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// scanNumber scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) scanNumber() error {
	start := s.pos
	i := s.pos
	d := s.data
	bad := func() error { return malformed("invalid number at offset %d", start) }
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && isDigit(d[i]):
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return bad()
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return bad()
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return bad()
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	s.pos = i
	return nil
}

// scanLiteral scans true, false or null.
func (s *scanner) scanLiteral(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return malformed("invalid literal at offset %d", s.pos)
	}
	s.pos += len(lit)
	return nil
}

// skipValue scans one JSON value of any kind. depth is the nesting depth of
// the containers around it, counted from the value being checked (what).
func (s *scanner) skipValue(what string, depth int) error {
	switch c := s.peek(); {
	case c == '"':
		_, err := s.scanString()
		return err
	case c == '-' || isDigit(c):
		return s.scanNumber()
	case c == 't':
		return s.scanLiteral("true")
	case c == 'f':
		return s.scanLiteral("false")
	case c == 'n':
		return s.scanLiteral("null")
	case c == '{' || c == '[':
		if depth >= MaxPayloadDepth {
			return malformed("%s is nested deeper than %d levels", what, MaxPayloadDepth)
		}
		return s.skipContainer(what, depth+1)
	default:
		return malformed("%s: expected a JSON value, found %s", what, s.found())
	}
}

// skipContainer scans an object or array whose opening byte is at s.pos.
func (s *scanner) skipContainer(what string, depth int) error {
	isObject := s.data[s.pos] == '{'
	end := byte(']')
	if isObject {
		end = '}'
	}
	s.pos++
	s.skipWS()
	if s.peek() == end {
		s.pos++
		return nil
	}
	for {
		s.skipWS()
		if isObject {
			if s.peek() != '"' {
				return malformed("%s: expected an object key at offset %d, found %s", what, s.pos, s.found())
			}
			if _, err := s.scanString(); err != nil {
				return err
			}
			s.skipWS()
			if s.peek() != ':' {
				return malformed("%s: expected ':' at offset %d, found %s", what, s.pos, s.found())
			}
			s.pos++
			s.skipWS()
		}
		if err := s.skipValue(what, depth); err != nil {
			return err
		}
		s.skipWS()
		switch s.peek() {
		case ',':
			s.pos++
		case end:
			s.pos++
			return nil
		default:
			return malformed("%s: expected ',' or %q at offset %d, found %s", what, end, s.pos, s.found())
		}
	}
}
