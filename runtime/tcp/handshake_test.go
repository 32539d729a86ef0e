package tcp

import (
	"errors"
	"testing"
	"time"
)

func TestDialEmitsSYNWithOptions(t *testing.T) {
	c := Dial(Config{MSS: 1400, RecvBuffer: 1 << 20}, ID{Local: addrA, Remote: addrB}, 77, 0)
	if c.State() != StateSynSent {
		t.Fatalf("Dial state = %v, want SYN-SENT", c.State())
	}
	syn := only(t, "Dial", emitted(c, 0))
	if syn.Flags != FlagSYN || syn.Seq != 77 || syn.MSS != 1400 || syn.WindowScale != 5 || syn.Window != 65535 || !syn.SACKPermitted ||
		!syn.HasTS || syn.TSEcr != 0 {
		t.Fatalf("SYN = %v mss %d ws %d sack %v; want SYN seq 77 mss 1400 ws 5 win 65535, SACK-permitted, a timestamp echoing 0",
			syn.String(), syn.MSS, syn.WindowScale, syn.SACKPermitted)
	}
	b := AppendSegment(nil, addrA.Addr(), addrB.Addr(), &syn)
	if hl := Header(b).DataOffset(); hl != 44 {
		t.Fatalf("SYN header %d bytes, want 44 (MSS, window scale, SACK-permitted, timestamps)", hl)
	}
	if syn.SrcPort != addrA.Port() || syn.DstPort != addrB.Port() {
		t.Fatalf("SYN ports %d>%d, want %d>%d", syn.SrcPort, syn.DstPort, addrA.Port(), addrB.Port())
	}
	if segs := emitted(c, 0); len(segs) != 0 {
		t.Fatalf("second Output at the same time emitted %v, want nothing", segs)
	}
}

func TestWindowShiftFromBuffer(t *testing.T) {
	for _, tc := range []struct{ buf, shift int }{{1, 0}, {65535, 0}, {65536, 1}, {256 << 10, 3}, {1 << 20, 5}, {1 << 30, 14}} {
		if got := windowShift(tc.buf); int(got) != tc.shift {
			t.Errorf("windowShift(%d) = %d, want %d", tc.buf, got, tc.shift)
		}
	}
}

func TestAcceptRejectsNonSYN(t *testing.T) {
	id := ID{Local: addrB, Remote: addrA}
	for _, tc := range []struct {
		name string
		seg  Segment
	}{
		{"SYN-ACK", Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Flags: FlagSYN | FlagACK}},
		{"ACK", Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Flags: FlagACK}},
		{"SYN-RST", Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Flags: FlagSYN | FlagRST}},
		{"wrong port", Segment{SrcPort: 1, DstPort: addrB.Port(), Flags: FlagSYN}},
	} {
		if c, err := Accept(Config{}, id, &tc.seg, 1, 0); !errors.Is(err, ErrNotSYN) || c != nil {
			t.Errorf("Accept(%s) = %v, %v; want nil, ErrNotSYN", tc.name, c, err)
		}
	}
}

func TestHandshakeNegotiatesOptions(t *testing.T) {
	a, b, _ := establish(t, Config{MSS: 1000, RecvBuffer: 1 << 20}, Config{MSS: 1460, RecvBuffer: 60 << 10})
	if a.sndMSS != 988 || b.sndMSS != 988 {
		t.Errorf("send MSS A %d B %d, want both 988 (the smaller, less the 12-byte timestamp option)", a.sndMSS, b.sndMSS)
	}
	if a.rcvShift != 5 || b.sndShift != 5 || b.rcvShift != 0 || a.sndShift != 0 {
		t.Errorf("shifts A rcv %d snd %d, B rcv %d snd %d; want A rcv 5, B rcv 0", a.rcvShift, a.sndShift, b.rcvShift, b.sndShift)
	}
	// B knows A's 1 MiB window through the scale, less the one scale unit
	// (32 bytes) A keeps back so that rounding never promises more than fits.
	if b.sndWnd != 1<<20-32 {
		t.Errorf("B's view of A's window = %d, want %d", b.sndWnd, 1<<20-32)
	}
}

func TestPeerWithoutWindowScale(t *testing.T) {
	// A SYN without the option: neither side scales; the window caps at 65535.
	syn := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: 9, Flags: FlagSYN, Window: 1000, WindowScale: -1}
	b, err := Accept(Config{RecvBuffer: 1 << 20}, ID{Local: addrB, Remote: addrA}, &syn, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	synack := only(t, "SYN-ACK", emitted(b, 0))
	if synack.WindowScale != -1 || synack.MSS != DefaultMSS || synack.Ack != 10 || synack.Flags != FlagSYN|FlagACK {
		t.Fatalf("SYN-ACK = %v ws %d mss %d; want SYN|ACK ack 10 without window scale", synack.String(), synack.WindowScale, synack.MSS)
	}
	ack := Segment{Seq: 10, Ack: 101, Flags: FlagACK, Window: 1000}
	b.Input(0, &ack)
	if b.State() != StateEstablished {
		t.Fatalf("state %v, want ESTABLISHED", b.State())
	}
	if b.sndMSS != defaultPeerMSS {
		t.Errorf("send MSS without an MSS option = %d, want %d", b.sndMSS, defaultPeerMSS)
	}
	data := Segment{Seq: 10, Ack: 101, Flags: FlagACK | FlagPSH, Window: 1000, Payload: []byte("x")}
	b.Input(0, &data)
	b.cfg.DelayedACK = -1
	out := only(t, "ACK", emitted(b, time.Second))
	// Capped at 65535 (not wrapped); one byte less once the edge is held
	// for receiver SWS avoidance.
	if out.Window < 65534 {
		t.Fatalf("unscaled window for a 1 MiB buffer = %d, want 65534 or 65535", out.Window)
	}
}

func TestSYNRetransmitBackoffAndTimeout(t *testing.T) {
	cfg := Config{InitialRTO: time.Second, MaxSYNRetries: 3}
	c := Dial(cfg, ID{Local: addrA, Remote: addrB}, 1, 0)
	only(t, "SYN", emitted(c, 0))
	now := Time(0)
	var gaps []Time
	for range 3 {
		d, ok := c.Deadline()
		if !ok {
			t.Fatalf("no deadline while the SYN is outstanding")
		}
		gaps = append(gaps, d-now)
		now = d
		syn := only(t, "retransmitted SYN", emitted(c, now))
		if syn.Flags != FlagSYN || syn.Seq != 1 {
			t.Fatalf("retransmission = %v, want the SYN again", syn.String())
		}
	}
	want := []Time{time.Second, 2 * time.Second, 4 * time.Second}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("SYN retransmission gaps = %v, want %v", gaps, want)
		}
	}
	d, _ := c.Deadline()
	if segs := emitted(c, d); len(segs) != 0 || c.State() != StateClosed || !errors.Is(c.Err(), ErrTimeout) {
		t.Fatalf("after %d retries: emitted %v, state %v, err %v; want nothing, CLOSED, ErrTimeout", cfg.MaxSYNRetries, segs, c.State(), c.Err())
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Read after timeout = %v, want ErrTimeout", err)
	}
	if !c.Done() {
		t.Fatalf("Done() = false after the connection failed")
	}
}

func TestConnectRefusedAndBadSYNACK(t *testing.T) {
	c := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 100, 0)
	emitted(c, 0)
	// A SYN-ACK acknowledging something we never sent gets a RST, and the
	// connection keeps waiting.
	bad := Segment{Seq: 7, Ack: 555, Flags: FlagSYN | FlagACK, Window: 100, WindowScale: -1}
	c.Input(0, &bad)
	rst := only(t, "reply to a bad SYN-ACK", emitted(c, 0))
	if rst.Flags != FlagRST || rst.Seq != 555 {
		t.Fatalf("reply = %v, want RST seq 555", rst.String())
	}
	if c.State() != StateSynSent {
		t.Fatalf("state = %v after a bad SYN-ACK, want SYN-SENT", c.State())
	}
	// A RST without ACK is ignored in SYN-SENT (RFC 9293 §3.10.7.3).
	noAck := Segment{Seq: 0, Flags: FlagRST}
	c.Input(0, &noAck)
	if c.State() != StateSynSent {
		t.Fatalf("state = %v after a RST without ACK, want SYN-SENT", c.State())
	}
	// RST|ACK acknowledging our SYN: connection refused.
	refuse := Segment{Ack: 101, Flags: FlagRST | FlagACK}
	c.Input(0, &refuse)
	if c.State() != StateClosed || !errors.Is(c.Err(), ErrRefused) {
		t.Fatalf("after RST|ACK: state %v err %v, want CLOSED ErrRefused", c.State(), c.Err())
	}
	if segs := emitted(c, 0); len(segs) != 0 {
		t.Fatalf("a refused connection emitted %v", segs)
	}
}

func TestSimultaneousOpen(t *testing.T) {
	a := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1000, 0)
	b := Dial(Config{}, ID{Local: addrB, Remote: addrA}, 9000, 0)
	sa, sb := emitted(a, 0), emitted(b, 0)
	feed(b, 0, sa)
	feed(a, 0, sb)
	if a.State() != StateSynReceived || b.State() != StateSynReceived {
		t.Fatalf("after crossing SYNs: A %v B %v, want SYN-RECEIVED", a.State(), b.State())
	}
	synackA := only(t, "A's SYN-ACK", emitted(a, 0))
	if synackA.Flags != FlagSYN|FlagACK || synackA.Seq != 1000 || synackA.Ack != 9001 {
		t.Fatalf("A's SYN-ACK = %v, want SYN|ACK seq 1000 ack 9001", synackA.String())
	}
	feed(b, 0, []Segment{synackA})
	feed(a, 0, emitted(b, 0))
	pingPong(a, b, 0)
	if a.State() != StateEstablished || b.State() != StateEstablished {
		t.Fatalf("simultaneous open ended in A %v B %v, want ESTABLISHED", a.State(), b.State())
	}
}

func TestLostSYNACKIsResentOnRetransmittedSYN(t *testing.T) {
	a := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1000, 0)
	syn := emitted(a, 0)
	// B's own retransmission timer is slower than A's, so only the answer
	// to A's retransmitted SYN can repair the handshake in time.
	b, err := Accept(Config{InitialRTO: 5 * time.Second}, ID{Local: addrB, Remote: addrA}, &syn[0], 5000, 0)
	if err != nil {
		t.Fatal(err)
	}
	only(t, "SYN-ACK (lost)", emitted(b, 0))
	d, _ := a.Deadline()
	syn2 := only(t, "SYN retransmission", emitted(a, d))
	b.Input(d, &syn2)
	synack := only(t, "SYN-ACK again", emitted(b, d))
	if synack.Flags != FlagSYN|FlagACK || synack.Seq != 5000 {
		t.Fatalf("answer to a retransmitted SYN = %v, want SYN|ACK seq 5000", synack.String())
	}
	a.Input(d, &synack)
	feed(b, d, emitted(a, d))
	if a.State() != StateEstablished || b.State() != StateEstablished {
		t.Fatalf("A %v B %v, want ESTABLISHED", a.State(), b.State())
	}
	if a.Stats().RTTSamples != 0 {
		t.Fatalf("Karn: an RTT sample was taken from a retransmitted SYN")
	}
}

func TestSynReceivedResetsOnBadACK(t *testing.T) {
	syn := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: 9, Flags: FlagSYN, Window: 1000, WindowScale: -1}
	b, _ := Accept(Config{}, ID{Local: addrB, Remote: addrA}, &syn, 100, 0)
	emitted(b, 0)
	stale := Segment{Seq: 10, Ack: 7777, Flags: FlagACK, Window: 10}
	b.Input(0, &stale)
	rst := only(t, "reply", emitted(b, 0))
	if rst.Flags != FlagRST || rst.Seq != 7777 || b.State() != StateSynReceived {
		t.Fatalf("reply %v state %v; want RST seq 7777 and still SYN-RECEIVED", rst.String(), b.State())
	}
}

func TestPeerMSSFloor(t *testing.T) {
	syn := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: 1, Flags: FlagSYN, Window: 1000, MSS: 1, WindowScale: -1}
	b, err := Accept(Config{}, ID{Local: addrB, Remote: addrA}, &syn, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.sndMSS != minPeerMSS {
		t.Fatalf("send MSS for a peer MSS of 1 = %d, want the floor %d", b.sndMSS, minPeerMSS)
	}
}
