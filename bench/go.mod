module github.com/phxgo/phx/bench

go 1.25.0

require (
	github.com/coder/websocket v1.8.15
	github.com/phxgo/phx v0.1.0
)

replace github.com/phxgo/phx => ../
