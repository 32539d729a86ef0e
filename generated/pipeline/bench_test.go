package pipeline

import (
	"testing"

	"github.com/capygen/capygen/runtime/genrt/pipe"
	"github.com/capygen/capygen/runtime/genrt/wire"
)

// BenchmarkProcessRequestHit: a client segment of a migrated connection,
// looked up, rewritten (with both checksum updates) and routed.
func BenchmarkProcessRequestHit(b *testing.B) {
	e := newEnv(b)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frame := tcpFrame(b, ipClient, ipA, cport, svport, "PA", make([]byte, 64))
	if r := e.p.Process(append([]byte(nil), frame...), portClient); r != fwd(portB) {
		b.Fatalf("Process = %+v, want forward to B", r)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Put the origin back so every iteration rewrites.
		copy(frame[30:34], ipA[:])
		e.p.Process(frame, portClient)
	}
}

// BenchmarkProcessMiss: a segment of a connection that never migrated: every
// level looked up, nothing rewritten, routed.
func BenchmarkProcessMiss(b *testing.B) {
	e := newEnv(b)
	frame := tcpFrame(b, ipClient, ipA, cport, svport, "PA", make([]byte, 64))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := e.p.Process(frame, portClient); r.Verdict != Forward {
			b.Fatalf("Process = %+v", r)
		}
	}
}

// BenchmarkProcessHeartbeat: a heartbeat answered in place.
func BenchmarkProcessHeartbeat(b *testing.B) {
	e := newEnv(b)
	frame := e.heartbeat(ipA, 10)
	stage := e.s.HeaderField(e.s.Header.StageField)
	request := e.s.MessageByName(e.s.Workload.Heartbeat).Stage.Value
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Turn the reply back into the request.
		pipe.SwapReply(frame)
		wire.SetField(frame[migOff:], stage.Offset, stage.Bits, request)
		e.p.Process(frame, portA)
	}
}

// TestProcessAllocatesNothing: the hot path of every kind of frame is free
// of allocations (the software switch runs it per packet).
func TestProcessAllocatesNothing(t *testing.T) {
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frames := seedFrames(e)
	for i, f := range frames {
		for _, in := range []Port{portClient, portA} {
			buf := append([]byte(nil), f...)
			if n := testing.AllocsPerRun(100, func() {
				copy(buf, f)
				e.p.Process(buf, in)
			}); n != 0 {
				t.Errorf("Process(seed frame %d, port %d) allocates %.1f times per call", i, in, n)
			}
		}
	}
}
