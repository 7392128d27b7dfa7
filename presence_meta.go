package phx

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// decodeMeta decodes a presence entry's stored meta JSON into a new Meta,
// exactly as json.Unmarshal into a map[string]any would (an empty Meta if
// it does not decode). List, Get and HandleMetas call it for every entry
// they return.
//
// Most metas are a flat object of a few strings and numbers, as
// encoding/json wrote them (no spaces): those are read here without
// reflection, two to three times faster. Anything else (a nested value,
// an escape in a string, spaces, a number out of float64's range) goes to
// json.Unmarshal, so the result never differs from its.
func decodeMeta(enc []byte) Meta {
	if m, ok := decodeFlatObject(enc); ok {
		return m
	}
	var m Meta
	if err := json.Unmarshal(enc, &m); err != nil || m == nil {
		return Meta{}
	}
	return m
}

// decodeFlatObject reads {"k":v,...} with no spaces, where every v is a
// string without escapes or control characters, a number, true, false or
// null; false for anything else.
func decodeFlatObject(b []byte) (Meta, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	m := make(Meta, 4)
	i := 1
	if b[i] == '}' {
		return m, i == len(b)-1
	}
	for {
		key, next, ok := flatString(b, i)
		if !ok || next >= len(b) || b[next] != ':' {
			return nil, false
		}
		i = next + 1
		var v any
		if v, i, ok = flatValue(b, i); !ok || i >= len(b) {
			return nil, false
		}
		m[key] = v
		switch b[i] {
		case ',':
			i++
		case '}':
			return m, i == len(b)-1
		default:
			return nil, false
		}
	}
}

// flatString reads the string starting at b[i] ('"'), which must hold no
// escape and no control character, and be valid UTF-8 (json.Unmarshal
// would replace invalid bytes).
func flatString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			if !utf8.Valid(s) {
				return "", j, false
			}
			return string(s), j + 1, true
		case c == '\\' || c < 0x20:
			return "", j, false
		}
	}
	return "", len(b), false
}

// flatValue reads a scalar value at b[i]: a string, a number (float64, as
// json.Unmarshal makes it), true, false or null.
func flatValue(b []byte, i int) (any, int, bool) {
	if i >= len(b) {
		return nil, i, false
	}
	switch c := b[i]; {
	case c == '"':
		s, j, ok := flatString(b, i)
		return s, j, ok
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		// The input is valid JSON (encoded by encoding/json, or checked
		// when it arrived from another node), so this is a JSON number;
		// out of range, json.Unmarshal fails, and decodeMeta lets it.
		f, err := strconv.ParseFloat(string(b[i:j]), 64)
		if err != nil {
			return nil, j, false
		}
		return f, j, true
	case bytes.HasPrefix(b[i:], []byte("true")):
		return true, i + 4, true
	case bytes.HasPrefix(b[i:], []byte("false")):
		return false, i + 5, true
	case bytes.HasPrefix(b[i:], []byte("null")):
		return nil, i + 4, true
	}
	return nil, i, false
}
