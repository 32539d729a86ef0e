package tcp

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

// migrate replaces one end of n with a conn restored from its snapshot,
// checking that the snapshot round-trips byte for byte.
func migrate(t testing.TB, n *net, which string) {
	t.Helper()
	c := n.b
	if which == "A" {
		c = n.a
	}
	c.SetAppState([]byte("session-" + which))
	snap := c.AppendSnapshot(nil, c.lastNow)
	r, err := Restore(c.cfg, snap, n.now)
	if err != nil {
		t.Fatalf("Restore(%s's snapshot): %v", which, err)
	}
	if again := r.AppendSnapshot(nil, r.lastNow); !bytes.Equal(again, snap) {
		t.Fatalf("Restore(AppendSnapshot(%s)) re-snapshots differently:\n% x\n% x", which, snap, again)
	}
	if string(r.AppState()) != "session-"+which || r.State() != c.State() || r.ID() != c.ID() || r.Readable() != c.Readable() {
		t.Fatalf("restored %s: app %q state %v id %v readable %d; original %v %v %d",
			which, r.AppState(), r.State(), r.ID(), r.Readable(), c.State(), c.ID(), c.Readable())
	}
	if which == "A" {
		n.a = r
	} else {
		n.b = r
	}
}

func TestSnapshotMidTransferAndContinue(t *testing.T) {
	for _, which := range []string{"A", "B", "both"} {
		t.Run(which, func(t *testing.T) {
			n := newNet(t, 77)
			n.loss, n.jitter = 0.03, 2*time.Millisecond
			n.dial(Config{RecvBuffer: 64 << 10}, Config{RecvBuffer: 64 << 10})
			aData, bData := payload(2<<20, 3), payload(1<<20, 4)
			pa := &pump{data: aData, done: true}
			pb := &pump{data: bData, done: true}
			n.app = func() {
				pa.c, pb.c = n.a, n.b
				pa.work()
				pb.work()
			}
			// Run until both directions have data in flight and B holds
			// out-of-order data: the hardest moment to move a connection.
			ready := func() bool {
				return n.b != nil && n.a.State() == StateEstablished && n.b.State() == StateEstablished &&
					n.a.sndUna != n.a.sndMax && n.b.sndUna != n.b.sndMax && !n.b.ooo.empty() &&
					pb.got.Len() > 100<<10
			}
			if !n.run(time.Minute, ready) {
				t.Fatalf("never reached a state with data in flight both ways and out-of-order data")
			}
			oooBefore := n.b.ooo.bytes()
			if which != "B" {
				migrate(t, n, "A")
			}
			if which != "A" {
				migrate(t, n, "B")
				if n.b.ooo.bytes() != oooBefore {
					t.Fatalf("restored B holds %d out-of-order bytes, had %d", n.b.ooo.bytes(), oooBefore)
				}
			}
			// Packets in flight still arrive, as the switch redirects them.
			if !n.run(10*time.Minute, func() bool { return pa.eof && pb.eof }) {
				t.Fatalf("after restore: A got %d/%d eof=%v, B got %d/%d eof=%v; A %v B %v",
					pa.got.Len(), len(bData), pa.eof, pb.got.Len(), len(aData), pb.eof, n.a.State(), n.b.State())
			}
			if !bytes.Equal(pb.got.Bytes(), aData) || !bytes.Equal(pa.got.Bytes(), bData) {
				t.Fatalf("bytes differ after migration: A->B diff at %d, B->A diff at %d",
					firstDiff(pb.got.Bytes(), aData), firstDiff(pa.got.Bytes(), bData))
			}
		})
	}
}

func TestRestoreOpensZeroWindow(t *testing.T) {
	// The authors' bug: after migration the window shift overflowed and
	// the client saw a zero window. A restored conn with a large scaled
	// buffer must advertise a non-zero window in its first ACK.
	a, b, now := establish(t, Config{}, Config{RecvBuffer: 1 << 20})
	_ = a
	r, err := Restore(Config{}, b.AppendSnapshot(nil, b.lastNow), now)
	if err != nil {
		t.Fatal(err)
	}
	ack := only(t, "window update after restore", emitted(r, now))
	if ack.Window == 0 || uint32(ack.Window)<<r.rcvShift < 1<<19 {
		t.Fatalf("restored conn advertises %d<<%d, want about 1 MiB", ack.Window, r.rcvShift)
	}
	a.Input(now, &ack)
	if a.sndWnd < 1<<19 {
		t.Fatalf("peer's view of the window after restore = %d", a.sndWnd)
	}
}

func TestRestoreResetsCongestionKeepsTimer(t *testing.T) {
	a, b, now := establish(t, classic(Config{MSS: 1000}), classic(Config{MSS: 1000, DelayedACK: -1}))
	a.Write(make([]byte, 50000))
	for range 5 {
		pingPong(a, b, now)
		now += 10 * time.Millisecond
	}
	a.Write(make([]byte, 3000))
	emitted(a, now) // in flight
	if a.cwnd <= 10000 || !a.hasRTT || !a.retxOn {
		t.Fatalf("setup: cwnd %d hasRTT %v retxOn %v", a.cwnd, a.hasRTT, a.retxOn)
	}
	snapAt := now + 50*time.Millisecond
	left := a.retxAt - snapAt
	snap := a.AppendSnapshot(nil, snapAt)
	now += time.Second // the restore's clock is another host's
	r, err := Restore(classic(Config{InitialRTO: 3 * time.Second}), snap, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.cwnd != 10000 || r.hasRTT || r.rto != a.rto {
		t.Fatalf("restored cwnd %d hasRTT %v rto %v; want initial 10000 (RFC 6928), no RTT, the origin's rto %v", r.cwnd, r.hasRTT, r.rto, a.rto)
	}
	emitted(r, now) // the window-update ACK
	if d, ok := r.Deadline(); !ok || d != now+left {
		t.Fatalf("restored deadline %v %v, want the origin's retransmission timer, %v left: %v", d, ok, left, now+left)
	}
}

// TestTimerSurvivesFrequentMoves: a connection whose segment was lost and
// that moves every 10 ms, far more often than its RTO, still retransmits
// at its RTO. Before the timer moved with it, each restore restarted it.
func TestTimerSurvivesFrequentMoves(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.Write(make([]byte, 2000))
	emitted(a, now) // lost: b never sees it
	cur := a
	for i := 0; i < 200; i++ {
		now += 10 * time.Millisecond
		snap := cur.AppendSnapshot(nil, now)
		r, err := Restore(Config{MSS: 1000}, snap, now)
		if err != nil {
			t.Fatal(err)
		}
		cur = r
		for _, seg := range emitted(cur, now) {
			if len(seg.Payload) > 0 {
				b.Input(now, &seg)
				t.Logf("retransmitted after %d moves (%v)", i+1, time.Duration(i+1)*10*time.Millisecond)
				return
			}
		}
	}
	t.Fatalf("no retransmission in 200 moves 10 ms apart (2 s; initial RTO 1 s)")
}

func TestSnapshotRoundTripStates(t *testing.T) {
	for name, c := range snapshotSamples(t) {
		snap := c.AppendSnapshot([]byte("prefix"), c.lastNow)
		if string(snap[:6]) != "prefix" {
			t.Fatalf("%s: AppendSnapshot clobbered dst", name)
		}
		r, err := Restore(Config{}, snap[6:], 0)
		if err != nil {
			t.Fatalf("%s: Restore: %v", name, err)
		}
		if again := r.AppendSnapshot(nil, r.lastNow); !bytes.Equal(again, snap[6:]) {
			t.Fatalf("%s: round trip differs:\n% x\n% x", name, snap[6:], again)
		}
		if r.State() != c.State() || r.Err() != c.Err() {
			t.Fatalf("%s: restored %v %v, want %v %v", name, r.State(), r.Err(), c.State(), c.Err())
		}
	}
}

// TestSnapshotOneAllocation checks that snapshotSize bounds the output,
// so AppendSnapshot allocates once however much a connection holds: the
// migration's origin pays for one buffer, not for each field that
// overflows the last.
func TestSnapshotOneAllocation(t *testing.T) {
	for name, c := range snapshotSamples(t) {
		if n := len(c.AppendSnapshot(nil, c.lastNow)); n > c.snapshotSize() {
			t.Errorf("%s: snapshot is %d bytes, over snapshotSize %d", name, n, c.snapshotSize())
		}
		if raceEnabled {
			continue
		}
		if allocs := testing.AllocsPerRun(10, func() { c.AppendSnapshot(nil, c.lastNow) }); allocs != 1 {
			t.Errorf("%s: AppendSnapshot(nil) made %v allocations, want 1", name, allocs)
		}
	}
}

// snapshotSamples builds connections in many states for round trips and
// the fuzz corpus.
func snapshotSamples(t testing.TB) map[string]*Conn {
	m := map[string]*Conn{}
	m["syn-sent"] = Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1, 0)
	sent := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1, 0)
	syn := emitted(sent, 0)
	sent.Write([]byte("queued before established"))
	m["syn-sent-data"] = sent
	rcvd, err := Accept(Config{RecvBuffer: 8 << 10}, ID{Local: addrB, Remote: addrA}, &syn[0], 99, 0)
	if err != nil {
		t.Fatal(err)
	}
	emitted(rcvd, 0)
	m["syn-received"] = rcvd

	a, b, now := establish(t, Config{SendBuffer: 8 << 10}, Config{RecvBuffer: 4 << 10})
	a.Write(payload(6000, 1))
	segs := emitted(a, now)
	// Deliver all but the first: B parks out-of-order data.
	feed(b, now, segs[1:])
	b.Write([]byte("reply"))
	b.SetAppState([]byte{1, 2, 3})
	m["established-ooo"] = b
	m["established-unacked"] = a

	v6 := Dial(Config{}, ID{Local: netipMust("[fd00::1]:1"), Remote: netipMust("[fd00::2]:2")}, 5, 0)
	m["ipv6"] = v6

	c, d, now := establish(t, Config{}, Config{})
	c.Close()
	feed(d, now, emitted(c, now))
	feed(c, now, emitted(d, now))
	m["fin-wait-2"], m["close-wait"] = c, d
	e, f, now := establish(t, Config{}, Config{})
	e.Close()
	f.Close()
	pingPong(e, f, now)
	m["time-wait"] = e
	g, h, now := establish(t, Config{}, Config{})
	g.Abort()
	feed(h, now, emitted(g, now))
	m["reset"] = h
	m["aborted"] = g
	return m
}

func TestRestoreRejectsBadInput(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{})
	a.Write(payload(3000, 1))
	feed(b, now, emitted(a, now)[1:])
	b.SetAppState([]byte("state"))
	good := b.AppendSnapshot(nil, b.lastNow)
	// Every truncation fails with a typed error.
	for i := range len(good) {
		_, err := Restore(Config{}, good[:i], now)
		if !errors.Is(err, ErrSnapshotTruncated) && !errors.Is(err, ErrSnapshotCorrupt) {
			t.Fatalf("Restore(first %d of %d bytes) = %v, want ErrSnapshotTruncated", i, len(good), err)
		}
	}
	mut := func(i int, v byte) []byte {
		b := append([]byte(nil), good...)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"magic", mut(0, 'X'), ErrSnapshotMagic},
		{"version", mut(4, 9), ErrSnapshotVersion},
		{"address family", mut(5, 5), ErrSnapshotCorrupt},
		{"state", mut(5+7+7, 200), ErrSnapshotCorrupt},
		{"error code", mut(5+7+7+1, 9), ErrSnapshotCorrupt},
		{"flags", mut(5+7+7+2, 0x80), ErrSnapshotCorrupt},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrSnapshotCorrupt},
	} {
		if _, err := Restore(Config{}, tc.b, now); !errors.Is(err, tc.want) {
			t.Errorf("Restore(bad %s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzRestore(f *testing.F) {
	for _, c := range snapshotSamples(f) {
		f.Add(c.AppendSnapshot(nil, c.lastNow))
	}
	f.Add([]byte("CPYT\x01"))
	f.Add([]byte{})
	// Real snapshots come back byte for byte (TestSnapshotRoundTripStates).
	// An arbitrary accepted one need not: Restore bounds the RTO and the
	// timer's time left by this host's MinRTO and MaxRTO (the origin's may
	// differ), and derives what the connection's state implies (the timer
	// that its data in flight needs, a received FIN's sequence). Its
	// re-encoding must then be a fixed point, within any bounds.
	wide := Config{MinRTO: time.Microsecond, MaxRTO: math.MaxUint32 * time.Microsecond}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c *Conn
		for _, cfg := range []Config{wide, {}} {
			var err error
			c, err = Restore(cfg, b, 0)
			if err != nil {
				if c != nil {
					t.Fatalf("Restore returned a conn with error %v", err)
				}
				return
			}
			again := c.AppendSnapshot(nil, c.lastNow)
			c2, err := Restore(cfg, again, 0)
			if err != nil {
				t.Fatalf("a restored snapshot's re-encoding is refused: %v\n% x", err, again)
			}
			if twice := c2.AppendSnapshot(nil, c2.lastNow); !bytes.Equal(twice, again) {
				t.Fatalf("a restored snapshot's re-encoding changes again:\n% x\n% x", again, twice)
			}
		}
		// A restored conn must survive being driven.
		c.Output(time.Second, func(*Segment) {})
		c.Read(make([]byte, 64))
		c.Write([]byte("x"))
		if d, ok := c.Deadline(); ok {
			c.Output(d+time.Hour, func(*Segment) {})
		}
	})
}

// BenchmarkSnapshotRestore moves a connection with 4 KiB queued in its send
// buffer and 4 KiB unread in its receive buffer: encode into a reused
// buffer, then decode into a fresh Conn (which allocates its buffers).
func BenchmarkSnapshotRestore(b *testing.B) {
	a, c, now := establish(b, Config{SendBuffer: 4 << 10, RecvBuffer: 4 << 10}, Config{SendBuffer: 4 << 10, RecvBuffer: 4 << 10})
	a.Write(payload(4<<10, 1))
	feed(c, now, emitted(a, now))
	c.Write(payload(4<<10, 2))
	if a.sndBuf.len() != 4<<10 || c.rcvBuf.len() != 4<<10 || c.sndBuf.len() != 4<<10 {
		b.Fatalf("setup: buffers %d/%d/%d, want 4 KiB each", a.sndBuf.len(), c.rcvBuf.len(), c.sndBuf.len())
	}
	buf := c.AppendSnapshot(nil, c.lastNow)
	b.Run("both", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = c.AppendSnapshot(buf[:0], c.lastNow)
			if _, err := Restore(Config{}, buf, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = c.AppendSnapshot(buf[:0], c.lastNow)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Restore(Config{}, buf, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestRestoreLimitedRefusesLargeBuffers(t *testing.T) {
	a, _, now := establish(t, Config{SendBuffer: 256 << 10, RecvBuffer: 64 << 10}, Config{})
	snap := a.AppendSnapshot(nil, a.lastNow)
	if _, err := RestoreLimited(Config{}, snap, now, 128<<10); !errors.Is(err, ErrSnapshotTooLarge) {
		t.Fatalf("RestoreLimited(256 KiB send buffer, limit 128 KiB) = %v, want ErrSnapshotTooLarge", err)
	}
	if _, err := RestoreLimited(Config{}, snap, now, 256<<10); err != nil {
		t.Fatalf("RestoreLimited(256 KiB send buffer, limit 256 KiB) = %v, want success", err)
	}
}
