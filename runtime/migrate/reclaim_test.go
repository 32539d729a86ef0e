package migrate_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/sim"
)

// The tests here lose or delay PREPARE_MIG_ACKs after the switch, where
// their LOAD has already written the directory entry that the origin never
// hears of. Each failed before the abandon notices, the resent release
// and the reclaim of stale ACKs: the client was reset once the target's
// hold ended.

// steeredRack is a rack with one stream of size bytes to server 0, over
// links of the given delay, whose migrations go to the server *light names
// (heartbeats say it is idle).
func steeredRack(t *testing.T, light *int, delay time.Duration, size int) *fixture {
	t.Helper()
	r, err := migratetest.New(migratetest.Config{Seed: 1, Servers: 3, Link: sim.LinkConfig{Delay: delay, Bandwidth: 1e9},
		Workload: func(k int) uint32 { return map[bool]uint32{true: 0, false: 50}[k == *light] }})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, r: r}
	c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	f.streams = []*migratetest.Stream{{Conn: c, Data: make([]byte, size), Window: 16 << 10}}
	r.Client.OnStep(func(sim.Time) { f.streams[0].Step() })
	f.run(25 * time.Millisecond)
	return f
}

// migrate moves the stream from server `from` and waits up to a second
// for the outcome.
func (f *fixture) migrate(from int) migrate.Outcome {
	f.t.Helper()
	var out *migrate.Outcome
	if err := f.r.Servers[from].Migrate(migratetest.ServerID(from, f.streams[0].Conn), func(o migrate.Outcome) { out = &o }); err != nil {
		f.t.Fatal(err)
	}
	for end := f.r.Sim.Now() + time.Second; out == nil && f.r.Sim.Now() < end; {
		f.run(time.Millisecond)
	}
	if out == nil {
		f.t.Fatalf("the migration from server %d never ended", from)
	}
	return *out
}

// entryTarget is the server the switch's entry for the stream names, or
// -1 without an entry.
func (f *fixture) entryTarget() int {
	c := f.streams[0].Conn
	_, e, ok := f.r.Pipeline.Lookup(migratetest.ClientAddr.Addr().As4(), c.ID().Local.Port())
	if !ok {
		return -1
	}
	for i := range f.r.Servers {
		if migratetest.ServerAddr(i).Addr().As4() == e.Target {
			return i
		}
	}
	return -2
}

// finishIntact runs the stream to its end and checks it whole, with no RST.
func (f *fixture) finishIntact(out migrate.Outcome) {
	f.t.Helper()
	f.out = &out
	f.finish(30 * time.Second)
	f.expectIntact()
}

// TestAbandonedTargetHandsTheEntryBack: a server that holds a connection
// migrated in gives up preparing its next move, with every PREPARE_MIG_ACK
// lost after the switch installed the entry for the new target. The
// origin cannot tell where the entry points; the target's abandon
// notices, when its hold ends, make it hand the entry back.
func TestAbandonedTargetHandsTheEntryBack(t *testing.T) {
	light := 1
	f := steeredRack(t, &light, 100*time.Microsecond, 64<<20)
	if out := f.migrate(0); out.Result != migrate.ResultMoved {
		t.Fatalf("the first move ended %+v", out)
	}
	light = 2
	f.run(40 * time.Millisecond)
	// Server 1 is on switch port 2.
	drop, dropped := dropStage(tcpmig.StagePrepareMigAck, -1, nil)
	f.r.Out = func(p pipeline.Port, fr []byte) bool { return p == 2 && drop(p, fr) }
	out := f.migrate(1)
	if out.Result != migrate.ResultStayed {
		t.Fatalf("the second move ended %+v, want stayed", out)
	}
	if *dropped == 0 || f.entryTarget() != 2 {
		t.Fatalf("%d ACKs dropped, entry names server %d: want the entry at server 2 unseen by server 1", *dropped, f.entryTarget())
	}
	f.r.Out = nil
	f.run(time.Second) // server 2's hold ends at 400 ms
	if f.entryTarget() != 1 {
		t.Fatalf("the entry names server %d after server 2's hold ended, want 1", f.entryTarget())
	}
	if n := f.r.Servers[2].Engine.Stats().AbandonNotices; n == 0 {
		t.Error("server 2 sent no abandon notice")
	}
	f.finishIntact(out)
}

// TestReleaseAfterGiveUpIsResent: the connection's own server gives up
// preparing with the entry installed unseen, and its first conn_closed is
// lost; the abandon notices are lost too. The release is sent again until
// the switch echoes it.
func TestReleaseAfterGiveUpIsResent(t *testing.T) {
	light := 1
	f := steeredRack(t, &light, 100*time.Microsecond, 64<<20)
	// Server 0 is on switch port 1.
	dropAck, _ := dropStage(tcpmig.StagePrepareMigAck, -1, nil)
	dropRelease, released := dropStage(tcpmig.StageConnClosed, 1, nil)
	f.r.Out = func(p pipeline.Port, fr []byte) bool { return p == 1 && dropAck(p, fr) }
	f.r.In = func(p pipeline.Port, fr []byte) bool { return p == 1 && dropRelease(p, fr) }
	out := f.migrate(0)
	if out.Result != migrate.ResultStayed {
		t.Fatalf("the move ended %+v, want stayed", out)
	}
	f.run(time.Second)
	if *released != 1 {
		t.Fatalf("%d conn_closed dropped, want the first", *released)
	}
	if f.entryTarget() >= 0 {
		t.Fatalf("the entry still names server %d", f.entryTarget())
	}
	if st := f.r.Servers[0].Engine.Stats(); st.ReleaseAcks == 0 {
		t.Errorf("server 0's release was never echoed: %+v", st)
	}
	f.r.In, f.r.Out = nil, nil
	f.finishIntact(out)
}

// TestLateAckLeavesAMovedConnectionsEntry: an ACK of a migration that
// gave up reaches its origin after a later migration moved the connection
// away. The origin must not clear the entry, which now names the
// connection's new server.
func TestLateAckLeavesAMovedConnectionsEntry(t *testing.T) {
	light := 1
	f := steeredRack(t, &light, 100*time.Microsecond, 64<<20)
	var late []byte
	dropAck, _ := dropStage(tcpmig.StagePrepareMigAck, -1, nil)
	f.r.In = func(p pipeline.Port, fr []byte) bool {
		if p == 2 && dropAck(p, fr) { // server 1's ACKs, before the switch
			if late == nil {
				late = append([]byte(nil), fr...)
			}
			return true
		}
		return false
	}
	if out := f.migrate(0); out.Result != migrate.ResultStayed {
		t.Fatalf("the first move ended %+v, want stayed", out)
	}
	f.r.In = nil
	second := f.migrate(0)
	if second.Result != migrate.ResultMoved || f.entryTarget() != 1 {
		t.Fatalf("the second move ended %+v with the entry at server %d, want moved to 1", second, f.entryTarget())
	}
	f.r.Inject(2, late) // the first ACK, delayed in the network
	f.run(time.Second)
	if f.entryTarget() != 1 {
		t.Fatalf("the entry names server %d after the late ACK, want 1", f.entryTarget())
	}
	f.finishIntact(second)
}

// TestStalePrepareIsReclaimed: a PREPARE_MIG that the network kept reaches
// the switch after the connection came back to its server, which the
// switch takes for a new move to the idlest server. That server's ACK, of
// a migration its origin has forgotten, makes the origin reclaim the entry.
func TestStalePrepareIsReclaimed(t *testing.T) {
	light := 1
	f := steeredRack(t, &light, 100*time.Microsecond, 64<<20)
	var stale []byte
	f.r.In = func(p pipeline.Port, fr []byte) bool {
		if s, _, ok := migratetest.StageOf(fr); ok && s == tcpmig.StagePrepareMig && p == 1 && stale == nil {
			stale = append([]byte(nil), fr...)
		}
		return false
	}
	if out := f.migrate(0); out.Result != migrate.ResultMoved {
		t.Fatalf("the first move ended %+v", out)
	}
	f.r.In = nil
	light = 0
	f.run(40 * time.Millisecond)
	back := f.migrate(1)
	if back.Result != migrate.ResultMoved {
		t.Fatalf("the move back ended %+v", back)
	}
	light = 2
	f.run(1500 * time.Millisecond) // server 0 forgets the first migration
	f.r.Inject(1, stale)
	f.run(time.Second)
	if tgt := f.entryTarget(); tgt != 0 && tgt != -1 {
		t.Fatalf("the entry names server %d after the stale PREPARE, want server 0 or none", tgt)
	}
	f.finishIntact(back)
}

// TestFinishedConnectionReleasesItsEntry: a connection migrated in that
// finishes has its directory entry released by the server that held it,
// which the userspace stack tells of the end (no polling).
func TestFinishedConnectionReleasesItsEntry(t *testing.T) {
	light := 1
	f := steeredRack(t, &light, 100*time.Microsecond, 1<<20)
	out := f.migrate(0)
	if out.Result != migrate.ResultMoved || f.entryTarget() != 1 {
		t.Fatalf("the move ended %+v with the entry at server %d, want moved to 1", out, f.entryTarget())
	}
	f.finishIntact(out)
	for end := f.r.Sim.Now() + 2*time.Second; f.entryTarget() != -1 && f.r.Sim.Now() < end; {
		f.run(time.Millisecond)
	}
	if at := f.entryTarget(); at != -1 {
		t.Fatalf("2 s after the stream ended, the entry still names server %d; want it released", at)
	}
	if st := f.r.Servers[1].Engine.Stats(); st.Releases == 0 {
		t.Errorf("server 1 sent no release: %+v", st)
	}
}
