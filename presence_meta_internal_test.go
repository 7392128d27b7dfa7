package phx

import (
	"encoding/json"
	"reflect"
	"testing"
)

// metaSamples are metas as encoding/json writes them, and JSON objects
// another node could send, for the fast path and for the fallback.
var metaSamples = []string{
	`{}`,
	`{"online_at":1733300000000,"phx_ref":"GH1h6nK2bQ8AAAAB"}`,
	`{"device":"phone","n":-1.5e3,"ok":true,"no":false,"x":null}`,
	`{"name":"Zoë ☃"}`,
	`{"html":"\u003cb\u003e"}`,            // escapes: json.Unmarshal
	`{"nested":{"a":[1,2]},"k":"v"}`,      // nested: json.Unmarshal
	`{ "spaced" : 1 }`,                    // spaces: json.Unmarshal
	`{"big":1e400}`,                       // out of range: json.Unmarshal fails, {}
	`{"dup":1,"dup":2}`,                   // the last wins, as in json.Unmarshal
	"{\"bad\":\"\xff\"}",                  // invalid UTF-8: json.Unmarshal replaces it
	`{"tab":"a	b"}`,                       // a control character: invalid JSON, {}
	`{"t":true,"f":false,"z":0,"neg":-0}`, // literals and zeros
}

// TestDecodeMetaAsUnmarshal: decodeMeta returns what json.Unmarshal into a
// map[string]any returns (an empty Meta where it fails), fast path or not,
// and a new map each time.
func TestDecodeMetaAsUnmarshal(t *testing.T) {
	for _, s := range metaSamples {
		got := decodeMeta([]byte(s))
		if want := unmarshalMeta([]byte(s)); !reflect.DeepEqual(got, want) {
			t.Errorf("decodeMeta(%s) = %#v, json.Unmarshal: %#v", s, got, want)
		}
	}
	enc := []byte(metaSamples[1])
	a, b := decodeMeta(enc), decodeMeta(enc)
	a["phx_ref"] = "changed"
	if b["phx_ref"] != "GH1h6nK2bQ8AAAAB" {
		t.Fatal("two decodes share a map")
	}
	if _, ok := decodeFlatObject(enc); !ok {
		t.Fatal("the chat example's meta does not take the fast path")
	}
}

func unmarshalMeta(b []byte) Meta {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return Meta{}
	}
	return m
}

// FuzzDecodeMeta: for any valid JSON object, decodeMeta agrees with
// json.Unmarshal.
func FuzzDecodeMeta(f *testing.F) {
	for _, s := range metaSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // metas are valid JSON: encoded here, or checked on arrival
		}
		if got, want := decodeMeta(b), unmarshalMeta(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeMeta(%q) = %#v, json.Unmarshal: %#v", b, got, want)
		}
	})
}
