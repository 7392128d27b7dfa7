package etf

import (
	"testing"

	"github.com/phxgo/phx/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// The tests' atom and tuple types, as token.Atom and token.Tuple are the
// token package's.
type (
	Atom  string
	Tuple []any
)

var (
	encode = Encode[Atom, Tuple]
	decode = Decode[Atom, Tuple]
)
