package main

import (
	"testing"

	"github.com/phxgo/phx/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }
