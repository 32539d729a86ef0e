package tcpmig

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fragments cuts msg for the connection of h and returns copies.
func fragments(t *testing.T, h TCPMigFields, msg []byte) []ConnState {
	t.Helper()
	var out []ConnState
	m := ConnState{TCPMigFields: h}
	err := FragmentConnState(&m, msg, func(f *ConnState) error {
		c := *f
		c.Data = bytes.Clone(f.Data)
		out = append(out, c)
		return nil
	})
	if err != nil {
		t.Fatalf("FragmentConnState(%d bytes): %v", len(msg), err)
	}
	return out
}

var conn = TCPMigFields{OriginIP: origin, OriginPort: 8080, ClientIP: client, ClientPort: 51000}

func TestFragmentConnState(t *testing.T) {
	for _, n := range []int{0, 1, ConnStateFragmentBytes - 1, ConnStateFragmentBytes, ConnStateFragmentBytes + 1, 10 * ConnStateFragmentBytes} {
		msg := pattern(n, 5)
		frags := fragments(t, conn, msg)
		if len(frags) != ConnStateFragments(n) {
			t.Errorf("%d bytes: %d fragments, ConnStateFragments says %d", n, len(frags), ConnStateFragments(n))
		}
		var joined []byte
		for i, f := range frags {
			if int(f.FragmentIndex) != i || f.NextFragment != (i < len(frags)-1) || int(f.TotalLength) != n || f.ClientPort != conn.ClientPort {
				t.Errorf("%d bytes: fragment %d = index %d next %v total %d", n, i, f.FragmentIndex, f.NextFragment, f.TotalLength)
			}
			if len(f.Data) > ConnStateFragmentBytes {
				t.Errorf("%d bytes: fragment %d carries %d bytes", n, i, len(f.Data))
			}
			joined = append(joined, f.Data...)
		}
		if !bytes.Equal(joined, msg) {
			t.Errorf("%d bytes: fragments do not join back to the message", n)
		}
	}
	stop := errors.New("stop")
	calls := 0
	m := ConnState{}
	if err := FragmentConnState(&m, make([]byte, 3*ConnStateFragmentBytes), func(*ConnState) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("FragmentConnState with a failing fn = %v after %d calls, want stop after 1", err, calls)
	}
	if err := FragmentConnState(&m, make([]byte, ConnStateMaxBytes+1), func(*ConnState) error { return nil }); !errors.Is(err, ErrBadLength) {
		t.Errorf("FragmentConnState over the cap = %v, want ErrBadLength", err)
	}
}

func TestReassembleAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		msg := pattern(rng.IntN(20*ConnStateFragmentBytes), byte(trial))
		frags := fragments(t, conn, msg)
		// Duplicate some, then shuffle.
		for range rng.IntN(5) {
			frags = append(frags, frags[rng.IntN(len(frags))])
		}
		rng.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
		r := NewConnStateReassembler()
		var got []byte
		for i := range frags {
			out, err := r.Add(time.Duration(i), &frags[i])
			if err != nil {
				t.Fatalf("trial %d: Add: %v", trial, err)
			}
			if out != nil {
				// Duplicates after completion start the message again, so
				// it may complete twice, but always with the same bytes.
				if got != nil && !bytes.Equal(out, got) {
					t.Fatalf("trial %d: completed twice with different bytes", trial)
				}
				got = out
			}
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("trial %d: reassembled %d bytes, want the %d sent", trial, len(got), len(msg))
		}
	}
}

func TestReassembleInterleaved(t *testing.T) {
	other := conn
	other.ClientPort++
	a, b := pattern(3*ConnStateFragmentBytes, 1), pattern(2*ConnStateFragmentBytes+5, 2)
	fa, fb := fragments(t, conn, a), fragments(t, other, b)
	r := NewConnStateReassembler()
	add := func(f ConnState) []byte {
		out, err := r.Add(0, &f)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	add(fa[0])
	add(fb[2])
	add(fa[2])
	add(fb[0])
	if r.Pending() != 2 || r.Buffered() != len(a)+len(b) {
		t.Errorf("Pending, Buffered = %d, %d; want 2, %d", r.Pending(), r.Buffered(), len(a)+len(b))
	}
	if out := add(fb[1]); !bytes.Equal(out, b) {
		t.Error("second connection did not complete with its own bytes")
	}
	if out := add(fa[1]); !bytes.Equal(out, a) {
		t.Error("first connection did not complete with its own bytes")
	}
	if r.Pending() != 0 || r.Buffered() != 0 {
		t.Errorf("after completion: Pending, Buffered = %d, %d", r.Pending(), r.Buffered())
	}
}

func TestReassembleRefusals(t *testing.T) {
	msg := pattern(3*ConnStateFragmentBytes+10, 9)
	frags := fragments(t, conn, msg)
	lie := func(f func(m *ConnState)) *ConnState { c := frags[1]; c.Data = bytes.Clone(c.Data); f(&c); return &c }
	tests := []struct {
		name string
		frag *ConnState
		want error
		text string
	}{
		{"total over the cap", lie(func(m *ConnState) { m.TotalLength = ConnStateMaxBytes + 1 }), ErrBadLength, "over the 16777216-byte cap"},
		{"index past the end", lie(func(m *ConnState) { m.FragmentIndex = 4 }), ErrBadLength, "fragment 4 of a 4354-byte message, which has 4 fragments"},
		{"truncated fragment", lie(func(m *ConnState) { m.Data = m.Data[:100] }), ErrBadLength, "carries 100 bytes, want 1448"},
		{"long last fragment", lie(func(m *ConnState) { m.FragmentIndex = 3; m.NextFragment = false }), ErrBadLength, "fragment 3 carries 1448 bytes, want 10"},
		{"more flag on the last", lie(func(m *ConnState) { m.FragmentIndex = 3; m.Data = m.Data[:10] }), ErrBadLength, "fragment 3 of 4 has next_fragment=true"},
		{"no more flag in the middle", lie(func(m *ConnState) { m.NextFragment = false }), ErrBadLength, "next_fragment=false"},
		{"other total", lie(func(m *ConnState) { m.TotalLength += ConnStateFragmentBytes }), ErrFragmentConflict, "the message in progress has 4354"},
		{"overlap with other bytes", lie(func(m *ConnState) { m.FragmentIndex = 0; m.Data[0] ^= 1 }), ErrFragmentConflict, "fragment 0 came twice"},
	}
	for _, tt := range tests {
		r := NewConnStateReassembler()
		if _, err := r.Add(0, &frags[0]); err != nil {
			t.Fatal(err)
		}
		out, err := r.Add(1, tt.frag)
		if out != nil || !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: Add = %v, %v; want %v containing %q", tt.name, out != nil, err, tt.want, tt.text)
		}
		// A refused fragment changes nothing: the message still completes.
		var got []byte
		for i := 1; i < len(frags); i++ {
			if got, err = r.Add(2, &frags[i]); err != nil {
				t.Fatalf("%s: Add after the refusal: %v", tt.name, err)
			}
		}
		if !bytes.Equal(got, msg) {
			t.Errorf("%s: the message did not complete after the refusal", tt.name)
		}
	}
}

func TestReassembleTimeout(t *testing.T) {
	msg := pattern(2*ConnStateFragmentBytes, 4)
	frags := fragments(t, conn, msg)
	r := NewConnStateReassembler()
	if _, err := r.Add(0, &frags[0]); err != nil {
		t.Fatal(err)
	}
	// A missing fragment never completes; Expire drops the partial message.
	if n := r.Expire(ConnStateTimeout - 1); n != 0 || r.Pending() != 1 {
		t.Errorf("Expire before the timeout dropped %d", n)
	}
	if n := r.Expire(ConnStateTimeout); n != 1 || r.Pending() != 0 || r.Buffered() != 0 {
		t.Errorf("Expire at the timeout dropped %d, left %d pending, %d bytes", n, r.Pending(), r.Buffered())
	}
	// A fragment after the timeout starts over instead of completing the
	// stale message.
	if _, err := r.Add(0, &frags[0]); err != nil {
		t.Fatal(err)
	}
	if out, err := r.Add(ConnStateTimeout, &frags[1]); out != nil || err != nil || r.Pending() != 1 {
		t.Errorf("Add after the timeout = %v, %v with %d pending; want a fresh partial", out != nil, err, r.Pending())
	}
	if out, _ := r.Add(ConnStateTimeout+1, &frags[0]); !bytes.Equal(out, msg) {
		t.Error("the restarted message did not complete")
	}
}

func TestReassembleLimits(t *testing.T) {
	frag := func(port uint16, size int) ConnState {
		h := conn
		h.ClientPort = port
		return fragments(t, h, pattern(size, 1))[0]
	}
	r := NewConnStateReassembler()
	r.MaxPending = 2
	for port := range uint16(2) {
		f := frag(port, 2*ConnStateFragmentBytes)
		if _, err := r.Add(0, &f); err != nil {
			t.Fatal(err)
		}
	}
	f := frag(9, 2*ConnStateFragmentBytes)
	if _, err := r.Add(1, &f); !errors.Is(err, ErrReassemblyFull) || !strings.Contains(err.Error(), "2 conn_state messages in progress") {
		t.Errorf("Add over MaxPending = %v, want ErrReassemblyFull", err)
	}
	// Nothing in progress was evicted; once they expire, room is made.
	if r.Pending() != 2 {
		t.Errorf("Pending = %d after a refusal, want 2", r.Pending())
	}
	if _, err := r.Add(ConnStateTimeout, &f); err != nil || r.Pending() != 1 {
		t.Errorf("Add after the others expired = %v, %d pending", err, r.Pending())
	}

	r = NewConnStateReassembler()
	r.MaxBuffered = 3 * ConnStateFragmentBytes
	a, b := frag(1, 2*ConnStateFragmentBytes), frag(2, 2*ConnStateFragmentBytes)
	if _, err := r.Add(0, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(0, &b); !errors.Is(err, ErrReassemblyFull) || !strings.Contains(err.Error(), "more would pass") {
		t.Errorf("Add over MaxBuffered = %v, want ErrReassemblyFull", err)
	}
	// A single-fragment message needs no buffer and is never refused.
	one := frag(3, 10)
	if out, err := r.Add(0, &one); err != nil || len(out) != 10 {
		t.Errorf("single fragment while full = %d bytes, %v", len(out), err)
	}
	empty := frag(4, 0)
	if out, err := r.Add(0, &empty); err != nil || out == nil || len(out) != 0 {
		t.Errorf("empty message = %v, %v; want a non-nil empty slice", out, err)
	}
	var zero ConnStateReassembler
	if _, err := zero.Add(0, &a); err == nil {
		t.Error("the zero reassembler accepted a fragment; it must refuse everything")
	}
}

// BenchmarkReassemble measures a 16-fragment message through the reassembler.
func BenchmarkReassemble(b *testing.B) {
	msg := pattern(16*ConnStateFragmentBytes, 1)
	var frags []ConnState
	m := ConnState{TCPMigFields: conn}
	_ = FragmentConnState(&m, msg, func(f *ConnState) error { frags = append(frags, *f); return nil })
	r := NewConnStateReassembler()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		for i := range frags {
			if _, err := r.Add(0, &frags[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
