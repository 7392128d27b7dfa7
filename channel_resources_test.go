package phx_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/phxgo/phx"
	"github.com/phxgo/phx/phxtest"
)

// watcher subscribes to "news" for its life and sets timers on request.
type watcher struct{ stopLater func() bool }

func (w *watcher) Join(s *phx.Socket, _ phx.Payload) (any, error) {
	return nil, s.Subscribe("news")
}

func (w *watcher) HandleIn(s *phx.Socket, event string, p phx.Payload) (any, error) {
	switch event {
	case "unsubscribe":
		return nil, s.Unsubscribe("news")
	case "remind":
		s.SendAfter(time.Minute, "reminder")
	case "remind_later":
		w.stopLater = s.SendAfter(time.Hour, "never")
	case "cancel":
		return map[string]bool{"stopped": w.stopLater()}, nil
	}
	return nil, nil
}

func (w *watcher) HandleInfo(s *phx.Socket, msg any) {
	switch m := msg.(type) {
	case *phx.Broadcast:
		_ = s.Push("relayed", map[string]string{"topic": m.Topic, "event": m.Event})
	case string:
		_ = s.Push(m, map[string]any{})
	}
}

func newWatcherServer(t *testing.T) *phx.Server {
	srv := phx.NewServer(&phx.Options{Logger: quietLogger()})
	srv.Channel("watch:*", func() phx.Channel { return &watcher{} })
	return srv
}

func TestSocketSubscribe(t *testing.T) {
	srv := newWatcherServer(t)
	sock := phxtest.NewSocket(t, srv, nil)
	ch := sock.JoinOK("watch:1", nil)
	srv.Broadcast("news", "headline", map[string]int{"n": 1})
	ch.AssertPush("relayed", map[string]string{"topic": "news", "event": "headline"})

	ch.AssertReply(ch.Push("unsubscribe", nil), "ok", map[string]any{})
	if n := srv.PubSub().(*phx.MemoryPubSub).SubscriberCount("news"); n != 0 {
		t.Fatalf("%d subscribers of news after Unsubscribe", n)
	}
	srv.Broadcast("news", "headline", map[string]int{"n": 2})
	ch.RefuteMessage("relayed", 50*time.Millisecond)

	// A subscription ends with its channel.
	ch2 := sock.JoinOK("watch:2", nil)
	if n := srv.PubSub().(*phx.MemoryPubSub).SubscriberCount("news"); n != 1 {
		t.Fatalf("%d subscribers of news, want 1", n)
	}
	ch2.Leave()
	if n := srv.PubSub().(*phx.MemoryPubSub).SubscriberCount("news"); n != 0 {
		t.Fatalf("%d subscribers of news after the channel left, want 0", n)
	}
}

func TestSocketSendAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newWatcherServer(t)
		sock := phxtest.NewSocket(t, srv, nil)
		sock.Timeout = 2 * time.Minute // on the bubble's fake clock
		ch := sock.JoinOK("watch:1", nil)
		start := time.Now()
		ch.AssertReply(ch.Push("remind", nil), "ok", map[string]any{})
		ch.AssertPush("reminder", map[string]any{})
		if d := time.Since(start); d != time.Minute {
			t.Fatalf("reminder after %v, want 1m", d)
		}
		ch.AssertReply(ch.Push("remind_later", nil), "ok", map[string]any{})
		ch.AssertReply(ch.Push("cancel", nil), "ok", map[string]bool{"stopped": true})
		ch.AssertReply(ch.Push("cancel", nil), "ok", map[string]bool{"stopped": false})
		sock.Close()
	})
}
