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
	return checkScoreboard(c)
}

// checkScoreboard reports a SACK scoreboard that disagrees with the
// sequence numbers: records in order, covering what is in flight, and
// counters that are the sums of their flags.
func checkScoreboard(c *Conn) error {
	q := &c.txq
	if q.n == 0 {
		if c.sackedBytes != 0 || c.lostBytes != 0 {
			return fmt.Errorf("no records but %d SACKed and %d lost bytes", c.sackedBytes, c.lostBytes)
		}
		return nil
	}
	var sacked, lost uint32
	retx := 0
	next := q.at(0).start
	if next != c.sndUna {
		return fmt.Errorf("first record starts at %d, snd.una is %d", next, c.sndUna)
	}
	for i := 0; i < q.n; i++ {
		r := q.at(i)
		if r.start != next || !seqLT(r.start, r.end) {
			return fmt.Errorf("record %d [%d,%d) after %d", i, r.start, r.end, next)
		}
		next = r.end
		if r.flags&txSACKed != 0 {
			sacked += r.len()
		}
		if r.flags&txLost != 0 {
			lost += r.len()
		}
		if r.flags&txSACKed != 0 && r.flags&txLost != 0 {
			return fmt.Errorf("record %d both SACKed and lost", i)
		}
		if r.flags&txRetx != 0 {
			retx++
		}
	}
	switch {
	case next != c.sndMax:
		return fmt.Errorf("records end at %d, snd.max is %d", next, c.sndMax)
	case sacked != c.sackedBytes || lost != c.lostBytes || retx != q.retx:
		return fmt.Errorf("counters SACKed %d lost %d retx %d, records say %d %d %d", c.sackedBytes, c.lostBytes, q.retx, sacked, lost, retx)
	}
	return checkSendTimeList(q)
}

// checkSendTimeList checks that the send-time list holds exactly the
// records neither SACKed nor lost, each once, oldest transmission first,
// and that no record below lostFrom is lost.
func checkSendTimeList(q *txQueue) error {
	want := 0
	for i := 0; i < q.n; i++ {
		r := q.at(i)
		undecided := r.flags&(txSACKed|txLost) == 0
		if undecided != (r.flags&txTimed != 0) {
			return fmt.Errorf("record %d flags %#x: on the send-time list %v, want %v", i, r.flags, r.flags&txTimed != 0, undecided)
		}
		if undecided {
			want++
		}
		if r.flags&txLost != 0 && i < q.index(q.lostFrom) {
			return fmt.Errorf("record %d is lost below lostFrom (index %d)", i, q.index(q.lostFrom))
		}
	}
	if q.timed != want {
		return fmt.Errorf("send-time list counts %d records, %d are undecided", q.timed, want)
	}
	seen := map[uint32]bool{}
	var last Time
	for id, k := q.oldest, 0; k < q.timed; k++ {
		i := q.index(id)
		if i < 0 || i >= q.n || seen[id] || q.rec(id).flags&txTimed == 0 {
			return fmt.Errorf("send-time list entry %d is id %d (index %d, seen %v)", k, id, i, seen[id])
		}
		seen[id] = true
		if r := q.rec(id); r.sent < last {
			return fmt.Errorf("send-time list entry %d sent at %v, before the previous one's %v", k, r.sent, last)
		} else {
			last = r.sent
		}
		if k == q.timed-1 && id != q.newest {
			return fmt.Errorf("send-time list ends at id %d, newest is %d", id, q.newest)
		}
		id = q.rec(id).next
	}
	return nil
}

// FuzzConnInput feeds arbitrary segments, placed relative to the live
// sequence numbers so that they reach deep paths, into an established
// connection with data queued both ways. Nothing may panic and the
// connection's invariants must hold after every Output.
func FuzzConnInput(f *testing.F) {
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 5, 0, 0, 0, 0})
	f.Add([]byte{0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0x7f, 0xff, 3, 200, 0, 0, 0, 0})
	// Duplicate ACKs with SACK blocks over the queued data, one with an
	// old timestamp.
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x01, 0xf4, 0x7d, 0x01,
		0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x03, 0xe8, 0x7d, 0x81,
		0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 3, 0x05, 0xdc, 0x7d, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, c, now := establish(t, Config{RecvBuffer: 3000, SendBuffer: 5000, MSS: 500, TimeWait: time.Second}, Config{RecvBuffer: 2000, SendBuffer: 4000, MSS: 400})
		a.Write(make([]byte, 4000))
		c.Write(make([]byte, 3000))
		pingPong(a, c, now)
		data := make([]byte, 1024)
		for len(b) >= 17 {
			// flags u8, seq offset i32, ack offset i32, window u16,
			// payload len u8 (x4), time step u8, SACK block start
			// offset from snd.una u16 and a length byte (low 6 bits x32;
			// bit 7 adds a second block touching the first, bit 6 one
			// overlapping its second half, for the SACK cache), timestamp:
			// bit 7 omits it, the rest steps it back from TS.Recent
			// (bit 0 of the previous step keeps it at TS.Recent).
			flags := Flags(b[0])
			seqOff := int32(binary.BigEndian.Uint32(b[1:]))
			ackOff := int32(binary.BigEndian.Uint32(b[5:]))
			win := binary.BigEndian.Uint16(b[9:])
			plen := int(b[11]) * 4
			step := Time(b[12]) * 10 * time.Millisecond
			sackOff, sackLen, sackMore := uint32(binary.BigEndian.Uint16(b[13:])), uint32(b[15]&0x3f)*32, b[15]>>6
			ts := b[16]
			b = b[17:]
			seg := Segment{
				SrcPort: addrA.Port(), DstPort: addrB.Port(),
				Seq:   c.rcvNxt + uint32(seqOff%5000),
				Ack:   c.sndUna + uint32(ackOff%5000),
				Flags: flags, Window: win, WindowScale: -1,
				Payload: data[:plen],
			}
			if sackLen > 0 {
				start := c.sndUna + sackOff%6000
				seg.SACK[0], seg.NumSACK = SACKBlock{start, start + sackLen}, 1
				switch sackMore {
				case 2, 3:
					seg.SACK[1], seg.NumSACK = SACKBlock{start + sackLen, start + 2*sackLen}, 2
				case 1:
					seg.SACK[1], seg.NumSACK = SACKBlock{start + sackLen/2, start + 2*sackLen}, 2
				}
			}
			if ts&0x80 == 0 {
				seg.HasTS, seg.TSVal, seg.TSEcr = true, c.tsRecent-uint32(ts&0x7e), c.tsClock(now)
				if ts&1 == 0 {
					seg.TSVal += uint32(step / tsTick) // the peer's clock went on
				}
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
				t.Fatalf("snapshot round trip differs in %v:\n%x\n%x", c.State(), snap, again)
			}
		}
	})
}
