// Package bridge connects package phxtest to the unexported in-memory
// transport of package phx, so tests can run channels without a network
// while phx keeps its internals private.
package bridge

// Frame is one encoded protocol frame.
type Frame struct {
	Data   []byte
	Binary bool
}

// Conn is an in-memory client connection to a server.
type Conn interface {
	// Send hands one client frame to the server, as a WebSocket reader
	// would; frames are processed in order.
	Send(f Frame) error
	// Frames delivers every frame the server sends, in order; it is closed
	// after the connection has closed and every frame was delivered.
	Frames() <-chan Frame
	// CloseCode returns the code the server closed with, 0 while open.
	CloseCode() int
	// Close closes the connection from the client side and waits until
	// every channel has terminated.
	Close()
}

// Dial is set by package phx: it connects to server (a *phx.Server) with
// the given assigns, as if Connect had returned them. An empty id asks the
// server's ID hook.
var Dial func(server any, assigns map[string]any, id string) (Conn, error)
