package tcp

import (
	"errors"
	"testing"
)

// zeroWindowed returns B with its receive window shut by 4000 unread
// bytes from A and 3000 bytes of its own sent and unacknowledged.
func zeroWindowed(t *testing.T) (b *Conn, now Time) {
	t.Helper()
	a, b, now := establish(t, Config{}, Config{RecvBuffer: 4000, DelayedACK: -1})
	seq := a.sndNxt
	for range 4 {
		s := dataSeg(a, b, seq, make([]byte, 1000))
		b.Input(now, &s)
		seq += 1000
	}
	if n, err := b.Write(make([]byte, 3000)); n != 3000 || err != nil {
		t.Fatalf("Write = %d, %v; want 3000, nil", n, err)
	}
	emitted(b, now)
	if b.rcvWindow() != 0 || b.Readable() != 4000 || b.sndMax-b.sndUna != 3000 {
		t.Fatalf("B's window %d, %d readable, %d in flight; want 0, 4000, 3000", b.rcvWindow(), b.Readable(), b.sndMax-b.sndUna)
	}
	return b, now
}

// TestZeroWindowAllowance checks RFC 9293 §3.10.7.4's special allowance:
// with B's window shut, segments that fail the acceptability test still
// have their ACK field and window processed when their sequence number
// is near rcv.nxt, while their text and FIN are dropped and they draw an
// ACK; RSTs, SYNs, far sequence numbers and ACKs outside RFC 5961's range
// get nothing more than before.
func TestZeroWindowAllowance(t *testing.T) {
	ackSeg := func(seq, ack uint32) Segment {
		return Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: seq, Ack: ack, Flags: FlagACK, Window: 2000}
	}
	for _, tc := range []struct {
		name     string
		seg      func(b *Conn) Segment
		acked    uint32 // how far snd.una must move (0: not at all)
		answered bool   // an ACK must go out
	}{
		{"pure ACK beyond the window", func(b *Conn) Segment { return ackSeg(b.rcvNxt+576, b.sndUna+1000) }, 1000, true},
		{"persist probe at rcv.nxt-1", func(b *Conn) Segment { return ackSeg(b.rcvNxt-1, b.sndUna+3000) }, 3000, true},
		{"data and FIN beyond the window", func(b *Conn) Segment {
			s := ackSeg(b.rcvNxt+10, b.sndUna+1000)
			s.Flags |= FlagFIN
			s.Payload = []byte("zzz")
			return s
		}, 1000, true},
		{"old data", func(b *Conn) Segment {
			s := ackSeg(b.rcvNxt-1000, b.sndUna+2000)
			s.Payload = make([]byte, 1000)
			return s
		}, 2000, true},
		{"ACK of unsent data", func(b *Conn) Segment { return ackSeg(b.rcvNxt+576, b.sndMax+1) }, 0, true},
		{"far sequence number", func(b *Conn) Segment { return ackSeg(b.rcvNxt+1<<30, b.sndUna+1000) }, 0, true},
		{"far old sequence number", func(b *Conn) Segment { return ackSeg(b.rcvNxt-1<<20, b.sndUna+1000) }, 0, true},
		{"RST beyond the window", func(b *Conn) Segment {
			s := ackSeg(b.rcvNxt+1, b.sndUna+1000)
			s.Flags |= FlagRST
			return s
		}, 0, false},
		{"SYN beyond the window", func(b *Conn) Segment {
			s := ackSeg(b.rcvNxt+1, b.sndUna+1000)
			s.Flags |= FlagSYN
			return s
		}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, now := zeroWindowed(t)
			una, nxt, unacceptable := b.sndUna, b.rcvNxt, b.Stats().Unacceptable
			seg := tc.seg(b)
			b.Input(now, &seg)
			if got := b.sndUna - una; got != tc.acked {
				t.Errorf("Input(%v) moved snd.una by %d, want %d", seg.String(), got, tc.acked)
			}
			if want := uint32(seg.Window) << b.sndShift; tc.acked > 0 && b.sndWnd != want {
				t.Errorf("Input(%v) left snd.wnd at %d, want %d", seg.String(), b.sndWnd, want)
			}
			if b.rcvNxt != nxt || b.Readable() != 4000 || !b.ooo.empty() || b.finRcvd || b.rcvFinOOO {
				t.Errorf("Input(%v) took text or FIN: rcv.nxt moved by %d, %d readable, out-of-order %v, FIN %v/%v",
					seg.String(), b.rcvNxt-nxt, b.Readable(), !b.ooo.empty(), b.finRcvd, b.rcvFinOOO)
			}
			if b.State() != StateEstablished {
				t.Errorf("Input(%v) changed the state to %v", seg.String(), b.State())
			}
			if got := b.Stats().Unacceptable - unacceptable; got != 1 {
				t.Errorf("Input(%v) counted %d unacceptable segments, want 1", seg.String(), got)
			}
			out := emitted(b, now)
			var acks int
			for _, s := range out {
				if s.Flags == FlagACK && len(s.Payload) == 0 && s.Ack == b.rcvNxt && s.Window == 0 {
					acks++
				}
			}
			if tc.answered && acks == 0 || !tc.answered && len(out) != 0 {
				t.Errorf("Input(%v) drew %v, want a zero-window ACK: %v", seg.String(), out, tc.answered)
			}
		})
	}
}

// TestZeroWindowAllowanceNoDupAcks: probes that ACK nothing new are not
// duplicate ACKs (they say nothing about what the peer received) and so
// never start a fast retransmit.
func TestZeroWindowAllowanceNoDupAcks(t *testing.T) {
	b, now := zeroWindowed(t)
	wnd := uint16(b.sndWnd >> b.sndShift)
	for i := range 5 {
		probe := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: b.rcvNxt - 1, Ack: b.sndUna, Flags: FlagACK, Window: wnd}
		b.Input(now, &probe)
		emitted(b, now)
		if b.dupAcks != 0 || b.Stats().FastRetransmits != 0 {
			t.Fatalf("after probe %d: %d duplicate ACKs, %d fast retransmits; want 0, 0", i+1, b.dupAcks, b.Stats().FastRetransmits)
		}
	}
}

// TestNoAllowanceWithOpenWindow: once the window opens again, a segment
// beyond it is unacceptable and its ACK ignored, as RFC 9293 says.
func TestNoAllowanceWithOpenWindow(t *testing.T) {
	b, now := zeroWindowed(t)
	readAll(t, b)
	emitted(b, now) // the window update
	if b.rcvWindow() == 0 {
		t.Fatalf("reading left the window shut")
	}
	una := b.sndUna
	seg := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: b.rcvAdvRight + 100, Ack: b.sndUna + 1000, Flags: FlagACK, Window: 2000}
	b.Input(now, &seg)
	if b.sndUna != una {
		t.Fatalf("Input(%v) beyond an open window moved snd.una by %d, want 0", seg.String(), b.sndUna-una)
	}
	only(t, "answer to a segment beyond the window", emitted(b, now))
}

// TestSendWindowNeverPassesOfferedEdge: snd.una+snd.wnd is the right edge
// the peer offered last. A retransmission that fills a hole carries a new
// ACK with an old sequence number; it must still set the window (Linux's
// tcp_may_update_window), and an ACK older than snd.una must not, or our
// edge moves past the peer's and we send data it has no room for.
func TestSendWindowNeverPassesOfferedEdge(t *testing.T) {
	a, b, now := establish(t, Config{DelayedACK: -1}, Config{})
	una := a.sndUna
	if n, _ := a.Write(make([]byte, 1000)); n != 1000 {
		t.Fatalf("Write = %d, want 1000", n)
	}
	emitted(a, now)
	shift := a.sndShift
	fromB := func(seq, ack uint32, wnd uint16, n int) Segment {
		return Segment{SrcPort: addrB.Port(), DstPort: addrA.Port(), Seq: seq, Ack: ack, Flags: FlagACK, Window: wnd, Payload: make([]byte, n)}
	}
	s := b.sndNxt
	edge := func() uint32 { return a.sndUna + a.sndWnd }
	room := uint32(800) >> shift << shift // what a scaled window field can say
	for _, step := range []struct {
		name string
		seg  Segment
		want uint32 // the right edge A must hold after it
	}{
		// B's first 100 bytes are lost; the next 100 arrive out of order
		// with an ACK for half of A's data and about 800 bytes of room.
		{"out-of-order data", fromB(s+100, una+500, uint16(room>>shift), 100), una + 500 + room},
		// B resends the lost bytes after taking A's data: its buffer is
		// full at una+1000.
		{"hole-filling retransmission", fromB(s, una+1000, 0, 100), una + 1000},
		// A late ACK older than snd.una, with a newer sequence number.
		{"late old ACK", fromB(s+200, una+500, 1000, 0), una + 1000},
	} {
		a.Input(now, &step.seg)
		if got := edge(); got != step.want {
			t.Fatalf("after %s %v: A's right edge %d, want %d", step.name, step.seg.String(), got-una, step.want-una)
		}
	}
	if n, _ := a.Write(make([]byte, 2000)); n != 2000 {
		t.Fatalf("Write = %d, want 2000", n)
	}
	for _, seg := range emitted(a, now) {
		if len(seg.Payload) > 0 {
			t.Fatalf("A sent %v into B's zero window", seg.String())
		}
	}
}

// persisting returns A in persist mode: B's receive buffer is full of
// unread data and its window shut, with A holding more to send.
func persisting(t *testing.T, cfgA Config) (a, b *Conn, now Time) {
	t.Helper()
	a, b, now = establish(t, cfgA, Config{RecvBuffer: 4000, DelayedACK: -1})
	if _, err := a.Write(make([]byte, 20000)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50 && !a.persist; i++ {
		pingPong(a, b, now)
		if d, ok := a.Deadline(); ok && !a.persist {
			now = d
		}
	}
	if !a.persist || b.rcvWindow() != 0 {
		t.Fatalf("A persist %v, B's window %d: want A probing a shut window", a.persist, b.rcvWindow())
	}
	return a, b, now
}

// TestPersistGivesUpOnASilentPeer: window probes that a peer never answers
// count as retransmissions, and MaxRetries of them end the connection
// with ErrTimeout (Linux gives up after tcp_retries2); a peer that answers
// them, window still shut, keeps it open however long it lasts.
func TestPersistGivesUpOnASilentPeer(t *testing.T) {
	const retries = 3
	a, _, now := persisting(t, Config{MaxRetries: retries})
	probes := 0
	for i := 0; i < 20 && a.State() != StateClosed; i++ {
		d, ok := a.Deadline()
		if !ok {
			t.Fatalf("A has no deadline in %v with its window probes unanswered", a.State())
		}
		now = d
		probes += len(emitted(a, now)) // the peer is gone: nothing comes back
	}
	if a.State() != StateClosed || !errors.Is(a.Err(), ErrTimeout) {
		t.Fatalf("after %d unanswered probes A is %v (%v), want CLOSED with ErrTimeout", probes, a.State(), a.Err())
	}
	if probes != retries {
		t.Errorf("A gave up after %d probes, want %d", probes, retries)
	}

	a, b, now := persisting(t, Config{MaxRetries: retries})
	for range 4 * retries {
		d, _ := a.Deadline()
		now = d
		feed(b, now, emitted(a, now))
		feed(a, now, emitted(b, now)) // the answer: window still 0
	}
	if a.State() != StateEstablished || !a.persist {
		t.Fatalf("A is %v (persist %v, %v) after answered probes, want ESTABLISHED and probing", a.State(), a.persist, a.Err())
	}
}
