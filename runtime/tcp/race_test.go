//go:build race

package tcp

// raceEnabled: the race detector's instrumentation allocates where the
// code does not, so allocation counts are not checked under it.
const raceEnabled = true
