package app

import (
	"bytes"
	"testing"
)

// serveEchoFake echoes input through as many incarnations as the moves
// make.
func serveEchoFake(input []byte, chunk int, move func(inc, q int) bool) (out []byte, moves int, closed bool, err error) {
	return serveEchoFakeWrites(input, chunk, 0, move)
}

// serveEchoFakeWrites is serveEchoFake with writes of more than writeChunk
// bytes interrupted after writeChunk (0: never).
func serveEchoFakeWrites(input []byte, chunk, writeChunk int, move func(inc, q int) bool) (out []byte, moves int, closed bool, err error) {
	e := &Echo{BufferSize: 1000, ErrorLog: discardLogger()}
	buf := &bytes.Buffer{}
	in := input
	var state []byte
	restored := false
	for inc := 0; ; inc++ {
		f := &fakeConn{in: in, out: buf, chunk: chunk, writeChunk: writeChunk}
		if move != nil {
			f.move = func(q int) bool { return move(inc, q) }
		}
		ec, err := newEchoConn(e, f, state, restored)
		if err != nil {
			return nil, inc, false, err
		}
		f.state = ec.state
		ec.serve()
		if !f.moved {
			return buf.Bytes(), inc, f.closed, nil
		}
		state, restored, in = f.saved, true, f.in
	}
}

func TestEchoMigrateAtEveryQuiescentPoint(t *testing.T) {
	input := payloadBytes(20_000)
	ref, _, closed, err := serveEchoFake(input, 700, nil)
	if err != nil || !bytes.Equal(ref, input) || !closed {
		t.Fatalf("without moves: %d of %d bytes back, closed %v, %v", len(ref), len(input), closed, err)
	}
	for k := 0; k < 2*len(input)/700+4; k++ {
		out, moves, closed, err := serveEchoFake(input, 700, func(inc, q int) bool { return inc == 0 && q == k })
		if err != nil || !bytes.Equal(out, input) || !closed {
			t.Fatalf("move at point %d: %d of %d bytes back, closed %v, %v", k, len(out), len(input), closed, err)
		}
		_ = moves
	}
	out, moves, closed, err := serveEchoFake(input, 300, func(_, q int) bool { return q == 1 })
	if err != nil || !bytes.Equal(out, input) || !closed {
		t.Fatalf("moving at every other point: %d of %d bytes back, closed %v, %v", len(out), len(input), closed, err)
	}
	t.Logf("a stream moved %d times came back whole", moves)
}

// TestEchoMigrateMidWrite: writes interrupted for a migration (the client
// reads slowly) are quiescent points too; moving at any of them, or at
// every other point, loses and repeats nothing.
func TestEchoMigrateMidWrite(t *testing.T) {
	input := payloadBytes(20_000)
	for k := 0; k < 4*len(input)/300+4; k++ {
		out, _, closed, err := serveEchoFakeWrites(input, 700, 300, func(inc, q int) bool { return inc == 0 && q == k })
		if err != nil || !bytes.Equal(out, input) || !closed {
			t.Fatalf("move at point %d: %d of %d bytes back, closed %v, %v", k, len(out), len(input), closed, err)
		}
	}
	out, moves, closed, err := serveEchoFakeWrites(input, 700, 300, func(_, q int) bool { return q == 1 })
	if err != nil || !bytes.Equal(out, input) || !closed {
		t.Fatalf("moving at every other point: %d of %d bytes back, closed %v, %v", len(out), len(input), closed, err)
	}
	if moves < len(input)/700 {
		t.Fatalf("moved %d times, want at least one per read chunk (%d)", moves, len(input)/700)
	}
}
