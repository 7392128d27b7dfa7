package phx

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// ---------------------------------------------------------------------------
// Payloads

func TestToPayload(t *testing.T) {
	t.Parallel()
	type room struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	var nilMap map[string]any
	var nilPtr *room
	cases := []struct {
		name    string
		in      any
		want    Payload
		wantErr error
	}{
		{"nil", nil, jp(`{}`), nil},
		{"map", map[string]any{"b": 1, "a": "<x>"}, jp(`{"a":"\u003cx\u003e","b":1}`), nil},
		{"empty map", map[string]int{}, jp(`{}`), nil},
		{"struct", room{"lobby", 2}, jp(`{"name":"lobby","count":2}`), nil},
		{"struct pointer", &room{"x", 1}, jp(`{"name":"x","count":1}`), nil},
		{"raw object", json.RawMessage(` {"a": 1} `), jp(` {"a": 1} `), nil},
		{"raw empty object", json.RawMessage(`{}`), jp(`{}`), nil},
		{"binary", Binary{1, 2, 3}, bp(1, 2, 3), nil},
		{"empty binary", Binary{}, bp(), nil},
		{"payload json", jp(`{"x":[1]}`), jp(`{"x":[1]}`), nil},
		{"payload binary", bp(7), bp(7), nil},
		{"zero payload", Payload{}, jp(`{}`), nil},
		{"raw array", json.RawMessage(`[1]`), Payload{}, ErrInvalidPayload},
		{"raw string", json.RawMessage(`"s"`), Payload{}, ErrInvalidPayload},
		{"raw null", json.RawMessage(`null`), Payload{}, ErrInvalidPayload},
		{"raw empty", json.RawMessage(``), Payload{}, ErrInvalidPayload},
		{"raw invalid", json.RawMessage(`{"a":}`), Payload{}, ErrInvalidPayload},
		{"raw trailing", json.RawMessage(`{}{}`), Payload{}, ErrInvalidPayload},
		{"raw bad UTF-8", json.RawMessage("{\"a\":\"\xff\"}"), Payload{}, ErrInvalidPayload},
		{"payload array", jp(`[1]`), Payload{}, ErrInvalidPayload},
		{"payload invalid", jp(`{`), Payload{}, ErrInvalidPayload},
		{"slice", []int{1, 2}, Payload{}, ErrInvalidPayload},
		{"byte slice", []byte(`{}`), Payload{}, ErrInvalidPayload},
		{"string", "hello", Payload{}, ErrInvalidPayload},
		{"json text in string", `{"a":1}`, Payload{}, ErrInvalidPayload},
		{"number", 42, Payload{}, ErrInvalidPayload},
		{"nil map", nilMap, Payload{}, ErrInvalidPayload},
		{"nil struct pointer", nilPtr, Payload{}, ErrInvalidPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toPayload(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("toPayload(%#v) = (%v, %v), want error %v", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("toPayload(%#v): %v", tc.in, err)
			}
			if !bytes.Equal(got.Data, tc.want.Data) || got.Binary != tc.want.Binary {
				t.Fatalf("toPayload(%#v) = %q binary=%v, want %q binary=%v", tc.in, got.Data, got.Binary, tc.want.Data, tc.want.Binary)
			}
		})
	}
	if _, err := toPayload(map[string]any{"f": func() {}}); err == nil || errors.Is(err, ErrInvalidPayload) {
		t.Errorf("unmarshalable value: got %v, want a marshal error", err)
	}
	// Binary values are not copied.
	b := Binary{1, 2}
	p, _ := toPayload(b)
	b[0] = 9
	if p.Data[0] != 9 {
		t.Errorf("toPayload copied a Binary")
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	var v struct{ A int }
	if err := jp(`{"A":3}`).Decode(&v); err != nil || v.A != 3 {
		t.Fatalf("Decode: %v %v", v, err)
	}
	var m map[string]any
	if err := (Payload{}).Decode(&m); err != nil || len(m) != 0 || m == nil {
		t.Fatalf("Decode of zero payload: %v %v", m, err)
	}
	err := bp(1, 2).Decode(&v)
	if !errors.Is(err, ErrBinaryPayload) {
		t.Fatalf("Decode of binary payload: %v", err)
	}
	if err := jp(`[`).Decode(&v); err == nil {
		t.Fatal("Decode of invalid JSON succeeded")
	}
	for _, tc := range []struct {
		p    Payload
		want string
	}{
		{jp(`{"a":1}`), `{"a":1}`},
		{Payload{}, `{}`},
		{bp(make([]byte, 12)...), "<binary 12 bytes>"},
		{bp(), "<binary 0 bytes>"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func jp(s string) Payload  { return Payload{Data: []byte(s)} }
func bp(b ...byte) Payload { return Payload{Data: b, Binary: true} }
