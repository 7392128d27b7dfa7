package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// msg is one Phoenix message (docs/protocol.md §3.1). Refs are kept as their
// string value; "" stands for null.
type msg struct {
	JoinRef string
	Ref     string
	Topic   string
	Event   string
	Payload []byte // raw JSON
}

// encodeV2 writes [join_ref, ref, topic, event, payload] (docs/protocol.md §3.2);
// an empty ref is null. payload must be a JSON value ("{}" when empty).
func encodeV2(buf []byte, m msg) []byte {
	buf = append(buf, '[')
	buf = appendRef(buf, m.JoinRef)
	buf = append(buf, ',')
	buf = appendRef(buf, m.Ref)
	buf = append(buf, ',')
	buf = strconv.AppendQuote(buf, m.Topic)
	buf = append(buf, ',')
	buf = strconv.AppendQuote(buf, m.Event)
	buf = append(buf, ',')
	buf = appendPayload(buf, m.Payload)
	return append(buf, ']')
}

// encodeV1 writes {"topic","event","payload","ref","join_ref"} (§2.3).
func encodeV1(buf []byte, m msg) []byte {
	buf = append(buf, `{"topic":`...)
	buf = strconv.AppendQuote(buf, m.Topic)
	buf = append(buf, `,"event":`...)
	buf = strconv.AppendQuote(buf, m.Event)
	buf = append(buf, `,"payload":`...)
	buf = appendPayload(buf, m.Payload)
	buf = append(buf, `,"ref":`...)
	buf = appendRef(buf, m.Ref)
	if m.JoinRef != "" {
		buf = append(buf, `,"join_ref":`...)
		buf = appendRef(buf, m.JoinRef)
	}
	return append(buf, '}')
}

func appendRef(buf []byte, ref string) []byte {
	if ref == "" {
		return append(buf, "null"...)
	}
	return strconv.AppendQuote(buf, ref)
}

func appendPayload(buf, p []byte) []byte {
	if len(p) == 0 {
		return append(buf, "{}"...)
	}
	return append(buf, p...)
}

var errBadFrame = errors.New("malformed frame")

// decodeV2 parses a V2 text frame. Refs, topic and event are short ASCII
// strings in practice: they are scanned by hand, with encoding/json only for
// strings holding escapes. The payload is returned as a slice of data.
func decodeV2(data []byte) (m msg, err error) {
	p := skipWS(data, 0)
	if p >= len(data) || data[p] != '[' {
		return m, errBadFrame
	}
	p++
	var fields [4]string
	for i := range fields {
		p = skipWS(data, p)
		fields[i], p, err = scanScalar(data, p)
		if err != nil {
			return m, err
		}
		p = skipWS(data, p)
		if p >= len(data) || data[p] != ',' {
			return m, errBadFrame
		}
		p++
	}
	p = skipWS(data, p)
	end := bytes.LastIndexByte(data, ']')
	if end < p {
		return m, errBadFrame
	}
	payload := bytes.TrimRight(data[p:end], " \t\r\n")
	if len(payload) == 0 {
		return m, errBadFrame
	}
	return msg{JoinRef: fields[0], Ref: fields[1], Topic: fields[2], Event: fields[3], Payload: payload}, nil
}

// scanScalar reads a JSON string, number or null at p: strings without
// escapes are taken directly, numbers as their text, null as "".
func scanScalar(data []byte, p int) (string, int, error) {
	if p >= len(data) {
		return "", p, errBadFrame
	}
	switch c := data[p]; {
	case c == '"':
		for q := p + 1; q < len(data); q++ {
			switch data[q] {
			case '"':
				return string(data[p+1 : q]), q + 1, nil
			case '\\':
				return scanEscaped(data, p)
			}
		}
		return "", p, errBadFrame
	case c == 'n':
		if bytes.HasPrefix(data[p:], []byte("null")) {
			return "", p + 4, nil
		}
	case c == '-' || (c >= '0' && c <= '9'):
		q := p + 1
		for q < len(data) && bytes.IndexByte([]byte("0123456789.eE+-"), data[q]) >= 0 {
			q++
		}
		return string(data[p:q]), q, nil
	}
	return "", p, errBadFrame
}

func scanEscaped(data []byte, p int) (string, int, error) {
	// Find the closing quote, skipping escaped characters.
	q := p + 1
	for q < len(data) {
		switch data[q] {
		case '\\':
			q += 2
			continue
		case '"':
			var s string
			if err := json.Unmarshal(data[p:q+1], &s); err != nil {
				return "", p, errBadFrame
			}
			return s, q + 1, nil
		}
		q++
	}
	return "", p, errBadFrame
}

func skipWS(data []byte, p int) int {
	for p < len(data) {
		switch data[p] {
		case ' ', '\t', '\r', '\n':
			p++
		default:
			return p
		}
	}
	return p
}

// decodeV1 parses a V1 object frame.
func decodeV1(data []byte) (msg, error) {
	var f struct {
		Topic   string          `json:"topic"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
		Ref     json.RawMessage `json:"ref"`
		JoinRef json.RawMessage `json:"join_ref"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return msg{}, errBadFrame
	}
	return msg{JoinRef: rawRef(f.JoinRef), Ref: rawRef(f.Ref), Topic: f.Topic, Event: f.Event, Payload: f.Payload}, nil
}

func rawRef(r json.RawMessage) string {
	if len(r) == 0 || string(r) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	return string(r)
}

// replyStatus returns the status of a phx_reply payload
// {"status":..,"response":..}.
func replyStatus(payload []byte) (status string, response []byte) {
	var r struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	if json.Unmarshal(payload, &r) != nil {
		return "", nil
	}
	return r.Status, r.Response
}

// The stamp: the text the publisher puts in the payload (where the payload
// template says {stamp}) and every receiver looks for in what arrives, so
// that any server that passes the text on (e.g. echoes a message body) can
// be measured: "phxbench:<run>:<seq>:<unix nanos>:" then padding to the
// requested size.
const stampPrefix = "phxbench:"

// makeStamp returns the stamp for message seq sent at nanos, padded with
// 'x' to at least size bytes.
func makeStamp(run string, seq int, nanos int64, size int) []byte {
	b := make([]byte, 0, max(size, 48))
	b = append(b, stampPrefix...)
	b = append(b, run...)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, nanos, 10)
	b = append(b, ':')
	for len(b) < size {
		b = append(b, 'x')
	}
	return b
}

// findStamps calls f for every stamp of run in data (a frame may carry
// several messages, e.g. batched protocols), with its seq and send time.
func findStamps(data []byte, run string, f func(seq int, nanos int64)) int {
	n := 0
	for {
		i := bytes.Index(data, []byte(stampPrefix))
		if i < 0 {
			return n
		}
		data = data[i+len(stampPrefix):]
		if !bytes.HasPrefix(data, []byte(run)) || len(data) <= len(run) || data[len(run)] != ':' {
			continue
		}
		rest := data[len(run)+1:]
		seq, rest, ok := scanInt(rest)
		if !ok {
			continue
		}
		nanos, _, ok := scanInt(rest)
		if !ok {
			continue
		}
		f(int(seq), nanos)
		n++
	}
}

// scanInt reads digits up to a ':'.
func scanInt(b []byte) (int64, []byte, bool) {
	var v int64
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ':' {
		return 0, b, false
	}
	return v, b[i+1:], true
}

// payloadWithStamp expands the payload template: {stamp} becomes the stamp
// (JSON-safe: ASCII letters, digits, ':' and 'x'), {i} the client number.
func payloadWithStamp(tmpl string, stamp []byte) []byte {
	i := bytes.Index([]byte(tmpl), []byte("{stamp}"))
	if i < 0 {
		return []byte(tmpl)
	}
	out := make([]byte, 0, len(tmpl)+len(stamp))
	out = append(out, tmpl[:i]...)
	out = append(out, stamp...)
	return append(out, tmpl[i+len("{stamp}"):]...)
}
