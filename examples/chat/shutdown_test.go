package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSIGTERMDrainsEveryClient is the worst case an operator's deploy
// meets: 2,000 WebSockets and 20 long-poll clients whose polls are 0.1 s
// old when the process gets SIGTERM. Every WebSocket must get close code
// 1012 (so that the official clients reconnect elsewhere), every held poll
// must be answered 410, and the process must exit 0 after logging a clean
// stop (startChat's cleanup checks the exit).
func TestSIGTERMDrainsEveryClient(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections; not in -short")
	}
	const sockets, polls = 2000, 20
	p := startChat(t)
	tok := chatToken(t, p.url, "drain")
	q := url.Values{"token": {tok}, "vsn": {"2.0.0"}}.Encode()

	codes := make(chan websocket.StatusCode, sockets)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(p.url, "http") + "/socket/websocket?" + q
	for i := 0; i < sockets; i++ {
		ws, _, err := websocket.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatalf("WebSocket %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ws.CloseNow()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					codes <- websocket.CloseStatus(err)
					return
				}
			}
		}()
	}

	// Long-poll sessions, each with a poll held when the signal comes.
	lpURL := p.url + "/socket/longpoll"
	answers := make(chan string, polls)
	for i := 0; i < polls; i++ {
		var open struct {
			Status int    `json:"status"`
			Token  string `json:"token"`
		}
		if err := json.Unmarshal([]byte(body(httpGet(t, lpURL+"?"+q))), &open); err != nil || open.Status != 410 || open.Token == "" {
			t.Fatalf("long-poll open %d: %+v %v", i, open, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", lpURL+"?"+q+"&token="+url.QueryEscape(open.Token), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- "error: " + err.Error()
				return
			}
			defer resp.Body.Close()
			var poll struct {
				Status int `json:"status"`
			}
			err = json.NewDecoder(resp.Body).Decode(&poll)
			answers <- fmt.Sprintf("HTTP %d status %d (%v)", resp.StatusCode, poll.Status, err)
		}()
	}
	time.Sleep(100 * time.Millisecond) // the polls are held
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(codes)
	close(answers)
	byCode := map[websocket.StatusCode]int{}
	for c := range codes {
		byCode[c]++
	}
	byAnswer := map[string]int{}
	for a := range answers {
		byAnswer[a]++
	}
	t.Logf("%d WebSockets and %d polls answered within %v of SIGTERM: %v; %v",
		sockets, polls, time.Since(signalled).Round(time.Millisecond), byCode, byAnswer)
	if byCode[websocket.StatusServiceRestart] != sockets {
		t.Errorf("close codes %v, want all %d WebSockets closed with 1012", byCode, sockets)
	}
	if byAnswer["HTTP 200 status 410 (<nil>)"] != polls {
		t.Errorf("poll answers %v, want all %d answered status 410", byAnswer, polls)
	}
}

// chatToken gets a token for user from the running example.
func chatToken(t *testing.T, base, user string) string {
	t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body(httpGet(t, base+"/api/token?user="+user))), &out); err != nil || out.Token == "" {
		t.Fatalf("token for %s: %v", user, err)
	}
	return out.Token
}

// body drops httpGet's response.
func body(_ *http.Response, b string) string { return b }
