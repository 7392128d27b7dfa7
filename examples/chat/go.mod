module github.com/phxgo/phx/examples/chat

go 1.25.0

require (
	github.com/nats-io/nats-server/v2 v2.14.5
	github.com/phxgo/phx v0.1.0
	github.com/phxgo/phx/pubsub/natspubsub v0.1.0
	github.com/phxgo/phx/pubsub/redispubsub v0.1.0
	github.com/phxgo/phx/telemetry/phxprometheus v0.1.0
	github.com/prometheus/client_golang v1.24.1
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.7.2-default-no-op // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nats.go v1.53.1 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	github.com/prometheus/common v0.70.1 // indirect
	github.com/prometheus/procfs v0.21.1 // indirect
	github.com/redis/go-redis/v9 v9.22.0 // indirect
	go.uber.org/atomic v1.11.0 // indirect
	golang.org/x/crypto v0.55.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)

replace (
	github.com/phxgo/phx => ../..
	github.com/phxgo/phx/pubsub/natspubsub => ../../pubsub/natspubsub
	github.com/phxgo/phx/pubsub/redispubsub => ../../pubsub/redispubsub
	github.com/phxgo/phx/telemetry/phxprometheus => ../../telemetry/phxprometheus
)
