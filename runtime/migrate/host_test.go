package migrate

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/tcp"
)

// fakeHost is a Host with one established connection, whose Freeze
// answers what the test says, and which records what the engine sends.
type fakeHost struct {
	now       tcp.Time
	conn      tcp.ID
	freezeErr error
	sent      []sentMsg
	postLater bool     // Post keeps fn in posted, as a busy event loop would
	posted    []func() // run by the test
	gone      bool     // Lookup no longer finds the connection
	freezes   bool     // Freeze succeeds (with freezeErr nil)
	frozen    *fakeFrozen
}

type sentMsg struct {
	dst   netip.Addr
	stage tcpmig.Stage
	load  bool
}

func (h *fakeHost) Addr() netip.Addr     { return h.conn.Local.Addr() }
func (h *fakeHost) Now() tcp.Time        { return h.now }
func (h *fakeHost) Attach(*Engine) error { return nil }
func (h *fakeHost) Detach()              {}
func (h *fakeHost) Burst(fn func())      { fn() }
func (h *fakeHost) Post(fn func()) {
	if h.postLater {
		h.posted = append(h.posted, fn)
		return
	}
	fn()
}
func (h *fakeHost) NumConns() int          { return 1 }
func (h *fakeHost) Hold(tcp.ID)            {}
func (h *fakeHost) Tomb(tcp.ID, tcp.Time)  {}
func (h *fakeHost) Untomb(tcp.ID)          {}
func (h *fakeHost) Counters() HostCounters { return HostCounters{} }
func (h *fakeHost) Replay(tcp.ID) (int, int) {
	return 0, 0
}
func (h *fakeHost) Discard(tcp.ID) (int, int) { return 0, 0 }

func (h *fakeHost) SendUDP(dst netip.Addr, b []byte) error {
	m := sentMsg{dst: dst, stage: tcpmig.TCPMig(b).Stage()}
	if m.stage == tcpmig.StagePrepareMigAck {
		var ack tcpmig.PrepareMigAck
		if err := ack.Decode(b); err != nil {
			return err
		}
		m.load = ack.Load
	}
	h.sent = append(h.sent, m)
	return nil
}

func (h *fakeHost) Lookup(id tcp.ID) (ConnInfo, bool) {
	if id != h.conn || h.gone {
		return ConnInfo{}, false
	}
	return ConnInfo{Established: true, Origin: h.conn.Local}, true
}

func (h *fakeHost) Freeze(tcp.ID, func(string, time.Duration)) (Frozen, error) {
	if h.freezeErr != nil || !h.freezes {
		return nil, h.freezeErr
	}
	h.frozen = &fakeFrozen{}
	return h.frozen, nil
}

// fakeFrozen is a frozen connection whose state is a few bytes, and which
// records how it ended.
type fakeFrozen struct{ released, aborted bool }

func (f *fakeFrozen) Serialize(dst, app []byte) ([]byte, error) {
	return append(append(dst, "state"...), app...), nil
}
func (f *fakeFrozen) Release()            { f.released = true }
func (f *fakeFrozen) Abort(time.Duration) { f.aborted = true }

func (h *fakeHost) Restore(tcp.Time, []byte, tcp.ID, netip.AddrPort, int, func(string, time.Duration)) ([]byte, func(), error) {
	return nil, nil, errors.New("fakeHost restores nothing")
}

// TestFreezeFailedKeepsConnection: a Host that finds the connection not
// movable at the freeze (ErrNotMovable) makes the origin machine take
// freeze_failed: the migration ends stayed, at once, and a LOAD
// PREPARE_MIG_ACK to the server that acknowledged takes the directory
// entry back. Any other freeze error leaves the spec's CONN_STATE
// timeout to abort.
func TestFreezeFailedKeepsConnection(t *testing.T) {
	target := netip.MustParseAddr("10.0.0.2")
	for _, tc := range []struct {
		name      string
		err       error
		want      Result
		reclaimed bool
	}{
		{"not movable", ErrNotMovable, ResultStayed, true},
		{"other failure", errors.New("dump failed"), ResultAborted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{now: time.Second, conn: testConn, freezeErr: tc.err}
			e, outp := startOnFake(t, h)
			if len(h.sent) != 1 || h.sent[0].stage != tcpmig.StagePrepareMig {
				t.Fatalf("sent %+v, want one PREPARE_MIG", h.sent)
			}
			e.Datagram(target, loadAck(t, e))
			// The other failure ends only when the CONN_STATE timer gives up.
			for i := 0; *outp == nil && i < 100; i++ {
				h.now += 25 * time.Millisecond
				e.Advance(h.now)
			}
			out := *outp
			if out == nil {
				t.Fatal("the migration never ended")
			}
			if out.Result != tc.want {
				t.Fatalf("outcome %v (%v), want %v", out.Result, out.Err, tc.want)
			}
			reclaimed := false
			for _, m := range h.sent[1:] {
				if m.stage == tcpmig.StagePrepareMigAck && m.load && m.dst == target {
					reclaimed = true
				}
			}
			if reclaimed != tc.reclaimed {
				t.Errorf("LOAD PREPARE_MIG_ACK to the target sent: %v, want %v (sent %+v)", reclaimed, tc.reclaimed, h.sent)
			}
		})
	}
}

// Start's first step waits for the host's loop. If the engine closes, or
// the connection ends, before the loop takes it, done hears so exactly
// once, nothing is sent, and the connection is free for a later Start.
func TestStartEndsBeforeItsFirstStep(t *testing.T) {
	id := tcp.ID{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.9:40000")}
	for _, tc := range []struct {
		name   string
		cut    func(e *Engine, h *fakeHost)
		result Result
		err    error
	}{
		{"engine closed", func(e *Engine, h *fakeHost) { e.Close() }, ResultStayed, ErrClosed},
		{"connection gone", func(e *Engine, h *fakeHost) { h.gone = true }, ResultStayed, ErrNotReady},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{now: time.Second, conn: id, postLater: true}
			e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			var outs []Outcome
			if err := e.Start(id, nil, func(o Outcome) { outs = append(outs, o) }); err != nil {
				t.Fatal(err)
			}
			if len(h.posted) != 1 {
				t.Fatalf("Start posted %d steps, want 1", len(h.posted))
			}
			tc.cut(e, h)
			h.posted[0]()
			if len(h.sent) != 0 {
				t.Fatalf("sent %+v for a migration that never began", h.sent)
			}
			if len(outs) != 1 || outs[0].Result != tc.result || !errors.Is(outs[0].Err, tc.err) {
				t.Fatalf("outcomes %+v, want one %v with %v", outs, tc.result, tc.err)
			}
			if tc.err == ErrNotReady {
				h.gone, h.postLater = false, false
				if err := e.Start(id, nil, func(Outcome) {}); err != nil {
					t.Fatalf("a later Start: %v", err)
				}
				if len(h.sent) != 1 || h.sent[0].stage != tcpmig.StagePrepareMig {
					t.Fatalf("a later Start sent %+v, want one PREPARE_MIG", h.sent)
				}
			}
		})
	}
}

// TestStartRefusalsAreCounted: a Start that returns an error leaves no
// record and calls nothing, so Stats.NotStarted is where a driver sees it.
func TestStartRefusalsAreCounted(t *testing.T) {
	id := tcp.ID{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.9:40000")}
	other := tcp.ID{Local: id.Local, Remote: netip.MustParseAddrPort("10.0.0.9:40001")}
	h := &fakeHost{now: time.Second, conn: id, postLater: true}
	e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(other, nil, func(Outcome) {}); !errors.Is(err, ErrNoConn) {
		t.Fatalf("Start of an unknown connection: %v, want ErrNoConn", err)
	}
	if err := e.Start(id, nil, func(Outcome) {}); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(id, nil, func(Outcome) {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second Start while the first is under way: %v, want ErrBusy", err)
	}
	if st := e.Stats(); st.NotStarted != 2 || st.Started != 1 {
		t.Fatalf("NotStarted %d, Started %d; want 2 and 1", st.NotStarted, st.Started)
	}
}

// TestCloseDuringTransferDropsTheFrozenCopy: an engine closed with a
// connection frozen and its state in flight cannot let it go on here (the
// switch steers its client to the target), nor reset it (the target may
// serve it now): the copy is released, and the migration ends aborted,
// not stayed, so that its application stops serving it.
func TestCloseDuringTransferDropsTheFrozenCopy(t *testing.T) {
	h := &fakeHost{now: time.Second, conn: testConn, freezes: true}
	e, out := startOnFake(t, h)
	e.Datagram(netip.MustParseAddr("10.0.0.2"), loadAck(t, e))
	if h.frozen == nil || *out != nil {
		t.Fatalf("after the ACK: frozen %v, outcome %v; want frozen and in flight", h.frozen, *out)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if o := *out; o == nil || o.Result != ResultAborted || !errors.Is(o.Err, ErrClosed) {
		t.Fatalf("outcome %+v, want aborted with ErrClosed", o)
	}
	if !h.frozen.released || h.frozen.aborted {
		t.Errorf("frozen copy released %v, aborted %v; want released only", h.frozen.released, h.frozen.aborted)
	}
}

// testConn is the fake host's connection.
var testConn = tcp.ID{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.9:40000")}

// startOnFake starts migrating h's connection on a new engine; *out is
// its outcome once it ends.
func startOnFake(t *testing.T, h *fakeHost) (*Engine, **Outcome) {
	t.Helper()
	e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	out := new(*Outcome)
	if err := e.Start(h.conn, nil, func(o Outcome) { *out = &o }); err != nil {
		t.Fatal(err)
	}
	return e, out
}

// loadAck is a target's acceptance (a PREPARE_MIG_ACK with LOAD) of e's
// one migration.
func loadAck(t *testing.T, e *Engine) []byte {
	t.Helper()
	e.mu.Lock()
	var k key
	for kk := range e.out {
		k = kk
	}
	e.mu.Unlock()
	ack := tcpmig.PrepareMigAck{TCPMigFields: k.fields()}
	ack.Load = true
	b := make([]byte, ack.EncodedLen())
	if _, err := ack.Encode(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEpochsOfEndedConnectionsGo: a connection whose migration stayed
// keeps its epoch after the machine is forgotten, and nothing tells the
// engine when it ends here; Start's sweep forgets those of connections
// that ended, so the map does not grow with every connection that ever
// tried to move.
func TestEpochsOfEndedConnectionsGo(t *testing.T) {
	id := tcp.ID{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.9:40000")}
	h := &fakeHost{now: time.Second, conn: id}
	e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	for i := range 1000 { // ended here: the host no longer has them
		e.epochs[tcp.ID{Local: id.Local, Remote: netip.AddrPortFrom(id.Remote.Addr(), uint16(1000+i))}] = 7
	}
	e.mu.Unlock()
	for range 1000 {
		e.Start(id, nil, func(Outcome) {}) //nolint:errcheck // busy after the first: the sweep runs either way
	}
	e.mu.Lock()
	left, live := len(e.epochs), e.epochs[id] != 0
	e.mu.Unlock()
	if left != 1 || !live {
		t.Fatalf("%d epochs left (the live connection's kept: %v), want only the live connection's", left, live)
	}
}

// A connection's end that the host reports makes the engine due at once,
// for whatever now the host then passes: the host's Now, read after the
// now of the Advance it is compared with, was never due, and the stack's
// loop spun without advancing the engine.
func TestConnGoneIsDueAtOnce(t *testing.T) {
	h := &fakeHost{now: time.Second, conn: testConn}
	e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.ConnGone(testConn)
	h.now += time.Millisecond // the host's clock runs on
	if d, ok := e.NextDeadline(); !ok || d > time.Second {
		t.Errorf("NextDeadline after ConnGone = %v, %v; want due for an Advance at 1s", d, ok)
	}
	e.Advance(time.Second)
	if _, ok := e.NextDeadline(); ok {
		t.Error("the engine is still due after the Advance that checked the report")
	}
}
