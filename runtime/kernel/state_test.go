package kernel

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/capygen/capygen/runtime/repair"
	"github.com/capygen/capygen/runtime/tcp"
)

func sampleDump() *repair.Dump {
	return &repair.Dump{
		Local:     netip.MustParseAddrPort("10.0.0.1:80"),
		Remote:    netip.MustParseAddrPort("10.0.0.9:40000"),
		State:     repair.StateEstablished,
		SendSeq:   1000,
		RecvSeq:   2000,
		SendQueue: []byte("unacked and unsent"),
		Unsent:    6,
		RecvQueue: []byte("unread"),
		Options:   repair.OptTimestamps | repair.OptSACK | repair.OptWindowScale,
		SndWscale: 7, RcvWscale: 7,
		MSS:    1448,
		Window: repair.Window{SndWl1: 2000, SndWnd: 65535, MaxWindow: 65535, RcvWnd: 65535, RcvWup: 2000},
		SndBuf: 46080, RcvBuf: 131072,
	}
}

func TestStateRoundTrip(t *testing.T) {
	d := sampleDump()
	b, err := appendState(nil, d, []byte("app state"))
	if err != nil {
		t.Fatal(err)
	}
	got, app, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(app, []byte("app state")) || got.String() != d.String() || !bytes.Equal(got.SendQueue, d.SendQueue) {
		t.Fatalf("round trip: %v %q, want %v %q", got, app, d, "app state")
	}
}

func TestStateRefused(t *testing.T) {
	good, err := appendState(nil, sampleDump(), []byte("app"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[20] ^= 0x40
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bypass snapshot", append([]byte("TCPS"), good[4:]...)},
		{"truncated dump", good[:20]},
		{"length past the end", append(bytes.Clone(good[:4]), 0xff, 0xff, 0xff, 0xff)},
		{"flipped byte", flipped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := decodeState(tc.b); !errors.Is(err, ErrState) {
				t.Fatalf("decodeState = %v, want ErrState", err)
			}
		})
	}
}

func FuzzDecodeState(f *testing.F) {
	good, err := appendState(nil, sampleDump(), []byte("app"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:12])
	f.Fuzz(func(t *testing.T, b []byte) {
		d, app, err := decodeState(b)
		if err != nil {
			return
		}
		again, err := appendState(nil, d, app)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded state does not encode back: %v", err)
		}
	})
}

// TestRestoreOverTheCapNamesTheField: a state whose queues exceed the
// restore cap is refused with the Config field that sets the cap.
func TestRestoreOverTheCapNamesTheField(t *testing.T) {
	d := sampleDump()
	state, err := appendState(nil, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{}
	self := tcp.ID{Local: d.Local, Remote: d.Remote}
	_, _, err = h.Restore(0, state, self, d.Local, 4, nil)
	if err == nil || !strings.Contains(err.Error(), "Config.Engine.MaxRestoreBuffer") {
		t.Fatalf("Restore of %d- and %d-byte queues under a cap of 4: %v; want the error to name Config.Engine.MaxRestoreBuffer", len(d.SendQueue), len(d.RecvQueue), err)
	}
}

// TestOfferSaysWhyItRefuses: a listener refuses a connection migrated in
// for a full backlog or for being closed, and says which; admits says the
// same beforehand.
func TestOfferSaysWhyItRefuses(t *testing.T) {
	l := &Listener{migrated: make(chan *Conn, 1)}
	if err := l.admits(); err != nil {
		t.Fatalf("admits with room: %v", err)
	}
	if err := l.offer(&Conn{}); err != nil {
		t.Fatalf("offer with room: %v", err)
	}
	for what, fn := range map[string]func() error{"admits": l.admits, "offer": func() error { return l.offer(&Conn{}) }} {
		if err := fn(); !errors.Is(err, errBacklogFull) {
			t.Errorf("%s with the backlog full: %v, want errBacklogFull", what, err)
		}
	}
	l.closed = true
	for what, fn := range map[string]func() error{"admits": l.admits, "offer": func() error { return l.offer(&Conn{}) }} {
		if err := fn(); !errors.Is(err, ErrListenerClosed) {
			t.Errorf("%s once closed: %v, want ErrListenerClosed", what, err)
		}
	}
}
