package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/phxgo/phx/internal/clienttest"
)

// TestClusterOfThreeProcesses runs three OS processes of the chat joined by
// a real NATS server (embedded in the test): users on different nodes chat
// through the official phoenix client and see each other online; a node
// killed with SIGKILL has its users removed from the others' online lists
// within the presence down period.
func TestClusterOfThreeProcesses(t *testing.T) {
	requireNode(t)
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	const down = 2 * time.Second
	secret := fmt.Sprintf("cluster-secret-%d-0123456789abcdef0123456789", time.Now().UnixNano())
	var nodes []*chatProcess
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, startChatWithSecret(t, secret,
			"-pubsub", ns.ClientURL(), "-presence-down", down.String()))
	}

	runNode(t, 30*time.Second, nil, filepath.Join("e2e", "cluster.mjs"), nodes[0].url, nodes[1].url, nodes[2].url, "c1")

	// Kill: zed is connected to node 3, ann watches from node 1.
	ann := dialNode(t, nodes[0], "ann_k")
	zed := dialNode(t, nodes[2], "zed_k")
	ann.send("room:killroom", "phx_join", map[string]any{})
	zed.send("room:killroom", "phx_join", map[string]any{})
	deadline := time.Now().Add(10 * time.Second)
	for !ann.online("room:killroom")["zed_k"] {
		if time.Now().After(deadline) {
			t.Fatalf("ann never saw zed online; she sees %v", ann.online("room:killroom"))
		}
		ann.pump(50 * time.Millisecond)
	}
	nodes[2].kill(t)
	killed := time.Now()
	for ann.online("room:killroom")["zed_k"] {
		if time.Since(killed) > 2*down {
			t.Fatalf("zed still listed %v after node 3 was killed (down period %v); logs of node 1:\n%s",
				time.Since(killed).Round(time.Millisecond), down, nodes[0].logs)
		}
		ann.pump(50 * time.Millisecond)
	}
	t.Logf("zed left ann's online list %v after his node was killed (down period %v)", time.Since(killed).Round(time.Millisecond), down)
}

// nodeClient is a raw V2 client that tracks presence_state/presence_diff.
type nodeClient struct{ *clienttest.Client }

func dialNode(t *testing.T, p *chatProcess, user string) *nodeClient {
	t.Helper()
	resp, err := http.Get(p.url + "/api/token?user=" + url.QueryEscape(user))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	u := strings.Replace(p.url, "http", "ws", 1) + "/socket/websocket?vsn=2.0.0&token=" + url.QueryEscape(tok.Token)
	return &nodeClient{clienttest.New(t, user, u, nil)}
}

func (n *nodeClient) send(topic, event string, payload any) { n.Push(topic, event, payload) }

// pump lets frames arrive for d.
func (n *nodeClient) pump(d time.Duration) { time.Sleep(d) }

// online replays the presence events of topic received so far: the users
// online.
func (n *nodeClient) online(topic string) map[string]bool {
	on := map[string]bool{}
	for _, m := range n.Matching(func(m *clienttest.Message) bool { return m.Topic == topic }) {
		switch m.Event {
		case "presence_state":
			var st map[string]json.RawMessage
			json.Unmarshal(m.Payload, &st)
			on = map[string]bool{}
			for k := range st {
				on[k] = true
			}
		case "presence_diff":
			var d struct{ Joins, Leaves map[string]json.RawMessage }
			json.Unmarshal(m.Payload, &d)
			for k := range d.Joins {
				on[k] = true
			}
			for k := range d.Leaves {
				delete(on, k)
			}
		}
	}
	return on
}
