//go:build !race

package phx

// raceEnabled: built with -race, whose instrumentation changes stack use.
const raceEnabled = false
