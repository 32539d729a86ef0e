package tcp

import (
	"testing"
)

// BenchmarkInputData is the per-segment receive path: one in-order
// 1460-byte segment in, the application reads it, Output ACKs as due.
func BenchmarkInputData(b *testing.B) {
	a, r, now := establish(b, Config{}, Config{})
	data := payload(1460, 1)
	seg := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: a.sndNxt, Ack: r.sndNxt, Flags: FlagACK, Window: 1000, WindowScale: -1, Payload: data}
	buf := make([]byte, 2048)
	acks := 0
	emit := func(*Segment) { acks++ }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Input(now, &seg)
		seg.Seq += uint32(len(data))
		r.Read(buf)
		r.Output(now, emit)
	}
	if r.Readable() != 0 || acks == 0 {
		b.Fatalf("receiver fell behind: %d readable, %d ACKs", r.Readable(), acks)
	}
}

// BenchmarkOutputData is the per-segment send path: the application
// writes 1460 bytes, Output emits the segment, and the peer's ACK for it
// comes back through Input.
func BenchmarkOutputData(b *testing.B) {
	s, peer, now := establish(b, Config{}, Config{})
	data := payload(1460, 2)
	ack := Segment{SrcPort: addrB.Port(), DstPort: addrA.Port(), Seq: peer.sndNxt, Flags: FlagACK, Window: 0xffff, WindowScale: -1}
	sent := 0
	emit := func(seg *Segment) { sent += len(seg.Payload) }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := s.Write(data); n != len(data) || err != nil {
			b.Fatalf("Write = %d, %v", n, err)
		}
		s.Output(now, emit)
		ack.Ack = s.sndNxt
		s.Input(now, &ack)
	}
	if s.sndUna != s.sndMax || sent == 0 {
		b.Fatalf("sender fell behind: una %d max %d", s.sndUna, s.sndMax)
	}
}
