package phxtest

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// A Matcher checks a payload given as the want of AssertPush,
// AssertBroadcast or AssertReply, instead of comparing it whole: [Subset]
// or [Func].
type Matcher interface {
	match(got json.RawMessage) error
}

// Subset matches a payload that holds every member of want with an equal
// value, recursively through objects; other members are ignored, as
// Elixir's pattern %{"id" => 1} matches a map with more keys. Arrays and
// scalars compare whole.
func Subset(want any) Matcher { return subset{want} }

type subset struct{ want any }

func (m subset) match(got json.RawMessage) error {
	wantJSON, err := json.Marshal(m.want)
	if err != nil {
		return fmt.Errorf("encode expected value: %w", err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("payload is not JSON")
	}
	_ = json.Unmarshal(wantJSON, &w)
	if path, ok := contains(g, w, ""); !ok {
		return fmt.Errorf("no subset match at %s; want subset %s", path, wantJSON)
	}
	return nil
}

// contains reports whether got holds want; path names the first mismatch.
func contains(got, want any, path string) (string, bool) {
	wm, ok := want.(map[string]any)
	if !ok {
		if !reflect.DeepEqual(got, want) {
			return orRoot(path), false
		}
		return "", true
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return orRoot(path), false
	}
	for k, wv := range wm {
		gv, ok := gm[k]
		if !ok {
			return path + "." + k + " (missing)", false
		}
		if p, ok := contains(gv, wv, path+"."+k); !ok {
			return p, false
		}
	}
	return "", true
}

func orRoot(path string) string {
	if path == "" {
		return "the payload"
	}
	return path
}

// Func matches a payload f accepts; f gets the raw JSON.
func Func(f func(payload json.RawMessage) bool) Matcher { return matchFunc(f) }

type matchFunc func(json.RawMessage) bool

func (f matchFunc) match(got json.RawMessage) error {
	if !f(got) {
		return fmt.Errorf("rejected by the Func matcher")
	}
	return nil
}
