package phx_test

import "testing"

// Frames where Phoenix's own integration tests pin down a detail the
// official clients do not look at.

// A join without join_ref (V1 clients) leaves Phoenix's channel without
// one: its phx_close and phx_error carry a null ref.
func TestLifecycleRefNullWithoutJoinRef(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		ts, _ := newRoomServer(t, nil)
		v1 := dialMode(t, ts, m, "user=v1") // no vsn: V1 objects
		v1.sendRaw(`{"topic":"room:a","event":"phx_join","payload":{},"ref":"1"}`)
		v1.expect(`{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{"topic":"room:a","user":"v1"}},"ref":"1"}`)
		v1.sendRaw(`{"topic":"room:a","event":"phx_leave","payload":{},"ref":"2"}`)
		v1.expect(`{"topic":"room:a","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"2"}`)
		v1.expect(`{"topic":"room:a","event":"phx_close","payload":{},"ref":null}`)

		v1.sendRaw(`{"topic":"room:b","event":"phx_join","payload":{},"ref":"3"}`)
		v1.expect(`{"topic":"room:b","event":"phx_reply","payload":{"status":"ok","response":{"topic":"room:b","user":"v1"}},"ref":"3"}`)
		v1.sendRaw(`{"topic":"room:b","event":"crash","payload":{},"ref":"4"}`)
		v1.expect(`{"topic":"room:b","event":"phx_error","payload":{"reason":"channel_crash"},"ref":null}`)

		v2 := dialMode(t, ts, m, "user=v2&vsn=2.0.0")
		// With a join_ref, both carry it, as the official clients expect.
		v2.join("room:d", "5", map[string]any{})
		v2.send("5", "6", "room:d", "crash", map[string]any{})
		v2.expect(`["5","5","room:d","phx_error",{"reason":"channel_crash"}]`)
	})
}
