package clustertest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/phxgo/phx/internal/clienttest"
)

// Frame is one message a Client received.
type Frame = clienttest.Message

// Client is a Phoenix V2 WebSocket client that records every frame.
type Client = clienttest.Client

// DialClient connects to url (ws://host/socket) as user.
func DialClient(t testing.TB, url, user string) *Client {
	t.Helper()
	return clienttest.New(t, user, url+"/websocket?vsn=2.0.0&user="+user, nil)
}

// Event matches frames of one event on one topic whose payload contains
// every "field":value pair of want (values compared as JSON text).
func Event(topic, event string, want map[string]string) func(*Frame) bool {
	return func(f *Frame) bool {
		if f.Topic != topic || f.Event != event {
			return false
		}
		for k, v := range want {
			if f.Field(k) != v {
				return false
			}
		}
		return true
	}
}

// Leaves matches presence_diff frames on topic whose leaves include key.
func Leaves(topic, key string) func(*Frame) bool {
	return func(f *Frame) bool {
		if f.Topic != topic || f.Event != "presence_diff" {
			return false
		}
		var leaves map[string]json.RawMessage
		_ = json.Unmarshal([]byte(f.Field("leaves")), &leaves)
		_, ok := leaves[key]
		return ok
	}
}

func quote(s string) string { return strconv.Quote(s) }

func describe(fs []*Frame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s %s %s", f.Topic, f.Event, f.Payload)
	}
	return b.String()
}
