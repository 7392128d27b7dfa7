package phxprometheus

import "github.com/phxgo/phx"

// Chain combines several sets of hooks into one, for [phx.Options.Telemetry]:
// each hook of the result calls the hooks of ts that are set, in the order
// given. Nil elements are skipped; a hook none of ts sets stays nil, so the
// server does not build its event. With a single non-nil element, Chain
// returns it; with none, nil.
//
// A hook that panics does not stop the others: once they have run, the
// first panic is raised again, for the server to log.
func Chain(ts ...*phx.Telemetry) *phx.Telemetry {
	var set []*phx.Telemetry
	for _, t := range ts {
		if t != nil {
			set = append(set, t)
		}
	}
	switch len(set) {
	case 0:
		return nil
	case 1:
		return set[0]
	}
	return &phx.Telemetry{
		SocketConnected:   chain(set, func(t *phx.Telemetry) func(phx.SocketConnected) { return t.SocketConnected }),
		SocketClosed:      chain(set, func(t *phx.Telemetry) func(phx.SocketClosed) { return t.SocketClosed }),
		ChannelJoined:     chain(set, func(t *phx.Telemetry) func(phx.ChannelJoined) { return t.ChannelJoined }),
		ChannelHandledIn:  chain(set, func(t *phx.Telemetry) func(phx.ChannelHandledIn) { return t.ChannelHandledIn }),
		ChannelTerminated: chain(set, func(t *phx.Telemetry) func(phx.ChannelTerminated) { return t.ChannelTerminated }),
	}
}

// chain combines one hook of every element of set: nil when none has it,
// the hook itself when only one has it.
func chain[E any](set []*phx.Telemetry, hook func(*phx.Telemetry) func(E)) func(E) {
	var hooks []func(E)
	for _, t := range set {
		if h := hook(t); h != nil {
			hooks = append(hooks, h)
		}
	}
	switch len(hooks) {
	case 0:
		return nil
	case 1:
		return hooks[0]
	}
	return func(e E) {
		var first any
		panicked := false
		for _, h := range hooks {
			func() {
				defer func() {
					if v := recover(); v != nil && !panicked {
						first, panicked = v, true
					}
				}()
				h(e)
			}()
		}
		if panicked {
			panic(first)
		}
	}
}
