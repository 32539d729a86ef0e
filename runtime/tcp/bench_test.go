package tcp

import (
	"fmt"
	"testing"
	"time"
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

// BenchmarkRecoveryACK is the sender's per-ACK work in a recovery with n
// segments in flight: the first is lost and every later one is SACKed by
// its own ACK, the block growing by one segment each time, as a peer
// reports a long run behind one hole. The work per ACK must not grow with
// n (a peer that shrinks our segments to the minimum MSS must not make
// each of its ACKs cost more).
func BenchmarkRecoveryACK(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 14} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			const mss = 1000
			cfg := Config{MSS: mss, SendBuffer: n * mss, DelayedACK: -1, NoTimestamps: true}
			data := payload(n*mss, 3)
			b.ReportAllocs()
			acks := 0
			var took time.Duration
			for b.Loop() {
				b.StopTimer()
				s, peer, now := establish(b, cfg, Config{MSS: mss, RecvBuffer: n * mss, NoTimestamps: true})
				s.cwnd, s.sndWnd = maxCwnd, uint32(n*mss)
				if w, err := s.Write(data); w != len(data) || err != nil {
					b.Fatalf("Write = %d, %v", w, err)
				}
				s.Output(now, func(*Segment) {})
				if s.txq.n != n {
					b.Fatalf("%d records in flight, want %d", s.txq.n, n)
				}
				una, seg := s.sndUna, s.txq.at(0).len()
				ack := Segment{SrcPort: addrB.Port(), DstPort: addrA.Port(), Seq: peer.sndNxt, Ack: una, Flags: FlagACK,
					Window: 0xffff, WindowScale: -1, NumSACK: 1}
				now += time.Millisecond
				b.StartTimer()
				start := time.Now()
				for k := 1; k < n; k++ {
					ack.SACK[0] = SACKBlock{una + seg, una + uint32(k+1)*seg}
					s.Input(now, &ack)
					s.Output(now, func(*Segment) {})
				}
				took += time.Since(start)
				acks += n - 1
				if s.Stats().Retransmits == 0 || s.sackedBytes != uint32(n-1)*seg {
					b.Fatalf("after the ACKs: %d retransmits, %d bytes SACKed; want the hole resent and %d SACKed", s.Stats().Retransmits, s.sackedBytes, (n-1)*int(seg))
				}
			}
			b.ReportMetric(float64(took.Nanoseconds())/float64(acks), "ns/ack")
		})
	}
}
