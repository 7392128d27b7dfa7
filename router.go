package phx

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// router maps topics to channel constructors.
//
// # Patterns
//
// A pattern is either an exact topic ("room:lobby") or a prefix followed by a
// single trailing '*' ("room:*"), which matches every topic that starts with
// the prefix, including the prefix alone ("room:"). A '*' anywhere else, an
// empty pattern, or registering the same pattern twice is a programming error
// and panics at registration.
//
// # Precedence
//
// An exact pattern beats every wildcard; among wildcards the longest prefix
// wins. Declaration order never matters. With the routes
//
//	"room:lobby"  -> Lobby
//	"room:*"      -> Room
//	"room:vip:*"  -> VIPRoom
//	"*"           -> Fallback
//
// the topic "room:lobby" goes to Lobby, "room:42" to Room, "room:vip:7" to
// VIPRoom and "user:1" to Fallback.
type router struct {
	mu       sync.RWMutex
	exact    map[string]route
	prefixes []prefixRoute // sorted by descending prefix length
}

// route is one registered pattern.
type route struct {
	pattern string
	newCh   ChannelFunc
	history *HistoryOptions // nil: broadcasts are not recorded
}

type prefixRoute struct {
	prefix string
	route  // pattern is prefix + "*", as registered
}

// add registers a route without history, panicking on programming errors.
func (r *router) add(pattern string, newCh ChannelFunc) { r.addRoute(pattern, newCh, nil) }

// addRoute registers a route, panicking on programming errors.
func (r *router) addRoute(pattern string, newCh ChannelFunc, history *HistoryOptions) {
	if newCh == nil {
		panic("phx: nil ChannelFunc for pattern " + quote(pattern))
	}
	if pattern == "" {
		panic("phx: empty channel pattern")
	}
	star := strings.IndexByte(pattern, '*')
	if star >= 0 && star != len(pattern)-1 {
		panic("phx: invalid channel pattern " + quote(pattern) + ": '*' is only allowed at the end")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if star < 0 {
		if r.exact == nil {
			r.exact = make(map[string]route)
		}
		if _, dup := r.exact[pattern]; dup {
			panic("phx: duplicate channel pattern " + quote(pattern))
		}
		r.exact[pattern] = route{pattern: pattern, newCh: newCh, history: history}
		return
	}
	prefix := pattern[:star]
	for _, p := range r.prefixes {
		if p.prefix == prefix {
			panic("phx: duplicate channel pattern " + quote(pattern))
		}
	}
	r.prefixes = append(r.prefixes, prefixRoute{prefix: prefix, route: route{pattern: pattern, newCh: newCh, history: history}})
	sort.SliceStable(r.prefixes, func(i, j int) bool {
		return len(r.prefixes[i].prefix) > len(r.prefixes[j].prefix)
	})
}

// match returns the constructor for topic, or nil when no route matches.
func (r *router) match(topic string) ChannelFunc {
	f, _ := r.matchRoute(topic)
	return f
}

// matchRoute returns the constructor for topic and the pattern that
// matched it; nil and "" when no route matches.
func (r *router) matchRoute(topic string) (ChannelFunc, string) {
	rt := r.lookup(topic)
	return rt.newCh, rt.pattern
}

// lookup returns the route topic matches; the zero route when none does.
func (r *router) lookup(topic string) route {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if rt, ok := r.exact[topic]; ok {
		return rt
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(topic, p.prefix) {
			return p.route
		}
	}
	return route{}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
