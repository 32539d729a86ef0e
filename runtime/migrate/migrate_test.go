package migrate_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/sim"
)

// TestMigrateEchoStream moves a live echo stream between three servers ten
// times on clean links. The seeded runs under loss, duplication and
// reordering are runtime/sim's TestMigrationsUnderFaults.
func TestMigrateEchoStream(t *testing.T) {
	sc := migratetest.Scenario{Seed: 1, Servers: 3, Streams: 1, Bytes: 2 << 20, Migrations: 10, Every: 3 * time.Millisecond,
		Engine: migrate.Config{HeartbeatPeriod: time.Millisecond},
		Link:   sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 100e6}, Limit: 10 * time.Second}
	res, err := sc.Run()
	if err == nil {
		err = res.Check()
	}
	if err != nil {
		if res != nil {
			res.Dump(t.Logf)
		}
		t.Fatalf("seed %d: %v", sc.Seed, err)
	}
	if res.Moved < 3 {
		t.Fatalf("only %d migrations moved the connection: %s", res.Moved, res.Progress())
	}
	var recs []migrate.Record
	for _, srv := range res.Rack.Servers {
		recs = append(recs, srv.Records...)
	}
	if ms := migrate.Pair(recs); len(ms) != res.Moved {
		for _, r := range recs {
			b, _ := json.Marshal(r)
			t.Logf("%s", b)
		}
		t.Fatalf("Pair found %d migrations with both records, want %d (every move)", len(ms), res.Moved)
	}
}
