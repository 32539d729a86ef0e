package pipeline

import (
	"testing"
)

// seedFrames are real frames of every kind the pipeline parses.
func seedFrames(e *env) [][]byte {
	frames := [][]byte{
		tcpFrame(e.t, ipClient, ipA, cport, svport, "PA", []byte("GET /")),
		tcpFrame(e.t, ipB, ipClient, svport, cport, "FA", nil),
		tcpFrame(e.t, ipClient, ipA, cport, svport, "R", nil),
		e.heartbeat(ipA, 9),
		e.ack(ipB, ipA, ipClient, cport, true),
		e.ack(ipC, ipA, ipClient, cport, true), // stale once B holds the client
		e.ackTo(ipC, ipB, ipA, ipClient, cport, true),
		e.prepareFrom(ipB, ipA, ipClient, cport),
		e.ack(ipB, ipA, ipClient, cport+7, false),
		e.prepare(ipA),
		{},
		make([]byte, 14),
	}
	if Release != "" {
		frames = append(frames, e.connClosed(ipB, ipA, ipClient, cport))
	}
	return frames
}

// FuzzProcess feeds random frames on random ports to a populated pipeline:
// it must never panic, keep the frame length, and return a coherent Result.
func FuzzProcess(f *testing.F) {
	e := newEnv(f)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	e.heartbeatReply(ipC, portC, 4)
	for _, fr := range seedFrames(e) {
		for _, p := range []Port{portClient, portA, portB, portNoRole, MaxPorts} {
			f.Add(fr, uint16(p))
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, port uint16) {
		n := len(frame)
		r := e.p.Process(frame, Port(port))
		if len(frame) != n {
			t.Fatalf("length %d became %d", n, len(frame))
		}
		switch r.Verdict {
		case Forward:
			if int(r.Egress) >= MaxPorts || r.Drop != DropNone {
				t.Fatalf("bad forward %+v", r)
			}
		case Flood, Reply:
			if r.Egress != Port(port) || r.Drop != DropNone {
				t.Fatalf("bad %v %+v from port %d", r.Verdict, r, port)
			}
		case Drop:
			if r.Drop == DropNone || int(r.Drop) >= NumDropReasons {
				t.Fatalf("drop without a reason: %+v", r)
			}
		default:
			t.Fatalf("invalid verdict %+v", r)
		}
	})
}
