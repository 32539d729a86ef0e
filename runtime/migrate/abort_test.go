package migrate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/tcp"
)

// TestAbortNoticeEndsTombstone: a conn_aborted ends the tombstone of the
// connection it names only at the server the client knows, and only when
// it is about a later migration of the one that took the connection away;
// any other leaves the tombstone, whose segments are still dropped.
func TestAbortNoticeEndsTombstone(t *testing.T) {
	id := tcp.ID{Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("10.0.0.9:40000")}
	const left = 250 // the epoch of the move that took the connection away
	for _, tc := range []struct {
		name   string
		origin string
		port   uint16
		epoch  uint8
		ended  bool
	}{
		{"the next migration", "10.0.0.1", 80, 251, true},
		{"across the wrap", "10.0.0.1", 80, 3, true}, // 251..255, 1, 2, 3: 8 on
		{"the span's last", "10.0.0.1", 80, 27, true},
		{"past the span", "10.0.0.1", 80, 28, false},
		{"the move itself", "10.0.0.1", 80, left, false},
		{"an earlier migration", "10.0.0.1", 80, 249, false},
		{"another server's connection", "10.0.0.2", 80, 251, false},
		{"another port", "10.0.0.1", 81, 251, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHost{now: time.Second, conn: id}
			e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			e.tomb(id, h.now+tcp.Time(2*time.Second), left)
			e.mu.Unlock()
			m := tcpmig.ConnAborted{TCPMigFields: tcpmig.TCPMigFields{
				OriginIP: netip.MustParseAddr(tc.origin).As4(), OriginPort: tc.port,
				ClientIP: id.Remote.Addr().As4(), ClientPort: id.Remote.Port(), Epoch: tc.epoch,
			}}
			b := make([]byte, m.EncodedLen())
			if _, err := m.Encode(b); err != nil {
				t.Fatal(err)
			}
			e.Datagram(netip.MustParseAddr("10.0.0.3"), b)
			e.mu.Lock()
			_, tombed := e.tombs[id]
			e.mu.Unlock()
			st := e.Stats()
			if tombed == tc.ended || st.TombstonesEnded != map[bool]uint64{true: 1}[tc.ended] || st.Unexpected != 0 || st.BadMessages != 0 {
				t.Fatalf("tombstone still there %v, stats %+v; want it ended %v", tombed, st, tc.ended)
			}
		})
	}
}

func TestEpochAfter(t *testing.T) {
	for _, tc := range []struct {
		b, a uint8
		want bool
	}{
		{2, 1, true}, {1, 255, true}, {33, 1, true}, {34, 1, false}, {1, 1, false}, {1, 2, false}, {32, 255, true}, {33, 255, false},
	} {
		if got := epochAfter(tc.b, tc.a, abortNoticeSpan); got != tc.want {
			t.Errorf("epochAfter(%d, %d) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}
