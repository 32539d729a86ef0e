package migrate_test

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// fixture is a rack with two echo streams to server 0: stream 0 is the one
// the test migrates, stream 1 a bystander that must not be disturbed.
type fixture struct {
	t       *testing.T
	r       *migratetest.Rack
	streams []*migratetest.Stream
	out     *migrate.Outcome
}

func newFixture(t *testing.T, ecfg migrate.Config, bytes int) *fixture {
	t.Helper()
	return newFixtureOn(t, ecfg, bytes, sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 1e9}, 0)
}

// newFixtureTuned is newFixture with servers tuned one by one.
func newFixtureTuned(t *testing.T, ecfg migrate.Config, bytes int, tune func(int, *stack.Config, *migrate.Config)) *fixture {
	t.Helper()
	return newFixtureWith(t, migratetest.Config{Seed: 1, Servers: 3, Link: sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 1e9}, Engine: ecfg, Tune: tune}, bytes, 0)
}

// newFixtureOn is newFixture with links like link, and streams that keep
// at most window bytes unechoed (0: no bound).
func newFixtureOn(t *testing.T, ecfg migrate.Config, bytes int, link sim.LinkConfig, window int) *fixture {
	t.Helper()
	return newFixtureWith(t, migratetest.Config{Seed: 1, Servers: 3, Link: link, Engine: ecfg}, bytes, window)
}

func newFixtureWith(t *testing.T, rc migratetest.Config, bytes, window int) *fixture {
	t.Helper()
	r, err := migratetest.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, r: r}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2 {
		c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, bytes)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		f.streams = append(f.streams, &migratetest.Stream{Conn: c, Data: data, Window: window})
	}
	r.Client.OnStep(func(sim.Time) {
		for _, st := range f.streams {
			st.Step()
		}
	})
	f.run(25 * time.Millisecond) // established, data flowing, heartbeats in
	return f
}

func (f *fixture) run(d time.Duration) {
	f.t.Helper()
	if err := f.r.Sim.RunUntil(f.r.Sim.Now() + d); err != nil && !errors.Is(err, sim.ErrLimit) {
		f.t.Fatal(err)
	}
}

// start begins migrating stream 0 away from server 0.
func (f *fixture) start() {
	f.t.Helper()
	id := migratetest.ServerID(0, f.streams[0].Conn)
	if err := f.r.Servers[0].Migrate(id, func(out migrate.Outcome) { f.out = &out }); err != nil {
		f.t.Fatalf("Migrate(%v) = %v", id, err)
	}
}

// finish runs until the migration ended and every stream is echoed whole
// (or a stream failed), within limit.
func (f *fixture) finish(limit time.Duration) {
	f.t.Helper()
	end := f.r.Sim.Now() + limit
	for f.r.Sim.Now() < end {
		f.run(time.Millisecond)
		done := f.out != nil
		for _, st := range f.streams {
			done = done && (st.Done() || st.Err != nil)
		}
		if done {
			return
		}
	}
	f.t.Fatalf("not finished after %v: outcome %v; streams: %s", limit, f.out, f.result().Progress())
}

// await runs until the migration ended, within limit.
func (f *fixture) await(limit time.Duration) {
	f.t.Helper()
	for end := f.r.Sim.Now() + limit; f.out == nil && f.r.Sim.Now() < end; {
		f.run(time.Millisecond)
	}
}

func (f *fixture) result() *migratetest.Result {
	return &migratetest.Result{Rack: f.r, Streams: f.streams}
}

func (f *fixture) expect(want migrate.Result) {
	f.t.Helper()
	if f.out == nil || f.out.Result != want {
		f.result().Dump(f.t.Logf)
		f.t.Fatalf("outcome %+v, want %v", f.out, want)
	}
}

// expectIntact checks that every stream came back whole with no RST.
func (f *fixture) expectIntact() {
	f.t.Helper()
	for i, st := range f.streams {
		if st.Err != nil || !st.Done() {
			f.result().Dump(f.t.Logf)
			f.t.Fatalf("stream %d: got %d/%d: %v", i, st.Got, len(st.Data), st.Err)
		}
	}
	if n := len(f.r.HarmfulRSTs); n != 0 {
		f.t.Fatalf("%d RSTs reached open client connections, the first: %s", n, f.r.HarmfulRSTs[0])
	}
}

// dropStage returns a filter dropping the TCPMig frames of stage (at most
// n of them; -1 for all) for which also(frag) holds.
func dropStage(stage tcpmig.Stage, n int, also func(frag uint16) bool) (func(pipeline.Port, []byte) bool, *int) {
	dropped := 0
	return func(_ pipeline.Port, fr []byte) bool {
		s, frag, ok := migratetest.StageOf(fr)
		if !ok || s != stage || (n >= 0 && dropped >= n) || (also != nil && !also(frag)) {
			return false
		}
		dropped++
		return true
	}, &dropped
}

func TestFailurePaths(t *testing.T) {
	const bytes = 4 << 20
	for _, tc := range []struct {
		name   string
		stage  tcpmig.Stage
		n      int
		egress bool // drop after the pipeline (the switch already acted on it)
		frag   func(uint16) bool
		want   migrate.Result
	}{
		{"prepare lost once", tcpmig.StagePrepareMig, 1, false, nil, migrate.ResultMoved},
		{"prepare lost always", tcpmig.StagePrepareMig, -1, false, nil, migrate.ResultStayed},
		{"prepare ack lost once before the switch", tcpmig.StagePrepareMigAck, 1, false, nil, migrate.ResultMoved},
		{"prepare ack lost once after the switch", tcpmig.StagePrepareMigAck, 1, true, nil, migrate.ResultMoved},
		{"prepare ack lost always before the switch", tcpmig.StagePrepareMigAck, -1, false, nil, migrate.ResultStayed},
		{"prepare ack lost always after the switch", tcpmig.StagePrepareMigAck, -1, true, nil, migrate.ResultStayed},
		{"a state fragment lost once", tcpmig.StageConnState, 1, false, func(i uint16) bool { return i == 1 }, migrate.ResultMoved},
		{"a state fragment lost three times", tcpmig.StageConnState, 3, false, func(i uint16) bool { return i == 2 }, migrate.ResultMoved},
		{"state ack lost once", tcpmig.StageConnStateAck, 1, false, nil, migrate.ResultMoved},
		{"state ack lost three times", tcpmig.StageConnStateAck, 3, false, nil, migrate.ResultMoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, migrate.Config{}, bytes)
			filter, dropped := dropStage(tc.stage, tc.n, tc.frag)
			if tc.egress {
				f.r.Out = filter
			} else {
				f.r.In = filter
			}
			f.start()
			f.finish(10 * time.Second)
			f.expect(tc.want)
			f.expectIntact()
			if *dropped == 0 {
				t.Fatalf("the filter dropped nothing: the test tests nothing")
			}
		})
	}
}

// The losses below cannot be survived: the origin gives up as the spec
// says, resetting the connection so the client never hangs, and the reset
// clears the directory entry. The bystander is untouched.
func TestGiveUpResets(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(f *fixture) func(pipeline.Port, []byte) bool
		// slow: 1 ms links, and at most 16 KiB unechoed, so that the
		// stream still runs at the give-up.
		slow bool
	}{
		{"every state fragment lost", func(*fixture) func(pipeline.Port, []byte) bool {
			fl, _ := dropStage(tcpmig.StageConnState, -1, nil)
			return fl
		}, false},
		// The target has the state and serves the client while the origin
		// resends: the client's RCV.NXT may be past the origin's RST, and
		// the probes after it (or the client's next segment) draw a reset
		// it takes, from the origin, which no longer has the connection.
		{"every state ack lost", func(*fixture) func(pipeline.Port, []byte) bool {
			fl, _ := dropStage(tcpmig.StageConnStateAck, -1, nil)
			return fl
		}, true},
		{"target killed after its prepare ack", func(f *fixture) func(pipeline.Port, []byte) bool {
			killed := map[pipeline.Port]bool{}
			return func(p pipeline.Port, fr []byte) bool {
				if s, _, ok := migratetest.StageOf(fr); ok && s == tcpmig.StagePrepareMigAck {
					killed[p] = true // the ACK passes; everything after is lost
					return false
				}
				return killed[p]
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link, window := sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 1e9}, 0
			if tc.slow {
				link.Delay, window = time.Millisecond, 16<<10
			}
			f := newFixtureOn(t, migrate.Config{}, 4<<20, link, window)
			f.r.In = tc.drop(f)
			f.start()
			startAt := f.r.Sim.Now()
			for f.out == nil && f.r.Sim.Now() < startAt+5*time.Second {
				f.run(time.Millisecond)
			}
			f.expect(migrate.ResultAborted)
			giveUp := f.r.Sim.Now() - startAt
			// The client hears the RST at once: its stream fails, not hangs.
			for f.streams[0].Err == nil && f.r.Sim.Now() < startAt+giveUp+50*time.Millisecond {
				f.run(time.Millisecond)
			}
			if err := f.streams[0].Conn.Err(); !errors.Is(err, tcp.ErrReset) {
				st := f.streams[0]
				t.Fatalf("migrated stream's error %v (%d of %d bytes back), want a reset within 50 ms of the give-up (%v)", err, st.Got, len(st.Data), giveUp)
			}
			if _, e, ok := f.r.Pipeline.Lookup(migratetest.ClientAddr.Addr().As4(), f.streams[0].Conn.ID().Local.Port()); ok {
				t.Fatalf("directory still holds %+v after the reset", e)
			}
			for f.streams[1].Err == nil && !f.streams[1].Done() && f.r.Sim.Now() < startAt+10*time.Second {
				f.run(time.Millisecond)
			}
			if st := f.streams[1]; st.Err != nil || !st.Done() {
				t.Fatalf("bystander stream disturbed: %d/%d: %v", st.Got, len(st.Data), st.Err)
			}
		})
	}
}

// TestGiveUpAfterAMove: the origin that gives up is not the server the
// client knows, but one the connection moved to 20 ms before. Its RST
// clears the switch's entry, so the client's answers to its probes go to
// the first server, whose tombstone of the connection (from its own move,
// Config.Tombstone) dropped them silently: this client (its echo window
// full, nothing to send) was reset only by its own retransmission
// timeouts, 3 s after the give-up. The conn_aborted sent before the RST
// ends that tombstone; if it is lost, the one sent again before the next
// probe does; if every one is lost, the probe sent a tombstone after the
// abort still draws the reset.
func TestGiveUpAfterAMove(t *testing.T) {
	const tombstone = 2 * time.Second // Config.Tombstone's default
	for _, tc := range []struct {
		name        string
		lost        int // conn_aborted dropped: the first lost, or -1 for all
		within      time.Duration
		wantEnded   uint64 // tombstones ended by conn_aborted, over the servers
		wantNotices uint64
	}{
		{"notice", 0, 50 * time.Millisecond, 1, 4},
		{"first notice lost", 1, 50 * time.Millisecond, 1, 4},
		{"every notice lost", -1, tombstone + 200*time.Millisecond, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureOn(t, migrate.Config{}, 4<<20, sim.LinkConfig{Delay: time.Millisecond, Bandwidth: 1e9}, 16<<10)
			f.start()
			for end := f.r.Sim.Now() + time.Second; f.out == nil && f.r.Sim.Now() < end; {
				f.run(time.Millisecond)
			}
			f.expect(migrate.ResultMoved)
			holder := -1
			for k, srv := range f.r.Servers {
				if _, ok := srv.Apps[migratetest.ServerID(k, f.streams[0].Conn)]; ok && k != 0 {
					holder = k
				}
			}
			if holder < 0 {
				t.Fatal("no other server holds the moved connection")
			}
			f.run(20 * time.Millisecond)
			dropAck, _ := dropStage(tcpmig.StageConnStateAck, -1, nil)
			dropNotice, dropped := dropStage(tcpmig.StageConnAborted, tc.lost, nil)
			f.r.In = func(p pipeline.Port, fr []byte) bool {
				return dropAck(p, fr) || (tc.lost != 0 && dropNotice(p, fr))
			}
			f.out = nil
			if err := f.r.Servers[holder].Migrate(migratetest.ServerID(holder, f.streams[0].Conn), func(o migrate.Outcome) { f.out = &o }); err != nil {
				t.Fatal(err)
			}
			for end := f.r.Sim.Now() + 5*time.Second; f.out == nil && f.r.Sim.Now() < end; {
				f.run(time.Millisecond)
			}
			f.expect(migrate.ResultAborted)
			giveUp := f.r.Sim.Now()
			for f.streams[0].Conn.Err() == nil && f.r.Sim.Now() < giveUp+tc.within {
				f.run(time.Millisecond)
			}
			if err := f.streams[0].Conn.Err(); !errors.Is(err, tcp.ErrReset) {
				st := f.streams[0]
				t.Fatalf("the stream's error %v (%d of %d bytes back), want a reset within %v of the give-up", err, st.Got, len(st.Data), tc.within)
			}
			t.Logf("reset %v after the give-up", f.r.Sim.Now()-giveUp)
			for f.streams[1].Err == nil && !f.streams[1].Done() && f.r.Sim.Now() < giveUp+10*time.Second {
				f.run(time.Millisecond)
			}
			if st := f.streams[1]; st.Err != nil || !st.Done() {
				t.Fatalf("bystander stream disturbed: %d/%d: %v", st.Got, len(st.Data), st.Err)
			}
			f.run(time.Second) // every resend is out
			var sent, ended uint64
			for _, srv := range f.r.Servers {
				st := srv.Engine.Stats()
				sent += st.AbortNotices
				ended += st.TombstonesEnded
			}
			wantDropped := tc.lost
			if tc.lost < 0 {
				wantDropped = int(tc.wantNotices)
			}
			if sent != tc.wantNotices || ended != tc.wantEnded || *dropped != wantDropped {
				t.Errorf("conn_aborted sent %d, tombstones ended %d, dropped %d; want %d sent, %d ended, %d dropped", sent, ended, *dropped, tc.wantNotices, tc.wantEnded, wantDropped)
			}
		})
	}
}

func TestDuplicatedPrepare(t *testing.T) {
	f := newFixture(t, migrate.Config{}, 4<<20)
	dup := 0
	f.r.In = func(p pipeline.Port, fr []byte) bool {
		if s, _, ok := migratetest.StageOf(fr); ok && s == tcpmig.StagePrepareMig && dup == 0 {
			dup++
			f.r.In = nil
			f.r.Inject(p, fr) // a second copy, processed first
		}
		return false
	}
	f.start()
	f.finish(10 * time.Second)
	f.expect(migrate.ResultMoved)
	f.expectIntact()
	acc := uint64(0)
	for _, srv := range f.r.Servers {
		acc += srv.Engine.Stats().Accepted
	}
	if dup != 1 || acc != 1 {
		t.Fatalf("duplicated %d PREPAREs, %d targets accepted; want 1 and 1", dup, acc)
	}
}

func TestDirectoryFullRejects(t *testing.T) {
	f := newFixture(t, migrate.Config{}, 4<<20)
	client := f.streams[0].Conn.ID().Local
	// Another client's entry in the key's slot on every level.
	for lvl := range 2 {
		idx, err := pipeline.Index(lvl, client.Addr().As4(), client.Port())
		if err != nil {
			t.Fatal(err)
		}
		e := pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 77, 0, 99}, ClientPort: 1, Origin: [4]byte{10, 77, 0, 11}, Target: [4]byte{10, 77, 0, 12}}
		if err := f.r.Pipeline.WriteDirectory(lvl, int(idx), e); err != nil {
			t.Fatal(err)
		}
	}
	f.start()
	f.finish(10 * time.Second)
	f.expect(migrate.ResultStayed)
	f.expectIntact()
	if n := f.r.Pipeline.Counters().Rejects; n == 0 {
		t.Fatalf("switch counted no full-directory reject")
	}
}

// loadedFixture is a rack of len(loads) servers whose heartbeats report
// the fixed loads, and no streams yet.
func loadedFixture(t *testing.T, loads []uint32, link sim.LinkConfig) *fixture {
	t.Helper()
	r, err := migratetest.New(migratetest.Config{Seed: 1, Servers: len(loads), Link: link,
		Workload: func(i int) uint32 { return loads[i] }})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, r: r}
}

func TestOriginLeastLoadedRejects(t *testing.T) {
	loads := []uint32{0, 50, 50}
	f := loadedFixture(t, loads, sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 1e9})
	r := f.r
	c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	f.streams = []*migratetest.Stream{{Conn: c, Data: make([]byte, 8<<20)}}
	r.Client.OnStep(func(sim.Time) { f.streams[0].Step() })
	f.run(25 * time.Millisecond)
	f.start()
	f.finish(10 * time.Second)
	f.expect(migrate.ResultStayed)
	f.expectIntact()
	if n := r.Pipeline.Counters().PrepareRejects; n == 0 {
		t.Fatalf("switch counted no PREPARE rejected for coming back to its sender")
	}
}

// A target refuses a state that declares buffers over its restore cap
// (servers configured differently: the origin's buffers grow beyond the
// targets' cap): no CONN_STATE_ACK, so the origin gives up as the spec
// says and resets the connection, and the refusal is counted, never a
// panic or a restore.
func TestRestoreCapRefuses(t *testing.T) {
	f := newFixtureTuned(t, migrate.Config{}, 4<<20, func(i int, st *stack.Config, e *migrate.Config) {
		if i > 0 {
			st.TCP.SendBufferMax, st.TCP.RecvBufferMax, e.MaxRestoreBuffer = 32<<10, 32<<10, 32<<10
		}
	})
	f.start()
	startAt := f.r.Sim.Now()
	for f.out == nil && f.r.Sim.Now() < startAt+5*time.Second {
		f.run(time.Millisecond)
	}
	f.expect(migrate.ResultAborted)
	refused := uint64(0)
	for _, srv := range f.r.Servers {
		refused += srv.Engine.Stats().RestoreFailures
		for _, rec := range srv.Records {
			if rec.Result == "refused" && !strings.Contains(rec.Err, "restore limit") {
				t.Errorf("refusal record's error %q does not say what to change", rec.Err)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no target counted a refused restore")
	}
	for f.streams[0].Err == nil && f.r.Sim.Now() < startAt+2*time.Second {
		f.run(time.Millisecond)
	}
	if err := f.streams[0].Conn.Err(); !errors.Is(err, tcp.ErrReset) {
		t.Fatalf("client connection error %v, want a reset after the give-up", err)
	}
}

// A connection comes back to a server whose own migration of it still
// waits for its CONN_STATE_ACK (every one lost): server 0 moves it to
// server 1, which restores it and moves it straight back. The state
// arriving at server 0 is that ACK. Server 0's first migration must end
// as moved, not give up: its give-up would reset the connection that
// lives on server 0 again, and on the kernel host its frozen socket holds
// the connection's addresses, so the second restore would fail.
func TestComebackEndsTheWaitingMigration(t *testing.T) {
	light := 1 // the server the switch picks: heartbeats say it is idle
	f := steeredRack(t, &light, time.Millisecond, 4<<20)
	r, c := f.r, f.streams[0].Conn

	// Server 1 is on switch port 2: its CONN_STATE_ACKs never arrive.
	dropAck, dropped := dropStage(tcpmig.StageConnStateAck, -1, nil)
	r.In = func(p pipeline.Port, fr []byte) bool { return p == 2 && dropAck(p, fr) }
	var first, second *migrate.Outcome
	if err := r.Servers[0].Migrate(migratetest.ServerID(0, c), func(o migrate.Outcome) { first = &o }); err != nil {
		t.Fatal(err)
	}
	id1 := migratetest.ServerID(1, c)
	for end := r.Sim.Now() + time.Second; r.Servers[1].Apps[id1] == nil && r.Sim.Now() < end; {
		f.run(time.Millisecond)
	}
	if r.Servers[1].Apps[id1] == nil || first != nil {
		t.Fatalf("server 1 did not restore the connection with server 0's migration still waiting (outcome %v)", first)
	}
	light = 0
	f.run(30 * time.Millisecond) // heartbeats make server 0 the least loaded
	if first != nil {
		t.Fatalf("server 0's migration ended before the comeback: %+v", *first)
	}
	if err := r.Servers[1].Migrate(id1, func(o migrate.Outcome) { second = &o }); err != nil {
		t.Fatal(err)
	}
	for end := r.Sim.Now() + time.Second; (first == nil || second == nil) && r.Sim.Now() < end; {
		f.run(time.Millisecond)
	}
	if first == nil || first.Result != migrate.ResultMoved || second == nil || second.Result != migrate.ResultMoved {
		f.result().Dump(t.Logf)
		t.Fatalf("outcomes %+v and %+v, want both moved", first, second)
	}
	if *dropped == 0 {
		t.Fatal("no CONN_STATE_ACK of server 1 was dropped: the test lost its point")
	}
	if n := r.Servers[0].Engine.Stats().Comebacks; n != 1 {
		t.Errorf("server 0 counted %d comebacks, want 1", n)
	}
	if r.Servers[0].Apps[migratetest.ServerID(0, c)] == nil {
		t.Fatal("the connection is not on server 0 after coming back")
	}
	r.In = nil
	f.out = second
	f.finish(10 * time.Second)
	f.expectIntact()
}

// TestAppStateRefusedStays: an application whose state cannot be taken at
// the freeze (its state function fails) keeps its connection: nothing is
// frozen yet, so the migration ends stayed, with ErrAppState, the switch's
// entry goes back, and the client never sees a reset.
func TestAppStateRefusedStays(t *testing.T) {
	f := newFixture(t, migrate.Config{}, 4<<20)
	srv := f.r.Servers[0]
	id := migratetest.ServerID(0, f.streams[0].Conn)
	a := srv.Apps[id]
	refused := errors.New("the task cannot say where it is")
	if err := srv.Engine.Start(id, func() ([]byte, error) { return nil, refused }, func(out migrate.Outcome) { f.out = &out }); err != nil {
		t.Fatal(err)
	}
	for end := f.r.Sim.Now() + time.Second; f.out == nil && f.r.Sim.Now() < end; {
		f.run(time.Millisecond)
	}
	f.expect(migrate.ResultStayed)
	if !errors.Is(f.out.Err, migrate.ErrAppState) || !strings.Contains(f.out.Err.Error(), refused.Error()) {
		t.Fatalf("outcome error %v, want ErrAppState with the application's reason", f.out.Err)
	}
	if srv.Apps[id] != a {
		t.Fatal("the application lost its connection")
	}
	f.finish(10 * time.Second)
	f.expectIntact()
}

// TestDeadLeastLoadedServerAgesOut: the least-loaded server dies. Until the
// other servers' heartbeats have aged its last report out of the switch's
// min_workload (spec workload.age_step), PREPAREs go to it and the
// migration stays; after that, one moves to the least-loaded live server.
// Without aging the dead server stayed the target for good.
func TestDeadLeastLoadedServerAgesOut(t *testing.T) {
	if pipeline.AgeStep == 0 {
		t.Skip("the spec's workload.age_step is 0: a dead least-loaded server stays the target")
	}
	loads := []uint32{60, 50, 0} // server 2 is the least loaded, and dies
	f := loadedFixture(t, loads, sim.LinkConfig{Delay: time.Millisecond, Bandwidth: 1e9})
	r := f.r
	c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	// 16 KiB a 4 ms round trip: the stream runs for about a second, through
	// both migrations.
	f.streams = []*migratetest.Stream{{Conn: c, Data: make([]byte, 4<<20), Window: 16 << 10}}
	r.Client.OnStep(func(sim.Time) { f.streams[0].Step() })
	f.run(25 * time.Millisecond)
	dead := migratetest.ServerAddr(2).Addr().As4()
	if h, l := r.Pipeline.ReadMinWorkload(); h != dead || l > 2*pipeline.AgeStep { // aged by the others since its report
		t.Fatalf("min_workload {%v, %d} before the death, want server 2 with load 0 aged at most twice", netip.AddrFrom4(h), l)
	}
	const deadPort = pipeline.Port(3)                                    // migratetest: the client is port 0, server k port k+1
	r.In = func(p pipeline.Port, _ []byte) bool { return p == deadPort } // nothing from server 2 arrives

	f.start()
	f.await(time.Second)
	f.expect(migrate.ResultStayed)

	// Servers 0 and 1 report every 10 ms, each report ages the dead one's
	// load by AgeStep, and server 1's 50 takes the register once it is past
	// 50: about 50/(2*AgeStep) periods.
	died := r.Sim.Now()
	limit := time.Duration(loads[1]/(2*pipeline.AgeStep)+5) * 11 * time.Millisecond
	for r.Sim.Now() < died+limit {
		if h, _ := r.Pipeline.ReadMinWorkload(); h != dead {
			break
		}
		f.run(time.Millisecond)
	}
	if h, l := r.Pipeline.ReadMinWorkload(); h != migratetest.ServerAddr(1).Addr().As4() || l < loads[1] || l > loads[1]+2*pipeline.AgeStep {
		t.Fatalf("min_workload {%v, %d} %v after the death, want server 1 with load %d (aged by server 0's reports at most twice)",
			netip.AddrFrom4(h), l, r.Sim.Now()-died, loads[1])
	}
	if f.streams[0].Done() {
		t.Fatal("the stream ended before the second migration; make it longer")
	}
	f.out = nil
	f.start()
	f.finish(5 * time.Second)
	f.expect(migrate.ResultMoved)
	if want := migratetest.ServerAddr(1).Addr(); f.out.Target != want {
		t.Fatalf("moved to %v, want the least-loaded live server %v", f.out.Target, want)
	}
	f.expectIntact()
}
