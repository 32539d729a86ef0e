package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/capygen/capygen/testbed"
)

func TestPayloadMatchesTestbed(t *testing.T) {
	for _, n := range []int64{0, 1, 7, 8, 9, 63, 64, 65, 1000, 65536 + 3, 1 << 20} {
		want, err := io.ReadAll(testbed.Payload(n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(NewPayload(n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: Payload differs from testbed.Payload", n)
		}
		sum := sha256.Sum256(got)
		if hex.EncodeToString(sum[:]) != testbed.PayloadSHA256(n) {
			t.Fatalf("n=%d: sha256 differs from testbed.PayloadSHA256", n)
		}
	}
}

// Any offset and length read the same bytes as the whole stream has there.
func TestPayloadSeek(t *testing.T) {
	const n = 10_000
	whole, _ := io.ReadAll(testbed.Payload(n))
	rng := rand.New(rand.NewPCG(3, 4))
	p := NewPayload(n)
	for range 2000 {
		off := rng.Int64N(n + 5)
		buf := make([]byte, rng.IntN(40))
		got, err := p.ReadAt(buf, off)
		switch {
		case off >= n:
			if got != 0 || err != io.EOF {
				t.Fatalf("ReadAt(%d) past the end = %d, %v", off, got, err)
			}
		case !bytes.Equal(buf[:got], whole[off:min(n, off+int64(len(buf)))]):
			t.Fatalf("ReadAt(%d bytes at %d) differs", len(buf), off)
		}
	}
	if _, err := p.Seek(4321, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(p)
	if !bytes.Equal(rest, whole[4321:]) {
		t.Fatal("Read after Seek differs")
	}
	if _, err := p.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek before the start succeeded")
	}
	if _, err := p.ReadAt(buf1, -1); err == nil {
		t.Error("ReadAt a negative offset succeeded")
	}
}

var buf1 = make([]byte, 1)
