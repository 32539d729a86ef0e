package tcp

import (
	"testing"
	"time"
)

func TestNewISS(t *testing.T) {
	key := [16]byte{1, 2, 3}
	id := ID{Local: addrA, Remote: addrB}
	x := NewISS(key, id, 0)
	if NewISS(key, id, 0) != x {
		t.Fatalf("NewISS is not deterministic")
	}
	if got := NewISS(key, id, 4*time.Millisecond); got-x != 1000 {
		t.Fatalf("NewISS advanced by %d over 4 ms, want 1000 (one per 4 µs)", got-x)
	}
	other := ID{Local: addrA, Remote: netipMust("10.77.0.2:81")}
	if NewISS(key, other, 0) == x || NewISS([16]byte{9}, id, 0) == x {
		t.Fatalf("NewISS ignores the address pair or the key")
	}
}
