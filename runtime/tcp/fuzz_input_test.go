package tcp

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// checkInvariants reports the first internal inconsistency of c.
func checkConn(c *Conn, now Time) error {
	switch {
	case seqGT(c.sndUna, c.sndNxt) || seqGT(c.sndNxt, c.sndMax):
		return fmt.Errorf("snd.una %d snd.nxt %d snd.max %d out of order", c.sndUna, c.sndNxt, c.sndMax)
	case c.sndBuf.len() > c.sndBuf.cap() || c.rcvBuf.len() > c.rcvBuf.cap():
		return fmt.Errorf("buffers over capacity")
	case c.state.Synchronized() && c.state != StateTimeWait && int64(c.sndMax-c.sndUna) > int64(c.sndBuf.len())+1:
		return fmt.Errorf("%d bytes in flight but only %d buffered", c.sndMax-c.sndUna, c.sndBuf.len())
	case c.ooo.n > maxHoles:
		return fmt.Errorf("%d holes", c.ooo.n)
	case c.cwnd == 0 || c.cwnd > maxCwnd:
		return fmt.Errorf("cwnd %d", c.cwnd)
	}
	readerNext := c.rcvNxt - uint32(c.rcvBuf.len())
	if c.finRcvd {
		readerNext--
	}
	prev := c.rcvNxt
	for i := 0; i < c.ooo.n; i++ {
		r := c.ooo.r[i]
		if !seqGT(r.start, prev) || !seqGT(r.end, r.start) || int64(r.end-readerNext) > int64(c.rcvBuf.cap()) {
			return fmt.Errorf("hole %d [%d,%d) after %d, reader %d cap %d", i, r.start, r.end, prev, readerNext, c.rcvBuf.cap())
		}
		prev = r.end
	}
	if d, ok := c.Deadline(); ok && d <= now {
		return fmt.Errorf("Deadline %v not after Output at %v", d, now)
	}
	return nil
}

// FuzzConnInput feeds arbitrary segments, placed relative to the live
// sequence numbers so that they reach deep paths, into an established
// connection with data queued both ways. Nothing may panic and the
// connection's invariants must hold after every Output.
func FuzzConnInput(f *testing.F) {
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 5})
	f.Add([]byte{0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0x7f, 0xff, 3, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, c, now := establish(t, Config{RecvBuffer: 3000, SendBuffer: 5000, MSS: 500, TimeWait: time.Second}, Config{RecvBuffer: 2000, SendBuffer: 4000, MSS: 400})
		a.Write(make([]byte, 4000))
		c.Write(make([]byte, 3000))
		pingPong(a, c, now)
		data := make([]byte, 1024)
		for len(b) >= 13 {
			// flags u8, seq offset i32, ack offset i32, window u16, payload len u8 (x4), cmd bits in flags' high nibble reuse
			flags := Flags(b[0])
			seqOff := int32(binary.BigEndian.Uint32(b[1:]))
			ackOff := int32(binary.BigEndian.Uint32(b[5:]))
			win := binary.BigEndian.Uint16(b[9:])
			plen := int(b[11]) * 4
			step := Time(b[12]) * 10 * time.Millisecond
			b = b[13:]
			seg := Segment{
				SrcPort: addrA.Port(), DstPort: addrB.Port(),
				Seq:   c.rcvNxt + uint32(seqOff%5000),
				Ack:   c.sndUna + uint32(ackOff%5000),
				Flags: flags, Window: win, WindowScale: -1,
				Payload: data[:plen],
			}
			now += step
			c.Input(now, &seg)
			if step%7 == 3 {
				c.Read(data[:100])
			}
			if step%11 == 5 {
				c.Close()
			}
			c.Output(now, func(*Segment) {})
			if err := checkConn(c, now); err != nil {
				t.Fatalf("after %v in %v: %v", seg.String(), c.State(), err)
			}
			if d, ok := c.Deadline(); ok && step%3 == 0 {
				now = d
				c.Output(now, func(*Segment) {})
				if err := checkConn(c, now); err != nil {
					t.Fatalf("after timer in %v: %v", c.State(), err)
				}
			}
			snap := c.AppendSnapshot(nil, c.lastNow)
			r, err := Restore(c.cfg, snap, now)
			if err != nil {
				t.Fatalf("snapshot of a live conn in %v does not restore: %v", c.State(), err)
			}
			if again := r.AppendSnapshot(nil, r.lastNow); string(again) != string(snap) {
				t.Fatalf("snapshot round trip differs in %v", c.State())
			}
		}
	})
}
