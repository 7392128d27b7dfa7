module github.com/phxgo/phx

go 1.25

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/google/uuid v1.6.0 // indirect
)
