package phx_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/phxgo/phx"
)

// lifeRoom checks, from inside the hooks, what the lazy channel goroutines
// must keep: hooks one at a time, messages in order, nothing after
// Terminate, Terminate once.
type lifeRoom struct {
	reg     *lifeRegistry
	busy    atomic.Bool
	last    atomic.Int64 // atomic only so that the test can watch it
	ended   atomic.Bool
	termNum atomic.Int32
}

type lifeRegistry struct {
	mu         sync.Mutex
	rooms      map[string]*lifeRoom // "conn/topic"
	sockets    map[string]*phx.Socket
	violations []string
}

func (g *lifeRegistry) violate(format string, args ...any) {
	g.mu.Lock()
	g.violations = append(g.violations, fmt.Sprintf(format, args...))
	g.mu.Unlock()
}

func (r *lifeRoom) enter(s *phx.Socket, hook string) {
	if !r.busy.CompareAndSwap(false, true) {
		r.reg.violate("%s: %s ran while another hook was running", s.Topic(), hook)
	}
	if r.ended.Load() {
		r.reg.violate("%s: %s ran after Terminate", s.Topic(), hook)
	}
}

func (r *lifeRoom) leave() { r.busy.Store(false) }

func (r *lifeRoom) Join(s *phx.Socket, p phx.Payload) (any, error) {
	r.enter(s, "Join")
	defer r.leave()
	var params struct{ Conn string }
	if err := p.Decode(&params); err != nil {
		return nil, err
	}
	key := params.Conn + "/" + s.Topic()
	r.reg.mu.Lock()
	r.reg.rooms[key] = r
	r.reg.sockets[key] = s
	r.reg.mu.Unlock()
	return nil, nil
}

func (r *lifeRoom) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	r.enter(s, "HandleIn")
	defer r.leave()
	if event == "stop" {
		s.Stop(nil)
	}
	return nil, nil
}

func (r *lifeRoom) HandleInfo(s *phx.Socket, msg any) {
	r.enter(s, "HandleInfo")
	defer r.leave()
	n := int64(msg.(int))
	if last := r.last.Load(); n != last+1 {
		r.reg.violate("%s: message %d after %d", s.Topic(), n, last)
	}
	r.last.Store(n)
}

func (r *lifeRoom) Terminate(s *phx.Socket, reason error) {
	r.enter(s, "Terminate")
	r.ended.Store(true)
	r.termNum.Add(1)
	r.leave()
}

// TestChannelLifecycleUnderConcurrency drives channels whose goroutines come
// and go (one per burst of work) with messages from outside while they are
// left, stopped from a hook, stopped from outside, cut off with their
// connection, or left alone until Shutdown. Every message to an undisturbed
// channel must be handled, in order; hooks never overlap; nothing runs after
// Terminate; every joined channel terminates exactly once.
func TestChannelLifecycleUnderConcurrency(t *testing.T) {
	t.Parallel()
	const (
		conns    = 30
		messages = 300
	)
	topics := []string{"life:a", "life:b", "life:c"}
	reg := &lifeRegistry{rooms: map[string]*lifeRoom{}, sockets: map[string]*phx.Socket{}}
	srv := phx.NewServer(&phx.Options{Logger: quietLogger(), MaxChannelQueue: 4 * messages})
	srv.Channel("life:*", func() phx.Channel { return &lifeRoom{reg: reg} })
	mux := http.NewServeMux()
	mux.Handle("/socket/", srv)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/socket/websocket?vsn=2.0.0"

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clients := make([]*websocket.Conn, conns)
	for i := range clients {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		clients[i] = c
		go func() { // read and drop what the server sends
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		for j, topic := range topics {
			join := fmt.Sprintf(`["%d","%d","%s","phx_join",{"conn":"c%d"}]`, j+1, j+1, topic, i)
			if err := c.Write(ctx, websocket.MessageText, []byte(join)); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reg.mu.Lock()
		n := len(reg.sockets)
		reg.mu.Unlock()
		if n == conns*len(topics) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d channels joined", n, conns*len(topics))
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Undisturbed: connections whose number is 0 mod 5, and topic life:c
	// of the connections that are not closed.
	undisturbed := func(i int, topic string) bool {
		return i%5 == 0 || (topic == "life:c" && i%5 != 3)
	}
	var senders sync.WaitGroup
	for i := 0; i < conns; i++ {
		for j, topic := range topics {
			reg.mu.Lock()
			s := reg.sockets[fmt.Sprintf("c%d/%s", i, topic)]
			reg.mu.Unlock()
			senders.Add(1)
			go func() {
				defer senders.Done()
				for n := 1; n <= messages; n++ {
					if n%10 == 0 || n == messages {
						// Let the channel go idle now and then, and before
						// the last message, which then arrives alone.
						time.Sleep(time.Millisecond)
					}
					if err := s.Send(n); err != nil {
						if undisturbed(i, topic) {
							t.Errorf("c%d/%s: Send(%d): %v", i, topic, n, err)
						}
						return
					}
				}
			}()
			if undisturbed(i, topic) {
				continue
			}
			senders.Add(1)
			go func() { // one disruption, somewhere in the stream
				defer senders.Done()
				time.Sleep(time.Duration(1+(i*3+j)%7) * time.Millisecond)
				c := clients[i]
				switch i % 5 {
				case 1: // the client leaves
					c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`["%d","9","%s","phx_leave",{}]`, j+1, topic)))
				case 2: // a hook stops the channel
					c.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`["%d","9","%s","stop",{}]`, j+1, topic)))
				case 3: // the connection vanishes
					c.CloseNow()
				case 4: // stopped from outside
					s.Stop(nil)
				}
			}()
		}
	}
	senders.Wait()

	// Every message sent to an undisturbed channel is handled: none is
	// left in a mailbox without a goroutine to handle it.
	deadline = time.Now().Add(10 * time.Second)
	for {
		var behind []string
		reg.mu.Lock()
		for key, r := range reg.rooms {
			var i int
			var topic string
			fmt.Sscanf(strings.Replace(key, "/", " ", 1), "c%d %s", &i, &topic)
			if last := r.last.Load(); undisturbed(i, topic) && last != messages {
				behind = append(behind, fmt.Sprintf("%s at %d", key, last))
			}
		}
		reg.mu.Unlock()
		if len(behind) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d undisturbed channels did not handle all %d messages: %v", len(behind), messages, behind)
		}
		time.Sleep(10 * time.Millisecond)
	}

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for key, r := range reg.rooms {
		if n := r.termNum.Load(); n != 1 {
			t.Errorf("%s: Terminate ran %d times, want once", key, n)
		}
	}
	for _, v := range reg.violations {
		t.Error(v)
	}
}

// ctxRoom reports when its Socket's context ends; with block, its Join
// waits for that.
type ctxRoom struct {
	ended chan<- string
	block bool
}

func (r ctxRoom) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	if r.block {
		<-s.Context().Done()
		r.ended <- s.Topic() + " (in Join)"
		return nil, s.Context().Err()
	}
	go func() {
		<-s.Context().Done()
		r.ended <- s.Topic()
	}()
	return nil, nil
}

// Every channel's context ends when its connection closes: joined ones,
// and one whose Join is still running.
func TestChannelContextsEndWithTheConnection(t *testing.T) {
	t.Parallel()
	ended := make(chan string, 8)
	ts := newTestServer(t, &phx.Options{}, func(s *phx.Server) {
		s.Channel("room:*", func() phx.Channel { return ctxRoom{ended: ended} })
		s.Channel("slow:*", func() phx.Channel { return ctxRoom{ended: ended, block: true} })
	})
	c := dial(t, ts.url, "vsn=2.0.0", nil)
	c.join("room:a", "1", map[string]any{})
	c.join("room:b", "2", map[string]any{})
	c.send("3", "3", "slow:c", "phx_join", map[string]any{})
	time.Sleep(50 * time.Millisecond) // slow:c's Join is waiting
	select {
	case got := <-ended:
		t.Fatalf("%s's context ended while connected", got)
	default:
	}
	c.conn.CloseNow()
	got := map[string]bool{}
	for range 3 {
		select {
		case topic := <-ended:
			got[topic] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("contexts ended: %v, want room:a, room:b and slow:c (in Join)", got)
		}
	}
	if !got["room:a"] || !got["room:b"] || !got["slow:c (in Join)"] {
		t.Fatalf("contexts ended: %v", got)
	}
}
