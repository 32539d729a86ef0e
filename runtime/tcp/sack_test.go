package tcp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// Each option is on only when both ends offer it; every segment after the
// handshake then carries the timestamp (and none does without it), and a
// transfer with losses completes either way.
func TestOptionNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       Config
		sack, ts   bool
		wantBlocks bool
	}{
		{"both on", Config{}, Config{}, true, true, true},
		{"both off", classic(Config{}), classic(Config{}), false, false, false},
		{"dialer without SACK", Config{NoSACK: true}, Config{}, false, true, false},
		{"acceptor without timestamps", Config{}, Config{NoTimestamps: true}, true, false, true},
		{"SACK from one, timestamps from the other", Config{NoTimestamps: true}, Config{NoSACK: true}, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 31)
			tc.a.MSS, tc.b.MSS = 1000, 1000
			n.dial(tc.a, tc.b)
			base := uint32(1001)
			mss := uint32(1000)
			if tc.ts {
				mss -= tsOptLen
			}
			n.drop = dropFirst(&base, 20*mss, 40*mss)
			var stamped, bare, blocks int
			n.tap = func(fromA bool, s *Segment) {
				if s.Flags&FlagSYN != 0 || s.Flags&FlagRST != 0 {
					return
				}
				if s.HasTS {
					stamped++
				} else {
					bare++
				}
				if s.NumSACK > 0 {
					blocks++
				}
			}
			up := payload(200000, 31)
			_, pb := exchange(t, n, up, nil, time.Minute)
			if !bytes.Equal(pb.got.Bytes(), up) {
				t.Fatalf("B got %d bytes, want %d", pb.got.Len(), len(up))
			}
			for i, c := range []*Conn{n.a, n.b} {
				if c.sackOK != tc.sack || c.tsOK != tc.ts {
					t.Fatalf("conn %d: SACK %v timestamps %v, want %v %v", i, c.sackOK, c.tsOK, tc.sack, tc.ts)
				}
			}
			if tc.ts && bare != 0 || !tc.ts && stamped != 0 {
				t.Fatalf("%d segments with timestamps and %d without; want all or none (timestamps %v)", stamped, bare, tc.ts)
			}
			if (blocks > 0) != tc.wantBlocks {
				t.Fatalf("%d segments carried SACK blocks; want some: %v", blocks, tc.wantBlocks)
			}
			if st := n.a.Stats(); st.Timeouts != 0 || st.Retransmits != 2 {
				t.Fatalf("two losses: %d RTOs and %d retransmissions, want 0 and 2 (%+v)", st.Timeouts, st.Retransmits, st)
			}
		})
	}
}

// Several holes in one window (RFC 6675's case): with SACK the sender
// learns every hole from the first ACKs and resends exactly the lost
// segments in one recovery, without an RTO; NewReno, one hole a round
// trip, takes a round trip per hole.
func TestSACKRepairsSeveralHolesInOneRecovery(t *testing.T) {
	holes := []uint32{30, 33, 36, 39, 42, 45}
	run := func(cfg Config) (st Stats, repair Time) {
		n := newNet(t, 32)
		cfg.MSS = 1000
		n.dial(cfg, cfg)
		base := uint32(1001)
		mss := uint32(988)
		if cfg.NoTimestamps {
			mss = 1000
		}
		var offs []uint32
		for _, h := range holes {
			offs = append(offs, h*mss)
		}
		n.drop = dropFirst(&base, offs...)
		// From the first duplicate ACK to the ACK past the last hole.
		var first, done Time
		last := base + (holes[len(holes)-1]+1)*mss
		n.tap = func(fromA bool, s *Segment) {
			switch {
			case fromA:
			case first == 0 && s.Ack == base+holes[0]*mss && s.NumSACK > 0 || first == 0 && s.Ack == base+holes[0]*mss && cfg.NoSACK:
				first = n.now
			case done == 0 && seqGEQ(s.Ack, last):
				done = n.now
			}
		}
		up := payload(300000, 32)
		_, pb := exchange(t, n, up, nil, time.Minute)
		if !bytes.Equal(pb.got.Bytes(), up) {
			t.Fatalf("B got %d bytes, want %d", pb.got.Len(), len(up))
		}
		return n.a.Stats(), done - first
	}
	sack, sackTook := run(Config{})
	reno, renoTook := run(classic(Config{}))
	t.Logf("repair of %d holes: SACK %v with %d retransmits; NewReno %v with %d", len(holes), sackTook, sack.Retransmits, renoTook, reno.Retransmits)
	if sack.Timeouts != 0 || sack.FastRetransmits != 1 || sack.Retransmits != uint64(len(holes)) || sack.RACKLost != uint64(len(holes)) {
		t.Fatalf("SACK: Timeouts %d recoveries %d Retransmits %d RACKLost %d; want 0, 1, %d, %d (%+v)",
			sack.Timeouts, sack.FastRetransmits, sack.Retransmits, sack.RACKLost, len(holes), len(holes), sack)
	}
	// The path's RTT is 10 ms: SACK repairs within a few, NewReno needs
	// about one per hole.
	if sackTook > 35*time.Millisecond || renoTook < sackTook+20*time.Millisecond {
		t.Fatalf("repair took %v with SACK and %v with NewReno; want SACK within 3.5 RTTs and well ahead", sackTook, renoTook)
	}
}

// The receiver reports the range holding the segment it got last first,
// then the others from the highest (RFC 2018 §4), and a duplicate below
// rcv.nxt in a D-SACK block ahead of them (RFC 2883).
func TestSACKBlocksOrder(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.Write(make([]byte, 10*988))
	segs := emitted(a, now)
	if len(segs) != 10 {
		t.Fatalf("A sent %d segments, want 10", len(segs))
	}
	rcv := func(i int) Segment {
		b.Input(now, &segs[i])
		acks := emitted(b, now)
		return acks[len(acks)-1]
	}
	rcv(0)
	rcv(2)
	rcv(6)
	ack := rcv(4)
	want := []SACKBlock{{segs[4].Seq, segs[5].Seq}, {segs[6].Seq, segs[7].Seq}, {segs[2].Seq, segs[3].Seq}}
	if got := ack.SACKBlocks(); !equalBlocks(got, want) {
		t.Fatalf("SACK blocks %v, want %v (latest first, then from the highest)", got, want)
	}
	ack = rcv(0) // again: a duplicate
	want = append([]SACKBlock{{segs[0].Seq, segs[1].Seq}}, want...)
	if got := ack.SACKBlocks(); !equalBlocks(got, want[:3]) {
		t.Fatalf("after a duplicate, SACK blocks %v, want the D-SACK first: %v", got, want[:3])
	}
	enc := AppendSegment(nil, addrB.Addr(), addrA.Addr(), &ack)
	dec, err := ParseSegment(enc, addrB.Addr(), addrA.Addr())
	if err != nil || !equalBlocks(dec.SACKBlocks(), want[:3]) || !dec.HasTS {
		t.Fatalf("decoded %v (err %v): blocks %v, want %v and a timestamp", dec.String(), err, dec.SACKBlocks(), want[:3])
	}
}

func equalBlocks(a, b []SACKBlock) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Reordering is not loss: once RACK has seen it (a segment delivered below
// a later one, or a D-SACK for a spurious resend), its reordering window
// holds off retransmission, where duplicate-ACK counting resends on every
// third out-of-order arrival.
func TestRACKToleratesReordering(t *testing.T) {
	run := func(cfg Config) Stats {
		n := newNet(t, 33)
		cfg.MSS = 1000
		n.dial(cfg, cfg)
		n.jitter = 2 * time.Millisecond // 10 ms RTT: a quarter of it is 2.5 ms
		up := payload(1<<20, 33)
		_, pb := exchange(t, n, up, nil, 5*time.Minute)
		if !bytes.Equal(pb.got.Bytes(), up) {
			t.Fatalf("B got %d bytes, want %d", pb.got.Len(), len(up))
		}
		return n.a.Stats()
	}
	rack, reno := run(Config{}), run(classic(Config{}))
	t.Logf("spurious retransmissions: RACK %d (D-SACKs %d), NewReno %d", rack.Retransmits, rack.DSACKs, reno.Retransmits)
	if rack.Timeouts != 0 || rack.Retransmits > 3 || rack.Retransmits*5 > reno.Retransmits {
		t.Fatalf("no loss, 2 ms of reordering: RACK resent %d segments (%d RTOs), NewReno %d; want at most 3 and a fifth of NewReno's",
			rack.Retransmits, rack.Timeouts, reno.Retransmits)
	}
}

// PAWS (RFC 7323 §5): a segment whose timestamp is older than TS.Recent
// is an old duplicate; it is dropped and answered with an ACK even though
// its sequence numbers are acceptable, with a D-SACK when it holds data
// already received.
func TestPAWSDropsOldDuplicate(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	a.Write([]byte("first"))
	old := only(t, "first", emitted(a, now))
	b.Input(now, &old)
	feed(a, now, emitted(b, now))
	now += time.Second
	a.Write([]byte("second"))
	cur := only(t, "second", emitted(a, now))
	b.Input(now, &cur)
	emitted(b, now)
	// The old segment again, at a sequence number B would accept.
	dup := old
	dup.Seq = b.rcvNxt
	b.Input(now, &dup)
	if st := b.Stats(); st.PAWSRejected != 1 {
		t.Fatalf("PAWSRejected %d, want 1", st.PAWSRejected)
	}
	if b.Readable() != len("first")+len("second") {
		t.Fatalf("B has %d bytes to read; the old duplicate must not add any", b.Readable())
	}
	ack := only(t, "ACK", emitted(b, now))
	if ack.Flags != FlagACK || ack.Ack != b.rcvNxt || ack.TSEcr != cur.TSVal {
		t.Fatalf("answer %v, want an ACK of %d echoing the current %d", ack.String(), b.rcvNxt, cur.TSVal)
	}
	// The old segment itself, data B has: dropped by PAWS too, and
	// reported in a D-SACK, as Linux does.
	b.Input(now, &old)
	ack = only(t, "ACK", emitted(b, now))
	if ack.NumSACK == 0 || ack.SACK[0] != (SACKBlock{old.Seq, old.Seq + uint32(len(old.Payload))}) {
		t.Fatalf("answer to an old duplicate %v, want a D-SACK of [%d,%d)", ack.String(), old.Seq, old.Seq+uint32(len(old.Payload)))
	}
	// A RST is never PAWS-checked.
	rst := Segment{SrcPort: dup.SrcPort, DstPort: dup.DstPort, Seq: b.rcvNxt, Flags: FlagRST, HasTS: true, TSVal: old.TSVal, WindowScale: -1}
	b.Input(now, &rst)
	if b.State() != StateClosed {
		t.Fatalf("after an exact RST with an old timestamp B is %v, want CLOSED", b.State())
	}
}

// With timestamps an ACK of a retransmitted segment still gives an RTT
// sample (RFC 7323 §4): the echo names the transmission it answers, which
// Karn's rule cannot know.
func TestTimestampRTTSampleAfterRetransmission(t *testing.T) {
	a, b, now := establish(t, Config{InitialRTO: time.Second, MinRTO: time.Second}, Config{DelayedACK: -1})
	samples := a.Stats().RTTSamples
	a.Write([]byte("x"))
	emitted(a, now) // lost
	now += 1500 * time.Millisecond
	re := only(t, "retransmission", emitted(a, now))
	b.Input(now, &re)
	now += 10 * time.Millisecond
	feed(a, now, emitted(b, now))
	if got := a.Stats().RTTSamples; got != samples+1 {
		t.Fatalf("RTT samples %d, want %d: one from the echoed timestamp", got, samples+1)
	}
	if a.srtt > 20*time.Millisecond || a.rto != time.Second {
		t.Fatalf("after the sample SRTT %v RTO %v; want about 10 ms and the 1 s floor (the backoff undone)", a.srtt, a.rto)
	}
}

// The options move with the connection, and the timestamp clock goes on
// from the origin's whatever the target's clock reads; the scoreboard
// does not move, and what was in flight is resent only if lost.
func TestSnapshotCarriesOptions(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	a.Write(make([]byte, 20000))
	feed(b, now, emitted(a, now))
	last := emitted(b, now)
	lastTS := last[len(last)-1].TSVal
	snap := b.AppendSnapshot(nil, now)
	for _, target := range []Time{now - 50*time.Second, now + 1000*time.Hour} {
		r, err := Restore(Config{}, snap, target)
		if err != nil {
			t.Fatal(err)
		}
		if !r.sackOK || !r.tsOK || r.tsRecent != b.tsRecent {
			t.Fatalf("restored SACK %v timestamps %v TS.Recent %d, want on, on, %d", r.sackOK, r.tsOK, r.tsRecent, b.tsRecent)
		}
		ack := emitted(r, target)
		if len(ack) == 0 || !ack[0].HasTS || seqLT(ack[0].TSVal, lastTS) || ack[0].TSEcr != b.tsRecent {
			t.Fatalf("restored at %v: first segment %v, want a timestamp >= %d echoing %d", target, ack, lastTS, b.tsRecent)
		}
	}
	// A connection with data in flight restores its records, and a
	// round of ACKs clears them.
	snapA := a.AppendSnapshot(nil, now)
	ra, err := Restore(Config{}, snapA, now)
	if err != nil {
		t.Fatal(err)
	}
	if ra.txq.n == 0 || ra.sndMax-ra.sndUna != a.sndMax-a.sndUna {
		t.Fatalf("restored sender: %d records for %d bytes in flight", ra.txq.n, ra.sndMax-ra.sndUna)
	}
	feed(ra, now, last)
	if ra.txq.n != 0 || ra.sackedBytes != 0 || ra.lostBytes != 0 {
		t.Fatalf("after the ACK of everything: %d records, %d SACKed and %d lost bytes left", ra.txq.n, ra.sackedBytes, ra.lostBytes)
	}
}

// A snapshot from the build before the options is refused by name.
func TestSnapshotVersion2Refused(t *testing.T) {
	a, _, now := establish(t, Config{}, Config{})
	snap := a.AppendSnapshot(nil, now)
	snap[len(snapshotMagic)] = 2
	_, err := Restore(Config{}, snap, now)
	if !errors.Is(err, ErrSnapshotVersion) {
		t.Fatalf("Restore of a version 2 snapshot: %v, want ErrSnapshotVersion", err)
	}
	t.Log(err)
}

// A receiver may drop data it SACKed (RFC 2018 §8). The sender keeps
// SACKed data through one RTO, but when the segment at snd.una itself is
// SACKed, or a second RTO comes, it resends that data too and the
// connection completes.
func TestSACKRenegingRecovers(t *testing.T) {
	a, b, now := establish(t, Config{MinRTO: 200 * time.Millisecond}, Config{DelayedACK: -1})
	mss := uint32(a.sndMSS)
	a.Write(make([]byte, 5*mss))
	segs := emitted(a, now)
	if len(segs) != 5 {
		t.Fatalf("A sent %d segments, want 5", len(segs))
	}
	// B says it holds segments 1-4 and then forgets them (a renege):
	// a forged ACK carries the SACK block, and B never sees the data.
	ack := Segment{SrcPort: addrB.Port(), DstPort: addrA.Port(), Seq: b.sndNxt, Ack: segs[0].Seq, Flags: FlagACK,
		Window: 0xffff, WindowScale: -1, HasTS: true, TSVal: b.tsClock(now), TSEcr: segs[0].TSVal,
		NumSACK: 1, SACK: [MaxSACKBlocks]SACKBlock{{segs[1].Seq, segs[4].Seq + mss}}}
	now += time.Millisecond
	a.Input(now, &ack)
	if a.sackedBytes != 4*mss {
		t.Fatalf("SACKed bytes %d, want %d", a.sackedBytes, 4*mss)
	}
	// Deliver only what A sends from now on; B lost everything before.
	for range 200 {
		out := emitted(a, now)
		feed(b, now, out)
		feed(a, now, emitted(b, now))
		if a.sndUna == a.sndMax {
			break
		}
		if d, ok := a.Deadline(); ok {
			now = max(now+time.Millisecond, d)
		}
	}
	if a.sndUna != a.sndMax || b.Readable() != 5*int(mss) {
		t.Fatalf("after the renege: una %d max %d, B has %d bytes; want all %d delivered (stats %+v)",
			a.sndUna, a.sndMax, b.Readable(), 5*int(mss), a.Stats())
	}
}

// Timestamps give an RTT sample only where Karn's rule stopped our own
// timing: millisecond ticks from every ACK would drown the microsecond
// samples of a datacenter path.
func TestTimestampRTTOnlyAfterKarn(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	samples := a.Stats().RTTSamples
	a.Write(payload(10*int(a.sndMSS), 60))
	segs := emitted(a, now)
	now += 100 * time.Microsecond
	for i := range segs {
		feed(b, now, segs[i:i+1])
		feed(a, now, emitted(b, now))
	}
	if a.sndUna != a.sndMax {
		t.Fatalf("una %d max %d: not all acknowledged", a.sndUna, a.sndMax)
	}
	if got := a.Stats().RTTSamples - samples; got != 1 {
		t.Fatalf("%d RTT samples from one window of ACKs without retransmissions, want 1 (our own timing)", got)
	}
	if a.srtt > time.Millisecond {
		t.Fatalf("SRTT %v on a 100 µs path", a.srtt)
	}
}

// A D-SACK that a full-size retransmission had no room for goes in the
// next segment with room, here the ACK that follows it.
func TestDSACKWaitsForRoom(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	b.Write(payload(int(b.sndMSS), 61))
	emitted(b, now) // lost: b retransmits it on its timeout
	a.Write(payload(int(a.sndMSS), 62))
	seg := only(t, "A's segment", emitted(a, now))
	feed(b, now, []Segment{seg})
	emitted(b, now)
	now = b.retxAt
	feed(b, now, []Segment{seg}) // a duplicate: a D-SACK is due
	out := emitted(b, now)
	if len(out) < 2 || len(out[0].Payload) != int(b.sndMSS) {
		t.Fatalf("B sent %v, want its full-size retransmission, then an ACK", out)
	}
	for _, s := range out {
		if s.NumSACK > 0 && s.SACK[0] == (SACKBlock{seg.Seq, seg.Seq + uint32(len(seg.Payload))}) {
			return
		}
	}
	t.Fatalf("no segment of %v carries the D-SACK for [%d,%d)", out, seg.Seq, seg.Seq+uint32(len(seg.Payload)))
}

// An out-of-order FIN right after the highest range extends that block;
// it takes no block of its own from a data segment's payload.
func TestSACKSpaceCountsMergedFINOnce(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.Write(payload(2*int(a.sndMSS), 63))
	a.Close()
	segs := emitted(a, now)
	if len(segs) != 2 || segs[1].Flags&FlagFIN == 0 {
		t.Fatalf("A sent %v, want two segments, the FIN on the second", segs)
	}
	feed(b, now, segs[1:]) // beyond the hole, with the FIN
	if want := sackOptBase + sackBlockLen; b.sackSpace() != want {
		t.Fatalf("SACK space %d with one range ending in the FIN, want %d (one block)", b.sackSpace(), want)
	}
}

// RACK's minimum RTT is a windowed minimum (Linux's 5-minute
// tcp_min_rtt_wlen): a path that got longer for good is seen as such once
// the window has passed, and a shorter sample takes over at once.
func TestMinRTTWindow(t *testing.T) {
	var m winMin
	now := time.Second
	m.update(now, 100*time.Microsecond)
	for range 100 { // the path moves to 10 ms for good
		now += 5 * time.Second
		m.update(now, 10*time.Millisecond)
	}
	if got := m.get(); got != 10*time.Millisecond {
		t.Fatalf("min RTT %v after more than 5 minutes of 10 ms samples, want 10ms", got)
	}
	m.update(now, 2*time.Millisecond)
	if got := m.get(); got != 2*time.Millisecond {
		t.Fatalf("min RTT %v after a 2 ms sample, want 2ms", got)
	}
	for range 20 { // inside the window the minimum holds
		now += 5 * time.Second
		m.update(now, 10*time.Millisecond)
	}
	if got := m.get(); got != 2*time.Millisecond {
		t.Fatalf("min RTT %v 100 s after a 2 ms sample, want it still 2ms", got)
	}
}

// A segment that was only late, not lost, draws a fast retransmission
// and its cwnd cut; the D-SACK for the retransmission shows the peer had
// it twice, and the cut is undone (RFC 3708's idea, Linux's
// tcp_try_undo_dsack).
// lateFirst sends ten segments from A to B whose first is late: B SACKs
// the other nine, and A enters recovery. It returns A's cwnd and
// ssthresh from before.
func lateFirst(t *testing.T, seed uint64) (a, b *Conn, segs []Segment, cwnd, ssthresh uint32, now Time) {
	t.Helper()
	a, b, now = establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.Write(payload(10*int(a.sndMSS), seed))
	segs = emitted(a, now)
	cwnd, ssthresh = a.cwnd, a.ssthresh
	now += 10 * time.Millisecond
	feed(b, now, segs[1:]) // the first is late
	feed(a, now, emitted(b, now))
	return a, b, segs, cwnd, ssthresh, now
}

func TestDSACKUndoesSpuriousRecovery(t *testing.T) {
	a, b, segs, cwnd, ssthresh, now := lateFirst(t, 80)
	if !a.inRecovery || a.ssthresh >= ssthresh {
		t.Fatalf("after SACKs for all but the first segment: recovery %v, ssthresh %d (was %d); want a recovery with a cut", a.inRecovery, a.ssthresh, ssthresh)
	}
	re := emitted(a, now)
	if len(re) == 0 || re[0].Seq != segs[0].Seq {
		t.Fatalf("A sent %v, want the first segment again", re)
	}
	now += 5 * time.Millisecond
	feed(b, now, segs[:1]) // the original arrives after all
	feed(a, now, emitted(b, now))
	feed(b, now, re[:1]) // and then the retransmission: a duplicate
	feed(a, now, emitted(b, now))
	if st := a.Stats(); st.DSACKs != 1 || st.Undos != 1 {
		t.Fatalf("D-SACKs %d undos %d, want 1 and 1", st.DSACKs, st.Undos)
	}
	if a.inRecovery || a.ssthresh != ssthresh || a.cwnd < cwnd {
		t.Fatalf("after the D-SACK: recovery %v, ssthresh %d cwnd %d; want the cut undone (ssthresh %d, cwnd at least %d)", a.inRecovery, a.ssthresh, a.cwnd, ssthresh, cwnd)
	}
}

// Blocks of one ACK that touch leave a record across their junction that
// neither holds whole; the next ACK's merged block must still SACK it, so
// such blocks are not kept for skipping.
func TestSACKBlocksThatTouch(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000, NoTimestamps: true}, Config{MSS: 1000, DelayedACK: -1, NoTimestamps: true})
	a.Write(payload(8*int(a.sndMSS), 90))
	emitted(a, now)
	una, mss := a.sndUna, uint32(a.sndMSS)
	ack := Segment{SrcPort: addrB.Port(), DstPort: addrA.Port(), Seq: b.sndNxt, Ack: una, Flags: FlagACK, Window: 0xffff, WindowScale: -1}
	at := func(segs float64) uint32 { return una + uint32(segs*float64(mss)) }
	ack.SACK[0], ack.SACK[1], ack.NumSACK = SACKBlock{at(2.5), at(4.5)}, SACKBlock{at(4.5), at(6.5)}, 2
	a.Input(now, &ack)
	ack.SACK[0], ack.NumSACK = SACKBlock{at(2.5), at(6.5)}, 1
	a.Input(now, &ack)
	if want := 3 * mss; a.sackedBytes != want { // records 3, 4 and 5
		t.Fatalf("%d bytes SACKed after [2.5,6.5) segments, want %d", a.sackedBytes, want)
	}
}

// A D-SACK for data we never resent is a duplicate the network made: it
// says nothing of our retransmissions, and the cut of a recovery whose
// retransmission was needed stays.
func TestNetworkDuplicateDoesNotUndo(t *testing.T) {
	// Without timestamps: PAWS would drop the old duplicate first.
	a, b, now := establish(t, Config{MSS: 1000, NoTimestamps: true}, Config{MSS: 1000, DelayedACK: -1, NoTimestamps: true})
	a.Write(payload(10*int(a.sndMSS), 81))
	segs := emitted(a, now)
	ssthresh := a.ssthresh
	now += 10 * time.Millisecond
	feed(b, now, segs[1:]) // the first is lost
	feed(a, now, emitted(b, now))
	re := emitted(a, now)
	if !a.inRecovery || len(re) == 0 || re[0].Seq != segs[0].Seq {
		t.Fatalf("recovery %v, A sent %v; want the first segment again in recovery", a.inRecovery, re)
	}
	now += 5 * time.Millisecond
	feed(b, now, re[:1]) // the retransmission repairs the loss
	feed(a, now, emitted(b, now))
	feed(b, now, segs[5:6]) // and the network duplicates a segment B has
	feed(a, now, emitted(b, now))
	if st := a.Stats(); st.DSACKs != 1 || st.Undos != 0 || a.ssthresh >= ssthresh {
		t.Fatalf("D-SACKs %d undos %d ssthresh %d (was %d); want the network's duplicate reported and the cut kept", st.DSACKs, st.Undos, a.ssthresh, ssthresh)
	}
}

// A duplicate of data held out of order is reported too (RFC 2883 §4.2):
// a D-SACK block for it, then the block that holds it, which the sender
// reads as a D-SACK.
func TestDSACKAboveCumulativeACK(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.Write(payload(6*int(a.sndMSS), 91))
	segs := emitted(a, now)
	feed(b, now, segs[1:]) // the first is missing
	emitted(b, now)
	feed(b, now, segs[3:4]) // the fourth again
	ack := only(t, "ACK of the duplicate", emitted(b, now))
	dup := SACKBlock{segs[3].Seq, segs[3].Seq + uint32(len(segs[3].Payload))}
	held := SACKBlock{segs[1].Seq, segs[5].Seq + uint32(len(segs[5].Payload))}
	if ack.NumSACK < 2 || ack.SACK[0] != dup || ack.SACK[1] != held {
		t.Fatalf("ACK %v, want a D-SACK %v then the block %v", ack.String(), dup, held)
	}
	if !a.isDSACK(ack.SACKBlocks(), ack.Ack) {
		t.Fatal("the sender does not read the first block as a D-SACK")
	}
}

// An RTO inside a fast recovery does not cut the window a second time,
// and a D-SACK undo then gives back the window from before the episode:
// the RTO's cut overwrote the undo state with the recovery's.
func TestRTOInRecoveryCutsOnce(t *testing.T) {
	a, b, segs, cwnd, ssthresh, now := lateFirst(t, 82)
	re := emitted(a, now)
	if !a.inRecovery || len(re) == 0 || re[0].Seq != segs[0].Seq {
		t.Fatalf("recovery %v, A sent %v; want the first segment again in recovery", a.inRecovery, re)
	}
	cut, wMax := a.ssthresh, a.cubic.wMax
	var more []Segment // what the timers send until the RTO, all unanswered
	for range 20 {
		dl, ok := a.Deadline()
		if !ok || a.Stats().Timeouts > 0 {
			break
		}
		now = max(now, dl)
		more = append(more, emitted(a, now)...)
	}
	if a.Stats().Timeouts != 1 || len(more) == 0 {
		t.Fatalf("timeouts %d, sent %d segments; want the RTO's retransmission", a.Stats().Timeouts, len(more))
	}
	if a.ssthresh != cut || a.cubic.wMax != wMax {
		t.Errorf("the RTO in recovery cut again: ssthresh %d (recovery's %d), W_max %.1f (recovery's %.1f)", a.ssthresh, cut, a.cubic.wMax, wMax)
	}
	now += 5 * time.Millisecond
	feed(b, now, segs[:1]) // the original arrives after all
	feed(a, now, emitted(b, now))
	for _, seg := range append(re[:1], more...) { // and every retransmission: duplicates
		feed(b, now, []Segment{seg})
		feed(a, now, emitted(b, now))
	}
	if st := a.Stats(); st.Undos != 1 {
		t.Fatalf("undos %d, want 1: every retransmission was spurious", st.Undos)
	}
	if a.ssthresh != ssthresh || a.cwnd < cwnd {
		t.Errorf("after the undo ssthresh %d cwnd %d; want the window from before the episode (ssthresh %d, cwnd at least %d)", a.ssthresh, a.cwnd, ssthresh, cwnd)
	}
}

// A SYN lost more than once leaves the dialer one segment of window, not
// the initial ten (RFC 5681 §3.1; Linux's tcp_init_transfer).
func TestLostSYNsStartFromOneSegment(t *testing.T) {
	now := time.Second
	a := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1000, now)
	var syn []Segment
	for range 3 { // the first two are lost
		syn = emitted(a, now)
		if len(syn) != 1 {
			t.Fatalf("emitted %v, want a SYN", syn)
		}
		dl, _ := a.Deadline()
		now = dl
	}
	b, err := Accept(Config{}, ID{Local: addrB, Remote: addrA}, &syn[0], 5000, now)
	if err != nil {
		t.Fatal(err)
	}
	feed(a, now, emitted(b, now))
	if a.State() != StateEstablished {
		t.Fatalf("A is %v, want ESTABLISHED", a.State())
	}
	if a.cwnd > uint32(a.sndMSS) {
		t.Errorf("after two lost SYNs cwnd is %d, want one segment (%d)", a.cwnd, a.sndMSS)
	}
	// RFC 6298 §5.7: no RTT sample from the handshake (Karn), so the RTO
	// is re-initialized to 3 s, neither 1 s nor the SYN's 4 s backoff.
	if a.hasRTT || a.rto != 3*time.Second {
		t.Errorf("after two lost SYNs RTO %v (sampled %t), want 3s without a sample", a.rto, a.hasRTT)
	}
}

// The reordering window widens with the first D-SACK round and shrinks
// back after 16 recoveries without one (RFC 8985 §6.2 step 4): the first
// D-SACK left it as it was, and it never came back down.
func TestReorderingWindowGrowsAndShrinksBack(t *testing.T) {
	a, _, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000})
	a.rack.minRTT.update(now, 40*time.Millisecond)
	a.srtt = 100 * time.Millisecond
	a.rack.reordering = true
	base := a.reoWnd()
	if base != 10*time.Millisecond {
		t.Fatalf("reordering window %v before any D-SACK, want a quarter of min RTT, 10ms", base)
	}
	a.sawDSACK(a.sndMax)
	if w := a.reoWnd(); w != 20*time.Millisecond {
		t.Errorf("after the first D-SACK round the window is %v, want 20ms", w)
	}
	for range 10 {
		a.sndMax += 1000 // a new round
		a.sawDSACK(a.sndMax)
	}
	if w := a.reoWnd(); w != 80*time.Millisecond {
		t.Errorf("after 11 D-SACK rounds the window is %v, want twice min RTT, 80ms", w)
	}
	for range reoPersistRecoveries {
		a.recoveryEnded()
	}
	if w := a.reoWnd(); w != base {
		t.Errorf("after %d recoveries without a D-SACK the window is %v, want %v again", reoPersistRecoveries, w, base)
	}
}
