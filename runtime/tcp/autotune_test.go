package tcp

import (
	"bytes"
	"testing"
	"time"
)

// oneWay sends size bytes from A to B, whose application reads at once if
// read is set and never otherwise, and returns B and the virtual time the
// transfer took (or ran, if B does not read).
func oneWay(t *testing.T, cfgA, cfgB Config, size int, read bool) (*Conn, Time) {
	t.Helper()
	n := newNet(t, 7) // 10 ms RTT, 10 µs per packet: about 1.4 MB in flight fills the link
	n.dial(cfgA, cfgB)
	data := payload(size, 3)
	pa, pb := &pump{data: data, done: true}, &pump{}
	n.app = func() {
		pa.c = n.a
		pa.work()
		if read {
			pb.c = n.b
			pb.work()
		}
	}
	start := n.now
	if !read {
		n.run(2*time.Second, func() bool { return false })
		return n.b, n.now - start
	}
	if !n.run(10*time.Minute, func() bool { return pb.eof }) {
		t.Fatalf("the transfer did not finish: B got %d of %d bytes", pb.got.Len(), size)
	}
	if !bytes.Equal(pb.got.Bytes(), data) {
		t.Fatalf("B read %d bytes that differ from the %d sent", pb.got.Len(), size)
	}
	return n.b, n.now - start
}

// A receiver whose application keeps up grows its buffer, and with it
// the window, past the 256 KiB it started with, up to RecvBufferMax: on a
// path whose bandwidth-delay product is larger, the transfer runs at the
// link's rate instead of one window per RTT.
func TestReceiveBufferGrowsWithTheReader(t *testing.T) {
	sender := Config{SendBuffer: 8 << 20}
	b, tuned := oneWay(t, sender, Config{}, 24<<20, true) // the default tunes
	if got := b.rcvBuf.cap(); got <= DefaultBuffer || got > DefaultRecvMax {
		t.Errorf("receive buffer %d bytes after the transfer, want above %d and at most %d", got, DefaultBuffer, DefaultRecvMax)
	}
	if b.rcvShift != windowShift(DefaultRecvMax) {
		t.Errorf("window scale %d, want %d: room for RecvBufferMax", b.rcvShift, windowShift(DefaultRecvMax))
	}
	_, fixed := oneWay(t, sender, Config{RecvBuffer: DefaultBuffer}, 24<<20, true)
	t.Logf("24 MiB over a 10 ms RTT: %v with auto-tuning, %v with a fixed 256 KiB buffer", tuned, fixed)
	if tuned*3 > fixed {
		t.Errorf("auto-tuned transfer took %v, fixed %v: want at least 3 times faster", tuned, fixed)
	}
}

// A receiver whose application does not read keeps the buffer it started
// with: a peer cannot make the stack hold more for it.
func TestReceiveBufferStaysWhileUnread(t *testing.T) {
	b, _ := oneWay(t, Config{SendBuffer: 8 << 20}, Config{RecvBufferMax: DefaultRecvMax}, 4<<20, false)
	if got, held := b.rcvBuf.cap(), b.rcvBuf.len(); got != DefaultBuffer || held > DefaultBuffer {
		t.Errorf("unread receiver: buffer %d bytes holding %d, want %d holding at most that", got, held, DefaultBuffer)
	}
}

// A RecvBuffer set without RecvBufferMax is fixed, as Linux's SO_RCVBUF
// turns its auto-tuning off; RecvBufferMax alone sets the ceiling.
func TestReceiveBufferLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		wantCap  int
		wantMax  int
		exactCap bool
	}{
		{"default", Config{}, DefaultRecvMax, DefaultRecvMax, false},
		{"fixed by RecvBuffer", Config{RecvBuffer: 64 << 10}, 64 << 10, 64 << 10, true},
		{"ceiling below the default start", Config{RecvBufferMax: 64 << 10}, 64 << 10, 64 << 10, true},
		{"negative ceiling: no growth", Config{RecvBufferMax: -1}, DefaultBuffer, DefaultBuffer, true},
		{"ceiling RecvBufferMax", Config{RecvBufferMax: 1 << 20}, 1 << 20, 1 << 20, false},
		{"both", Config{RecvBuffer: 32 << 10, RecvBufferMax: 512 << 10}, 512 << 10, 512 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.WithDefaults().RecvBufferMax; got != tc.wantMax {
				t.Errorf("WithDefaults().RecvBufferMax = %d, want %d", got, tc.wantMax)
			}
			b, _ := oneWay(t, Config{SendBuffer: 8 << 20}, tc.cfg, 8<<20, true)
			got := b.rcvBuf.cap()
			if got > tc.wantCap || tc.exactCap && got != tc.wantCap {
				t.Errorf("receive buffer %d bytes, want at most %d (exactly: %v)", got, tc.wantCap, tc.exactCap)
			}
			if !tc.exactCap && got <= tc.cfg.WithDefaults().RecvBuffer {
				t.Errorf("receive buffer %d bytes: it never grew", got)
			}
		})
	}
}

// A grown buffer travels in the snapshot; the target keeps it, and the
// window scale chosen for RecvBufferMax describes it.
func TestGrownReceiveBufferSnapshot(t *testing.T) {
	b, _ := oneWay(t, Config{SendBuffer: 8 << 20}, Config{RecvBufferMax: DefaultRecvMax}, 8<<20, true)
	grown := b.rcvBuf.cap()
	snap := b.AppendSnapshot(nil, 0)
	r, err := Restore(Config{}, snap, 0)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if r.rcvBuf.cap() != grown || r.rcvShift != b.rcvShift {
		t.Errorf("restored buffer %d bytes, window scale %d; want %d and %d", r.rcvBuf.cap(), r.rcvShift, grown, b.rcvShift)
	}
}

// A sender's buffer grows to twice cwnd, up to SendBufferMax: the data an
// ACK lets out is already written. On a path whose bandwidth-delay
// product is larger than 256 KiB, the transfer runs at the link's rate.
func TestSendBufferGrowsWithCwnd(t *testing.T) {
	receiver := Config{RecvBuffer: 8 << 20}
	_, tuned := oneWay(t, Config{}, receiver, 24<<20, true)
	_, fixed := oneWay(t, Config{SendBuffer: DefaultBuffer}, receiver, 24<<20, true)
	t.Logf("24 MiB over a 10 ms RTT: %v with the send buffer tuned, %v with a fixed 256 KiB one", tuned, fixed)
	if tuned*3 > fixed {
		t.Errorf("tuned transfer took %v, fixed %v: want at least 3 times faster", tuned, fixed)
	}
	n := newNet(t, 7)
	n.dial(Config{}, receiver)
	exchange(t, n, payload(8<<20, 5), nil, 10*time.Minute)
	if got := n.a.sndBuf.cap(); got <= DefaultBuffer || got > DefaultSendMax || uint32(got) > 2*n.a.cwnd {
		t.Errorf("send buffer %d bytes with cwnd %d, want above %d, at most %d and at most twice cwnd", got, n.a.cwnd, DefaultBuffer, DefaultSendMax)
	}
	n = newNet(t, 7)
	n.dial(Config{SendBuffer: 64 << 10}, receiver)
	exchange(t, n, payload(4<<20, 6), nil, 10*time.Minute)
	if got := n.a.sndBuf.cap(); got != 64<<10 {
		t.Errorf("a SendBuffer of 64 KiB set alone grew to %d bytes", got)
	}
}

// A peer that does not read holds cwnd, and so the send buffer, near
// what its window lets through: it cannot make the sender buffer more.
func TestSendBufferStaysForAPeerThatDoesNotRead(t *testing.T) {
	n := newNet(t, 7)
	n.dial(Config{}, Config{})
	pa := &pump{data: payload(16<<20, 8)}
	n.app = func() { pa.c = n.a; pa.work() }
	n.run(2*time.Second, func() bool { return false })
	if got := n.a.sndBuf.cap(); got > 4*DefaultBuffer {
		t.Errorf("send buffer %d bytes toward a peer with a %d-byte window that reads nothing", got, DefaultBuffer)
	}
}

// Toward a receiver that does not read, the window closes at its
// buffer's end and the sender probes it, whatever the window scale: a
// held edge is rounded to the scale without promising room past the
// buffer (windowField), so nothing the sender sends is trimmed.
func TestUnreadReceiverClosesItsWindowCleanly(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"default, tuned", Config{}},
		{"fixed 256 KiB", Config{RecvBuffer: DefaultBuffer}},
		{"fixed 1 MiB", Config{RecvBuffer: 1 << 20}},
		{"fixed 4 MiB, scale 7", Config{RecvBuffer: 4 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 7)
			n.dial(Config{SendBuffer: 8 << 20}, tc.cfg)
			pa := &pump{data: payload(8<<20, 9)}
			n.app = func() { pa.c = n.a; pa.work() }
			n.run(2*time.Second, func() bool { return false })
			b := n.b
			if end := b.rcvBufEnd(); seqGT(b.rcvAdvRight, end) {
				t.Errorf("advertised edge %d bytes past the buffer's end", b.rcvAdvRight-end)
			}
			if st := n.a.Stats(); st.Retransmits != 0 || st.Timeouts != 0 || st.WindowProbes == 0 {
				t.Errorf("sender: %d retransmits, %d timeouts, %d window probes; want 0, 0 and some", st.Retransmits, st.Timeouts, st.WindowProbes)
			}
		})
	}
}

// A snapshot whose advertised edge lies past its receive buffer (an older
// build's rounding could put it there) restores with the edge pulled back
// into the buffer, and the window it advertises promises nothing beyond.
func TestRestoreKeepsTheEdgeInsideTheBuffer(t *testing.T) {
	b, _ := oneWay(t, Config{SendBuffer: 8 << 20}, Config{RecvBuffer: 64 << 10, RecvBufferMax: DefaultRecvMax}, 1<<20, false)
	b.rcvAdvRight = b.rcvBufEnd() + 5<<b.rcvShift
	r, err := Restore(Config{}, b.AppendSnapshot(nil, 0), 0)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if end := r.rcvBufEnd(); seqGT(r.rcvAdvRight, end) {
		t.Errorf("restored edge %d bytes past the buffer", r.rcvAdvRight-end)
	}
	w := r.windowField(false)
	if right, end := r.rcvNxt+uint32(w)<<r.rcvShift, r.rcvBufEnd(); seqGT(right, end) {
		t.Errorf("the restored connection advertises %d bytes past its buffer", right-end)
	}
}
