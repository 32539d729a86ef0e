package migrate_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/tcp"
)

// fixture is a rack with two echo streams to server 0: stream 0 is the one
// the test migrates, stream 1 a bystander that must not be disturbed.
type fixture struct {
	t       *testing.T
	r       *rack
	streams []*stream
	out     *migrate.Outcome
}

func newFixture(t *testing.T, ecfg migrate.Config, bytes int) *fixture {
	t.Helper()
	r, err := newRack(1, 3, sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 1e9}, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, r: r}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2 {
		c, err := r.client.Stack.Connect(netip.AddrPortFrom(serverAddr(0).Addr(), 80))
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, bytes)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		f.streams = append(f.streams, &stream{conn: c, data: data})
	}
	r.client.OnStep(func(sim.Time) {
		for _, st := range f.streams {
			st.step()
		}
	})
	f.run(2 * time.Millisecond) // established, data flowing, heartbeats in
	return f
}

func (f *fixture) run(d time.Duration) {
	f.t.Helper()
	if err := f.r.s.RunUntil(f.r.s.Now() + d); err != nil && !errors.Is(err, sim.ErrLimit) {
		f.t.Fatal(err)
	}
}

// serverID is stream i's connection as server k files it.
func (f *fixture) serverID(k, i int) tcp.ID {
	return tcp.ID{Local: netip.AddrPortFrom(serverAddr(k).Addr(), 80), Remote: f.streams[i].conn.ID().Local}
}

// start begins migrating stream 0 away from server 0.
func (f *fixture) start() {
	f.t.Helper()
	srv := f.r.servers[0]
	id := f.serverID(0, 0)
	a := srv.apps[id]
	if a == nil {
		f.t.Fatalf("server 0 has no application for %v", id)
	}
	err := srv.e.Start(id, a.state, func(out migrate.Outcome) {
		f.out = &out
		if out.Result != migrate.ResultStayed && srv.apps[id] == a {
			delete(srv.apps, id)
		}
	})
	if err != nil {
		f.t.Fatalf("Start(%v) = %v", id, err)
	}
}

// finish runs until the migration ended and every stream is echoed whole
// (or a stream failed), within limit.
func (f *fixture) finish(limit time.Duration) {
	f.t.Helper()
	end := f.r.s.Now() + limit
	for f.r.s.Now() < end {
		f.run(time.Millisecond)
		done := f.out != nil
		for _, st := range f.streams {
			done = done && (st.done() || st.err != nil)
		}
		if done {
			return
		}
	}
	f.t.Fatalf("not finished after %v: outcome %v; streams: %s", limit, f.out, (&result{r: f.r, streams: f.streams}).progress())
}

func (f *fixture) expect(want migrate.Result) {
	f.t.Helper()
	if f.out == nil || f.out.Result != want {
		(&result{r: f.r, streams: f.streams}).dump(f.t)
		f.t.Fatalf("outcome %+v, want %v", f.out, want)
	}
}

// expectIntact checks that every stream came back whole with no RST.
func (f *fixture) expectIntact() {
	f.t.Helper()
	for i, st := range f.streams {
		if st.err != nil || !st.done() {
			(&result{r: f.r, streams: f.streams}).dump(f.t)
			f.t.Fatalf("stream %d: got %d/%d: %v", i, st.got, len(st.data), st.err)
		}
	}
	if n := len(f.r.harmfulRSTs); n != 0 {
		f.t.Fatalf("%d RSTs reached open client connections, the first: %s", n, f.r.harmfulRSTs[0])
	}
}

// dropStage returns a filter dropping the TCPMig frames of stage (at most
// n of them; -1 for all) for which also(frag) holds.
func dropStage(stage tcpmig.Stage, n int, also func(frag uint16) bool) (func(pipeline.Port, []byte) bool, *int) {
	dropped := 0
	return func(_ pipeline.Port, fr []byte) bool {
		s, frag, ok := stageOf(fr)
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
		{"a state fragment lost once", tcpmig.StageConnState, 1, false, func(i uint16) bool { return i == 1 }, migrate.ResultMoved},
		{"a state fragment lost three times", tcpmig.StageConnState, 3, false, func(i uint16) bool { return i == 2 }, migrate.ResultMoved},
		{"state ack lost once", tcpmig.StageConnStateAck, 1, false, nil, migrate.ResultMoved},
		{"state ack lost three times", tcpmig.StageConnStateAck, 3, false, nil, migrate.ResultMoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, migrate.Config{}, bytes)
			filter, dropped := dropStage(tc.stage, tc.n, tc.frag)
			if tc.egress {
				f.r.sw.out = filter
			} else {
				f.r.sw.in = filter
			}
			f.start()
			f.finish(10 * time.Second)
			f.expect(tc.want)
			f.expectIntact()
			if *dropped == 0 {
				t.Fatalf("the filter dropped nothing: the test tests nothing")
			}
			holders := 0
			for k := range f.r.servers {
				if f.r.servers[k].h.Stack.LookupConn(f.serverID(k, 0)) != nil {
					holders++
				}
			}
			_ = holders // the streams closed; their connections may be gone
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
	}{
		{"every state fragment lost", func(*fixture) func(pipeline.Port, []byte) bool {
			fl, _ := dropStage(tcpmig.StageConnState, -1, nil)
			return fl
		}},
		{"target killed after its prepare ack", func(f *fixture) func(pipeline.Port, []byte) bool {
			killed := map[pipeline.Port]bool{}
			return func(p pipeline.Port, fr []byte) bool {
				if s, _, ok := stageOf(fr); ok && s == tcpmig.StagePrepareMigAck {
					killed[p] = true // the ACK passes; everything after is lost
					return false
				}
				return killed[p]
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, migrate.Config{}, 4<<20)
			f.r.sw.in = tc.drop(f)
			f.start()
			startAt := f.r.s.Now()
			for f.out == nil && f.r.s.Now() < startAt+5*time.Second {
				f.run(time.Millisecond)
			}
			f.expect(migrate.ResultAborted)
			giveUp := f.r.s.Now() - startAt
			// The client hears the RST at once: its stream fails, not hangs.
			for f.streams[0].err == nil && f.r.s.Now() < startAt+giveUp+50*time.Millisecond {
				f.run(time.Millisecond)
			}
			if err := f.streams[0].conn.Err(); !errors.Is(err, tcp.ErrReset) {
				t.Fatalf("migrated stream's error %v, want a reset within 50 ms of the give-up (%v)", err, giveUp)
			}
			if _, e, ok := f.r.sw.p.Lookup(clientAddr.Addr().As4(), f.streams[0].conn.ID().Local.Port()); ok {
				t.Fatalf("directory still holds %+v after the reset", e)
			}
			for f.streams[1].err == nil && !f.streams[1].done() && f.r.s.Now() < startAt+10*time.Second {
				f.run(time.Millisecond)
			}
			if st := f.streams[1]; st.err != nil || !st.done() {
				t.Fatalf("bystander stream disturbed: %d/%d: %v", st.got, len(st.data), st.err)
			}
		})
	}
}

func TestDuplicatedPrepare(t *testing.T) {
	f := newFixture(t, migrate.Config{}, 4<<20)
	dup := 0
	f.r.sw.in = func(p pipeline.Port, fr []byte) bool {
		if s, _, ok := stageOf(fr); ok && s == tcpmig.StagePrepareMig && dup == 0 {
			dup++
			f.r.sw.in = nil
			f.r.sw.Deliver(f.r.s.Now(), f.r.sw.byID[p], fr) // a second copy, processed first
		}
		return false
	}
	f.start()
	f.finish(10 * time.Second)
	f.expect(migrate.ResultMoved)
	f.expectIntact()
	acc := uint64(0)
	for _, srv := range f.r.servers {
		acc += srv.e.Stats().Accepted
	}
	if dup != 1 || acc != 1 {
		t.Fatalf("duplicated %d PREPAREs, %d targets accepted; want 1 and 1", dup, acc)
	}
}

func TestDirectoryFullRejects(t *testing.T) {
	f := newFixture(t, migrate.Config{}, 4<<20)
	client := f.streams[0].conn.ID().Local
	// Another client's entry in the key's slot on every level.
	for lvl := range 2 {
		idx, err := pipeline.Index(lvl, client.Addr().As4(), client.Port())
		if err != nil {
			t.Fatal(err)
		}
		e := pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 77, 0, 99}, ClientPort: 1, Origin: [4]byte{10, 77, 0, 11}, Target: [4]byte{10, 77, 0, 12}}
		if err := f.r.sw.p.WriteDirectory(lvl, int(idx), e); err != nil {
			t.Fatal(err)
		}
	}
	f.start()
	f.finish(10 * time.Second)
	f.expect(migrate.ResultStayed)
	f.expectIntact()
	if n := f.r.sw.p.Counters().Rejects; n == 0 {
		t.Fatalf("switch counted no full-directory reject")
	}
}

func TestOriginLeastLoadedRejects(t *testing.T) {
	loads := []uint32{0, 50, 50}
	r, err := newRackLoads(loads)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, r: r}
	c, err := r.client.Stack.Connect(netip.AddrPortFrom(serverAddr(0).Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	f.streams = []*stream{{conn: c, data: make([]byte, 1<<20)}}
	r.client.OnStep(func(sim.Time) { f.streams[0].step() })
	f.run(2 * time.Millisecond)
	f.start()
	f.finish(10 * time.Second)
	f.expect(migrate.ResultStayed)
	f.expectIntact()
	if n := r.sw.p.Counters().PrepareRejects; n == 0 {
		t.Fatalf("switch counted no PREPARE rejected for coming back to its sender")
	}
}

func newRackLoads(loads []uint32) (*rack, error) {
	r, err := newRack(1, len(loads), sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 1e9}, migrate.Config{})
	if err != nil {
		return nil, err
	}
	// Replace the engines' workload figures: rebuild them with fixed loads.
	for i, srv := range r.servers {
		srv.e.Close()
		load := loads[i]
		cfg := migrate.Config{Switch: ctlAddr, Seed: uint64(i + 1), Workload: func() uint32 { return load },
			Clock: func() int64 { return int64(r.s.Now()) }}
		if srv.e, err = migrate.New(srv.h.Stack, cfg); err != nil {
			return nil, fmt.Errorf("server %d: %w", i, err)
		}
	}
	return r, nil
}
