//go:build race

package app_test

// raceEnabled: the race detector slows the stacks about tenfold, so the
// end-to-end tests move less data (the migrations per byte rise as much)
// to stay within their time and to start fewer migrations: the slowed
// engine sometimes runs out of its CONN_STATE resends (8 × 10 ms) and
// resets the connection.
const raceEnabled = true
