package phx_test

// Races and recovery under the official phoenix.js client: many clients
// joining one room at once while presence diffs fly (presence_race.mjs), and
// clients that are disconnected by the server again and again while a
// publisher broadcasts on a topic with history (history_stress.mjs).

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phxgo/phx"
)

// raceRoom tracks its client and pushes presence_state either inside Join
// (params mode "join") or in an after-join HandleInfo ("after"); in Join it
// also broadcasts, as apps do.
type raceRoom struct{ p *phx.Presence }

type afterJoin struct{}

func (r *raceRoom) Join(s *phx.Socket, params phx.Payload) (any, error) {
	var in struct {
		User string `json:"user"`
		Mode string `json:"mode"`
	}
	if err := params.Decode(&in); err != nil {
		return nil, err
	}
	s.Assigns["user"] = in.User
	if in.Mode == "after" {
		return nil, s.Send(afterJoin{})
	}
	if err := r.p.Track(s, in.User, map[string]any{"mode": in.Mode}); err != nil {
		return nil, err
	}
	if err := r.p.PushState(s); err != nil {
		return nil, err
	}
	return nil, s.BroadcastFrom("hello", map[string]any{"user": in.User})
}

func (r *raceRoom) HandleInfo(s *phx.Socket, msg any) {
	if _, ok := msg.(afterJoin); ok {
		_ = r.p.Track(s, s.Assigns["user"].(string), map[string]any{"mode": "after"})
		_ = r.p.PushState(s)
	}
}

// historyRoom is a plain channel on a route with history.
type historyRoom struct{}

func (historyRoom) Join(s *phx.Socket, params phx.Payload) (any, error) { return nil, nil }

// newRaceServer serves /socket and a control API: GET /ctl/presence?topic=
// (the server's List), POST /ctl/publish?topic=&n=&every=&users=&kicks=&tick_ms=&user_prefix=
// (in the background: n broadcasts "msg" {n: i} on topic, one every `every`
// microseconds, while every tick_ms `kicks` random users among
// user_prefix0..user_prefix<users-1> are disconnected server-side), GET
// /ctl/published (how many were published and kicked so far), POST
// /ctl/kick?user= (server-side disconnect of that user's connections).
func newRaceServer(t *testing.T) string {
	t.Helper()
	srv := phx.NewServer(&phx.Options{
		ID:                func(a phx.Assigns) string { return a["user"].(string) },
		MaxQueuedMessages: 4096,
		MaxChannelQueue:   8192,
		Logger:            quietLogger(),
		Connect: func(info *phx.ConnectInfo) (phx.Assigns, error) {
			return phx.Assigns{"user": info.Params.Get("user")}, nil
		},
	})
	presence := phx.NewPresence(srv, nil)
	srv.Channel("race:*", func() phx.Channel { return &raceRoom{p: presence} })
	srv.Channel("hist:*", func() phx.Channel { return historyRoom{} },
		phx.WithHistory(phx.HistoryOptions{MaxMessages: 20000, MaxAge: time.Minute, MaxReplay: 20000}))
	var published, kicked atomic.Int64
	var pubWG sync.WaitGroup
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("content-type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /ctl/presence", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, presence.List(r.URL.Query().Get("topic")))
	})
	mux.HandleFunc("POST /ctl/publish", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		topic := q.Get("topic")
		n, _ := strconv.Atoi(q.Get("n"))
		every, _ := strconv.Atoi(q.Get("every"))
		users, _ := strconv.Atoi(q.Get("users"))
		kicks, _ := strconv.Atoi(q.Get("kicks"))
		tick, _ := strconv.Atoi(q.Get("tick_ms"))
		prefix := q.Get("user_prefix")
		published.Store(0)
		kicked.Store(0)
		done := make(chan struct{})
		pubWG.Add(2)
		go func() {
			defer pubWG.Done()
			defer close(done)
			next := time.Now()
			for i := 1; i <= n; i++ {
				if err := srv.Broadcast(topic, "msg", map[string]int{"n": i}); err != nil {
					t.Errorf("broadcast %d: %v", i, err)
					return
				}
				published.Store(int64(i))
				next = next.Add(time.Duration(every) * time.Microsecond)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
		}()
		go func() { // server-side disconnects of random users while publishing
			defer pubWG.Done()
			if users <= 0 || kicks <= 0 || tick <= 0 {
				return
			}
			tk := time.NewTicker(time.Duration(tick) * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-done:
					return
				case <-tk.C:
				}
				for range kicks {
					if err := srv.Disconnect(prefix + strconv.Itoa(rand.IntN(users))); err != nil {
						t.Errorf("disconnect: %v", err)
					}
					kicked.Add(1)
				}
			}
		}()
		writeJSON(w, map[string]any{})
	})
	mux.HandleFunc("GET /ctl/published", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]int64{"n": published.Load(), "kicked": kicked.Load()})
	})
	mux.HandleFunc("POST /ctl/kick", func(w http.ResponseWriter, r *http.Request) {
		if err := srv.Disconnect(r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]any{})
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		pubWG.Wait()
		hs.Close()
	})
	return hs.URL
}

// TestInteropPresenceConcurrentJoins: 200 official clients join one room
// at once, 10 rounds, half tracking inside Join (with presence_state pushed
// and a broadcast made there too), half after joining; every client's
// Presence.list() must end up equal to the server's List.
func TestInteropPresenceConcurrentJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("200 clients × 10 rounds")
	}
	base := newRaceServer(t)
	runInteropScript(t, base, "presence_race", interopClients[0], "race")
}

// TestInteropHistoryStress: 200 official clients on one topic with history
// while 10,000 messages are broadcast and the server disconnects clients
// again and again; each client must see every message exactly once, in
// order (counted and printed by the script).
func TestInteropHistoryStress(t *testing.T) {
	if testing.Short() {
		t.Skip("200 clients × 10,000 messages")
	}
	base := newRaceServer(t)
	runInteropScript(t, base, "history_stress", interopClients[0], "stress")
}
