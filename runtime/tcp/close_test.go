package tcp

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func TestHalfClose(t *testing.T) {
	n := newNet(t, 11)
	n.dial(Config{}, Config{})
	aData, bData := payload(10000, 1), payload(300000, 2)
	pa := &pump{data: aData, done: true}
	pb := &pump{data: bData}
	bClosed := false
	n.app = func() {
		pa.c, pb.c = n.a, n.b
		pa.work()
		// B keeps sending after A's FIN and closes only once all is queued.
		if pb.eof && !bClosed && pb.off == len(pb.data) {
			pb.c.Close()
			bClosed = true
		}
		pb.work()
	}
	if !n.run(time.Minute, func() bool { return pb.eof }) {
		t.Fatalf("B never saw A's FIN")
	}
	if n.a.State() != StateFinWait2 && n.a.State() != StateFinWait1 {
		t.Fatalf("A after its FIN = %v, want FIN-WAIT-1/2", n.a.State())
	}
	if n.b.State() != StateCloseWait {
		t.Fatalf("B after A's FIN = %v, want CLOSE-WAIT", n.b.State())
	}
	if _, err := n.a.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if !n.run(time.Minute, func() bool { return pa.eof }) {
		t.Fatalf("A read %d of %d bytes from the half-closed connection", pa.got.Len(), len(bData))
	}
	if !bytes.Equal(pa.got.Bytes(), bData) || !bytes.Equal(pb.got.Bytes(), aData) {
		t.Fatalf("data corrupted across the half close")
	}
	if n.a.State() != StateTimeWait {
		t.Fatalf("active closer ends in %v, want TIME-WAIT", n.a.State())
	}
	if !n.run(time.Second, func() bool { return n.b.Done() }) || n.b.Err() != nil {
		t.Fatalf("passive closer: %v %v, want CLOSED without error", n.b.State(), n.b.Err())
	}
}

func TestSimultaneousClose(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{})
	a.Close()
	b.Close()
	fa := only(t, "A's FIN", emitted(a, now))
	fb := only(t, "B's FIN", emitted(b, now))
	if fa.Flags != FlagFIN|FlagACK || fb.Flags != FlagFIN|FlagACK {
		t.Fatalf("FINs %v / %v", fa.String(), fb.String())
	}
	a.Input(now, &fb)
	b.Input(now, &fa)
	if a.State() != StateClosing || b.State() != StateClosing {
		t.Fatalf("crossing FINs: A %v B %v, want CLOSING", a.State(), b.State())
	}
	pingPong(a, b, now)
	if a.State() != StateTimeWait || b.State() != StateTimeWait {
		t.Fatalf("after the ACKs: A %v B %v, want TIME-WAIT", a.State(), b.State())
	}
}

func TestTimeWaitReACKsFINAndExpires(t *testing.T) {
	a, b, now := establish(t, Config{TimeWait: 10 * time.Second}, Config{})
	a.Close()
	feed(b, now, emitted(a, now)) // A's FIN
	feed(a, now, emitted(b, now)) // B's ACK
	if a.State() != StateFinWait2 || b.State() != StateCloseWait {
		t.Fatalf("A %v B %v, want FIN-WAIT-2 / CLOSE-WAIT", a.State(), b.State())
	}
	b.Close()
	fin := only(t, "B's FIN", emitted(b, now))
	a.Input(now, &fin)
	if a.State() != StateTimeWait {
		t.Fatalf("A = %v, want TIME-WAIT", a.State())
	}
	only(t, "ACK of FIN", emitted(a, now))
	// The ACK was lost: B's FIN comes again 3 s later and is re-ACKed,
	// and 2MSL restarts.
	now += 3 * time.Second
	a.Input(now, &fin)
	ack := only(t, "re-ACK of a retransmitted FIN", emitted(a, now))
	if ack.Flags != FlagACK || ack.Ack != fin.Seq+1 {
		t.Fatalf("re-ACK = %v, want ACK %d", ack.String(), fin.Seq+1)
	}
	if d, ok := a.Deadline(); !ok || d != now+10*time.Second {
		t.Fatalf("TIME-WAIT deadline %v %v, want restarted at %v", d, ok, now+10*time.Second)
	}
	b.Input(now, &ack)
	if !b.Done() || b.Err() != nil {
		t.Fatalf("B after the final ACK: %v %v, want CLOSED without error", b.State(), b.Err())
	}
	emitted(a, now+10*time.Second-1)
	if a.Done() {
		t.Fatalf("TIME-WAIT ended early")
	}
	emitted(a, now+10*time.Second)
	if !a.Done() || a.Err() != nil {
		t.Fatalf("after 2MSL: %v %v, want CLOSED without error", a.State(), a.Err())
	}
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after a clean close = %v, want io.EOF", err)
	}
}

func TestRSTRules(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{})
	_ = a
	rcvNxt := b.rcvNxt
	for _, tc := range []struct {
		name      string
		seq       uint32
		challenge bool
	}{
		{"out of window", rcvNxt + 1<<30, false},
		{"before rcv.nxt", rcvNxt - 1, false},
		{"in window, not exact", rcvNxt + 100, true},
	} {
		rst := Segment{Seq: tc.seq, Flags: FlagRST}
		b.Input(now, &rst)
		segs := emitted(b, now)
		if b.State() != StateEstablished {
			t.Fatalf("RST %s reset the connection", tc.name)
		}
		switch {
		case tc.challenge && (len(segs) != 1 || segs[0].Flags != FlagACK || segs[0].Ack != rcvNxt):
			t.Fatalf("RST %s: emitted %v, want one challenge ACK %d", tc.name, segs, rcvNxt)
		case !tc.challenge && len(segs) != 0:
			t.Fatalf("RST %s: emitted %v, want nothing", tc.name, segs)
		}
	}
	if b.Stats().ChallengeACKs != 1 {
		t.Fatalf("ChallengeACKs = %d, want 1", b.Stats().ChallengeACKs)
	}
	exact := Segment{Seq: rcvNxt, Flags: FlagRST}
	b.Input(now, &exact)
	if b.State() != StateClosed || !errors.Is(b.Err(), ErrReset) {
		t.Fatalf("exact RST: %v %v, want CLOSED ErrReset", b.State(), b.Err())
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrReset) {
		t.Fatalf("Read after reset = %v, want ErrReset", err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, ErrReset) {
		t.Fatalf("Write after reset = %v, want ErrReset", err)
	}
	if segs := emitted(b, now); len(segs) != 0 {
		t.Fatalf("a reset connection emitted %v", segs)
	}
}

func TestOldDuplicatesGetACKNeverRST(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	a.Write([]byte("hello"))
	data := only(t, "data", emitted(a, now))
	b.Input(now, &data)
	only(t, "ACK", emitted(b, now))
	for _, tc := range []struct {
		name string
		seg  Segment
	}{
		{"duplicate data", data},
		{"old SYN", Segment{Seq: a.iss, Flags: FlagSYN, Window: 100}},
		{"SYN in window", Segment{Seq: b.rcvNxt + 10, Flags: FlagSYN, Window: 100}},
		{"ACK of unsent data", Segment{Seq: b.rcvNxt, Ack: b.sndMax + 100, Flags: FlagACK, Window: 100}},
		{"far future data", Segment{Seq: b.rcvNxt + 1<<30, Ack: b.sndNxt, Flags: FlagACK, Window: 100, Payload: []byte("z")}},
	} {
		now += invalidACKInterval // each past the rate limit of the one before
		b.Input(now, &tc.seg)
		out := only(t, tc.name, emitted(b, now))
		if out.Flags != FlagACK || out.Ack != b.rcvNxt {
			t.Fatalf("answer to %s = %v, want a plain ACK %d", tc.name, out.String(), b.rcvNxt)
		}
		if b.State() != StateEstablished {
			t.Fatalf("%s changed the state to %v", tc.name, b.State())
		}
	}
	if got := readAll(t, b); string(got) != "hello" {
		t.Fatalf("read %q, want hello once", got)
	}
}

func TestAbortSendsRST(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{})
	a.Write([]byte("pending"))
	a.Abort()
	if a.State() != StateClosed || !errors.Is(a.Err(), ErrClosed) || a.Done() {
		t.Fatalf("after Abort: %v %v done=%v; want CLOSED ErrClosed, not done until the RST is out", a.State(), a.Err(), a.Done())
	}
	rst := only(t, "RST", emitted(a, now))
	if rst.Flags&FlagRST == 0 || rst.Seq != b.rcvNxt {
		t.Fatalf("Abort emitted %v, want RST seq %d", rst.String(), b.rcvNxt)
	}
	if !a.Done() {
		t.Fatalf("Done() = false after the RST went out")
	}
	b.Input(now, &rst)
	if !errors.Is(b.Err(), ErrReset) {
		t.Fatalf("peer after RST: %v %v, want ErrReset", b.State(), b.Err())
	}
	if a.Stats().RSTsSent != 1 || b.Stats().RSTsReceived != 1 {
		t.Fatalf("RST counters %d/%d, want 1/1", a.Stats().RSTsSent, b.Stats().RSTsReceived)
	}
}

func TestAbortInSynSentSendsNothing(t *testing.T) {
	c := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1, 0)
	emitted(c, 0)
	c.Abort()
	if segs := emitted(c, 0); len(segs) != 0 || !c.Done() {
		t.Fatalf("Abort in SYN-SENT emitted %v done=%v; want nothing and done", segs, c.Done())
	}
}

func TestCloseDuringHandshakeSendsFINAfterData(t *testing.T) {
	n := newNet(t, 12)
	n.dial(Config{}, Config{})
	n.a.Write([]byte("early"))
	n.a.Close()
	if n.a.State() != StateSynSent {
		t.Fatalf("Close with queued data in SYN-SENT = %v, want SYN-SENT", n.a.State())
	}
	var got []byte
	eof := false
	n.app = func() {
		if n.b != nil {
			got = append(got, readAll(t, n.b)...)
			if _, err := n.b.Read(nil); err == io.EOF {
				eof = true
			}
		}
	}
	if !n.run(10*time.Second, func() bool { return eof }) || string(got) != "early" {
		t.Fatalf("got %q eof=%v, want early and EOF", got, eof)
	}
	// Without queued data, Close in SYN-SENT just ends the attempt.
	c := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1, 0)
	c.Close()
	if !c.Done() {
		t.Fatalf("Close of an empty SYN-SENT conn: %v, want CLOSED", c.State())
	}
}

func TestTimeWaitRSTAndReuse(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{})
	a.Close()
	pingPong(a, b, now)
	b.Close()
	pingPong(a, b, now)
	if a.State() != StateTimeWait {
		t.Fatalf("setup: A %v, want TIME-WAIT", a.State())
	}
	old := Segment{Seq: a.rcvNxt - 10, Flags: FlagSYN}
	newer := Segment{Seq: a.rcvNxt + 100000, Flags: FlagSYN}
	synack := Segment{Seq: a.rcvNxt + 100000, Flags: FlagSYN | FlagACK}
	if a.Reusable(&old) || !a.Reusable(&newer) || a.Reusable(&synack) {
		t.Fatalf("Reusable in TIME-WAIT: old SYN %v, newer SYN %v, SYN-ACK %v; want false true false",
			a.Reusable(&old), a.Reusable(&newer), a.Reusable(&synack))
	}
	// With timestamps a newer clock also makes an old sequence number
	// acceptable (RFC 6191); an older or missing one does not.
	stamped := old
	stamped.HasTS, stamped.TSVal = true, a.tsRecent+1
	stale := stamped
	stale.TSVal = a.tsRecent - 1
	if !a.Reusable(&stamped) || a.Reusable(&stale) {
		t.Fatalf("Reusable in TIME-WAIT: old SYN with a newer timestamp %v, with an older one %v; want true false",
			a.Reusable(&stamped), a.Reusable(&stale))
	}
	// PAWS comes first, as in Linux: an older clock is an old duplicate
	// even with a sequence number past rcv.nxt.
	staleAhead := newer
	staleAhead.HasTS, staleAhead.TSVal = true, a.tsRecent-1
	if a.Reusable(&staleAhead) {
		t.Fatal("Reusable in TIME-WAIT: a SYN past rcv.nxt with an older timestamp, want false (PAWS)")
	}
	// A RST that is not exact gets a challenge ACK and changes nothing.
	off := Segment{Seq: a.rcvNxt + 1, Flags: FlagRST}
	a.Input(now, &off)
	if a.State() != StateTimeWait {
		t.Fatalf("inexact RST ended TIME-WAIT")
	}
	emitted(a, now)
	// The exact RST a port-reusing client sends ends TIME-WAIT at once.
	rst := Segment{Seq: a.rcvNxt, Flags: FlagRST}
	a.Input(now, &rst)
	if !a.Done() || a.Err() != nil {
		t.Fatalf("exact RST in TIME-WAIT: %v %v, want CLOSED without error", a.State(), a.Err())
	}
	if !a.Reusable(&old) {
		t.Fatalf("a done conn should be reusable by any SYN")
	}
}

// TestAbortAfterBothFINsSendsNoRST: in LAST-ACK (and CLOSING, TIME-WAIT)
// both FINs are out, so ABORT deletes the connection silently (RFC 9293
// §3.10.5). A server that shuts down while the client's last ACK is lost
// must not answer a cleanly closed connection with RST.
func TestAbortAfterBothFINsSendsNoRST(t *testing.T) {
	n := newNet(t, 3)
	n.dial(Config{}, Config{})
	// A's final ACK of B's FIN never arrives, so B stays in LAST-ACK.
	n.drop = func(fromA bool, s *Segment) bool {
		return fromA && n.b != nil && n.b.State() == StateLastAck && s.Flags.Has(FlagACK) && !s.Flags.Has(FlagFIN)
	}
	n.app = func() {
		if n.a.State() == StateEstablished {
			n.a.Close()
		}
		if n.b != nil && n.b.State() == StateCloseWait {
			n.b.Close()
		}
	}
	if !n.run(2*time.Second, func() bool { return n.b != nil && n.b.State() == StateLastAck && n.a.State() == StateTimeWait }) {
		t.Fatalf("did not reach LAST-ACK/TIME-WAIT: a %v, b %v", n.a.State(), n.b)
	}
	n.b.Abort()
	if segs := emitted(n.b, n.now); len(segs) != 0 {
		t.Fatalf("Abort in LAST-ACK emitted %v, want nothing", segs)
	}
	if !n.b.Done() || n.b.Stats().RSTsSent != 0 {
		t.Fatalf("after Abort in LAST-ACK: done=%v RSTs sent %d, want done and none", n.b.Done(), n.b.Stats().RSTsSent)
	}
}

// A connection in TIME-WAIT keeps no buffers: after a burst of short
// requests a server holds thousands of them.
func TestTimeWaitReleasesBuffers(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	a.Write(make([]byte, 50000))
	b.Write(make([]byte, 3000))
	a.Close()
	buf := make([]byte, 64<<10)
	for range 20 {
		pingPong(a, b, now)
		a.Read(buf)
		b.Read(buf)
		if b.State() == StateCloseWait {
			b.Close()
		}
		now += 10 * time.Millisecond
	}
	if a.State() != StateTimeWait {
		t.Fatalf("A is %v, want TIME-WAIT", a.State())
	}
	if a.sndBuf.buf != nil || a.rcvBuf.buf != nil || a.txq.s != nil || a.scratch != nil {
		t.Fatalf("TIME-WAIT holds %d+%d ring bytes, %d records, %d scratch bytes; want none",
			len(a.sndBuf.buf), len(a.rcvBuf.buf), len(a.txq.s), len(a.scratch))
	}
}

// Invalid segments without data draw an ACK at most once per
// invalidACKInterval (RFC 5961 §7, Linux's tcp_invalid_ratelimit): a
// spoofer sending in-window RSTs, SYNs or out-of-window ACKs drew one
// ACK per segment. Data segments are always answered.
func TestInvalidSegmentsAreAnsweredAtALimitedRate(t *testing.T) {
	_, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	acks := 0
	for i := range 1000 {
		now += time.Millisecond
		segs := []Segment{
			{Seq: b.rcvNxt + 1 + uint32(i), Flags: FlagRST},
			{Seq: b.rcvNxt + 10, Flags: FlagSYN, Window: 100},
			{Seq: b.rcvNxt + 1<<30, Ack: b.sndNxt, Flags: FlagACK, Window: 100},
		}
		for j := range segs {
			b.Input(now, &segs[j])
			acks += len(emitted(b, now))
		}
	}
	if acks > 3 {
		t.Errorf("3,000 invalid segments over 1 s drew %d ACKs, want at most 3", acks)
	}
	if b.State() != StateEstablished {
		t.Fatalf("the spoofed segments changed the state to %v", b.State())
	}
	if n := b.Stats().InvalidACKsLimited; n < 2990 {
		t.Errorf("InvalidACKsLimited = %d, want the ~2,998 left unanswered", n)
	}
	// Out-of-window data is always answered: its sender needs to hear.
	for range 3 {
		seg := Segment{Seq: b.rcvNxt + 1<<30, Ack: b.sndNxt, Flags: FlagACK, Window: 100, Payload: []byte("z")}
		b.Input(now, &seg)
		if n := len(emitted(b, now)); n != 1 {
			t.Fatalf("out-of-window data drew %d segments, want an ACK each time", n)
		}
	}
}
