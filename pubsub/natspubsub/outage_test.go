package natspubsub

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/phxgo/phx/internal/proctest"
	"github.com/phxgo/phx/pubsub/internal/clustertest"
)

// childEnv makes the test binary run a NATS server on the port it names
// instead of the tests, so that tests can freeze (SIGSTOP) and kill a
// real server process.
const childEnv = "PHX_TEST_NATS_SERVER_PORT"

// childJetStreamEnv, when set, is the store directory of the child
// server's JetStream.
const childJetStreamEnv = "PHX_TEST_NATS_JETSTREAM_DIR"

func runChildServer(port string) {
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: p, NoLog: true, NoSigs: true}
	if dir := os.Getenv(childJetStreamEnv); dir != "" {
		opts.JetStream, opts.StoreDir = true, dir
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		os.Exit(2)
	}
	fmt.Println("ready")
	select {}
}

// natsProcess is a NATS server in a child process on a fixed loopback port.
type natsProcess struct {
	port  int
	jsDir string // JetStream's store when not empty
	cmd   *exec.Cmd
}

func startNATSProcess(t testing.TB) *natsProcess { return startNATSProcessWith(t, "") }

// startNATSProcessWith starts a NATS server process, with JetStream
// storing in jsDir when it is not empty.
func startNATSProcessWith(t testing.TB, jsDir string) *natsProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	np := &natsProcess{port: l.Addr().(*net.TCPAddr).Port, jsDir: jsDir}
	l.Close()
	np.Start(t)
	t.Cleanup(func() { np.Stop(t) })
	return np
}

func (np *natsProcess) url() string { return "nats://127.0.0.1:" + strconv.Itoa(np.port) }

func (np *natsProcess) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(np.port))
	if np.jsDir != "" {
		cmd.Env = append(cmd.Env, childJetStreamEnv+"="+np.jsDir)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the NATS server process: %v", err)
	}
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("NATS server process failed: %s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("NATS server process not ready after 10s")
	}
	np.cmd = cmd
}

// Stop kills the server process (SIGKILL: no goodbye to its clients).
func (np *natsProcess) Stop(testing.TB) {
	if np.cmd != nil {
		np.cmd.Process.Signal(syscall.SIGCONT)
		np.cmd.Process.Kill()
		np.cmd.Wait()
		np.cmd = nil
	}
}

// Freeze stops the server process (SIGSTOP).
func (np *natsProcess) Freeze(t testing.TB) {
	t.Helper()
	proctest.Freeze(t, np.cmd.Process)
}

// Thaw resumes it (SIGCONT).
func (np *natsProcess) Thaw(t testing.TB) {
	if err := np.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

func (np *natsProcess) Dial(t testing.TB, id string, onGap func(start, end time.Time)) clustertest.Adapter {
	t.Helper()
	return dialTest(t, np.url(), id, onGap)
}

func (np *natsProcess) Inject(t testing.TB, a clustertest.Adapter, topic string, msg []byte) {
	t.Helper()
	inject(t, np.url(), a, topic, msg)
}

// A 3 s outage (the NATS server killed, restarted) with publishers at 20
// msgs/s on two nodes: nothing lost, duplicated or reordered.
func TestOutageKill(t *testing.T) {
	clustertest.RunOutage(t, startNATSProcess(t), clustertest.Kill)
}

// The same with the NATS server frozen (SIGSTOP) for 3 s.
func TestOutageFreeze(t *testing.T) {
	clustertest.RunOutage(t, startNATSProcess(t), clustertest.Freeze)
}

// With the NATS server frozen, Broadcast returns at once and local
// subscribers get the broadcast at once; the broadcasts reach the other
// node once the server is thawed.
func TestFrozenServerDoesNotBlock(t *testing.T) {
	np := startNATSProcess(t)
	a := np.Dial(t, "A", nil)
	b := np.Dial(t, "B", nil)
	pair := clustertest.NewFrozenPair(t, a, b)
	np.Freeze(t)
	pair.SendWhileFrozen(t, "NATS server") // a failure leaves it frozen: Stop, at cleanup, thaws it
	np.Thaw(t)
	pair.ExpectAllAtB(t, func() any { return a.(adapter).Stats() })
}
