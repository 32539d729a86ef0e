package tcp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// exchange sends aData from A and bData from B, both close when done, and
// runs until both sides have read EOF.
func exchange(t testing.TB, n *net, aData, bData []byte, limit Time) (pa, pb *pump) {
	t.Helper()
	pa = &pump{data: aData, done: true}
	pb = &pump{data: bData, done: true}
	n.app = func() {
		pa.c = n.a
		pb.c = n.b
		pa.work()
		pb.work()
	}
	ok := n.run(limit, func() bool { return pa.eof && pb.eof })
	if !ok {
		t.Fatalf("transfer did not finish by %v: A %v got %d/%d eof=%v err=%v, B %v got %d/%d eof=%v err=%v; A stats %+v B stats %+v",
			n.now, n.a.State(), pa.got.Len(), len(bData), pa.eof, pa.err,
			stateOf(n.b), pb.got.Len(), len(aData), pb.eof, pb.err, n.a.Stats(), statsOf(n.b))
	}
	if !bytes.Equal(pb.got.Bytes(), aData) {
		t.Fatalf("B received %d bytes that differ from the %d A sent (first diff at %d)", pb.got.Len(), len(aData), firstDiff(pb.got.Bytes(), aData))
	}
	if !bytes.Equal(pa.got.Bytes(), bData) {
		t.Fatalf("A received %d bytes that differ from the %d B sent (first diff at %d)", pa.got.Len(), len(bData), firstDiff(pa.got.Bytes(), bData))
	}
	return pa, pb
}

func stateOf(c *Conn) State {
	if c == nil {
		return StateInvalid
	}
	return c.State()
}

func statsOf(c *Conn) Stats {
	if c == nil {
		return Stats{}
	}
	return c.Stats()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestHandshakeTransferClose(t *testing.T) {
	n := newNet(t, 1)
	n.dial(Config{}, Config{})
	a, b := payload(300<<10, 1), payload(200<<10, 2)
	exchange(t, n, a, b, 60*time.Second)
	// Both closed: one ends in TIME-WAIT (or already past it), the other CLOSED.
	if !n.run(3*time.Minute, func() bool { return n.a.Done() && n.b.Done() }) {
		t.Fatalf("not done: A %v B %v", n.a.State(), n.b.State())
	}
	if n.a.Err() != nil || n.b.Err() != nil {
		t.Fatalf("errors after a clean close: A %v B %v", n.a.Err(), n.b.Err())
	}
}
