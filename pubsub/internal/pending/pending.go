// Package pending remembers, for the shared history stores of the PubSub
// adapters, which local subscriber a broadcast made on this node excludes
// (a BroadcastFrom) while the broadcast travels through the broker: the
// store delivers it when it comes back, to every local subscriber but that
// one.
package pending

import (
	"sync"
	"time"

	"github.com/phxgo/phx"
)

// maxKept is how many tokens a Froms keeps before it drops those older
// than maxAge (their broadcast never came back).
const (
	maxKept = 1024
	maxAge  = time.Minute
)

// Froms maps a broadcast's origin token to the subscriber it excludes. The
// zero value is ready to use; it is safe for concurrent use.
type Froms struct {
	mu sync.Mutex
	m  map[string]entry
}

type entry struct {
	from phx.Subscriber
	at   time.Time
}

// Expect remembers that the broadcast with token excludes from, until Take.
func (f *Froms) Expect(token string, from phx.Subscriber) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]entry)
	}
	if len(f.m) >= maxKept {
		for k, e := range f.m {
			if now.Sub(e.at) > maxAge {
				delete(f.m, k)
			}
		}
	}
	f.m[token] = entry{from: from, at: now}
}

// Take returns and forgets the subscriber the broadcast with token
// excludes; nil for a token it does not know (another node's broadcast).
func (f *Froms) Take(token string) phx.Subscriber {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.m[token]
	delete(f.m, token)
	return e.from
}
