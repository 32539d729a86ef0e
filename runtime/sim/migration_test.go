package sim_test

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate/migratetest"
)

var soak = flag.Int("soak", 0, "run seeds until this many migrations moved a connection (make soak: 100,000) instead of 20 seeds")

// TestMigrationsUnderFaults is the seeded simulation of live migration: a
// client's echo streams, three servers with migration engines, and the
// generated pipeline as the switch (runtime/switch), every link (TCPMig's
// too) losing 5%, duplicating 2% and reordering 5% of frames. Migrations
// start every 2 ms from random servers. Every run must end with every
// byte echoed back in order, no RST on an open connection, and each open
// connection held by exactly one server. A failing seed prints the command
// that replays it exactly.
func TestMigrationsUnderFaults(t *testing.T) {
	// Seeds run until minMoved migrations moved a connection (at most
	// maxSeeds of them), so that a faster TCP, whose streams end sooner,
	// does not shrink what the test covers.
	const minMoved, maxSeeds = 2000, 40
	want := minMoved
	if testing.Short() {
		want = 200
	}
	if *soak > 0 {
		want = *soak
	}
	moved, started, failed := 0, 0, 0
	seed := uint64(0)
	for more := true; more; more = moved < want && (*soak > 0 || seed < maxSeeds) {
		seed++
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			sc := migratetest.Scenario{Seed: seed, Servers: 3, Streams: 8, Bytes: 2 << 20, Window: 32 << 10,
				Migrations: 200, Every: 2 * time.Millisecond, Link: migratetest.FaultyLink, Limit: 300 * time.Second}
			res, err := sc.Run()
			if err == nil {
				err = res.Check()
			}
			if res != nil {
				moved += res.Moved
				started += res.Started
			}
			if err != nil {
				failed++
				if res != nil {
					res.Dump(t.Logf)
				}
				t.Fatalf("seed %d: %v\n\treplay: go test ./runtime/sim -run 'TestMigrationsUnderFaults/seed=%d$' -v", seed, err, seed)
			}
		})
	}
	t.Logf("%d seeds: %d migrations started, %d moved a connection, %d seeds failed", seed, started, moved, failed)
	if moved < want {
		t.Fatalf("only %d migrations moved a connection in %d seeds; the test promises at least %d", moved, seed, want)
	}
}
