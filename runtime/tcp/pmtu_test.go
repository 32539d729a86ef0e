package tcp

import (
	"bytes"
	"testing"
)

// An ICMP "fragmentation needed" for a segment in flight lowers the MSS
// to what the path carries (RFC 1191), and the segments in flight that
// no longer fit go again in pieces that do, with no congestion cut; the
// peer gets the stream whole.
func TestPathMTULowersTheMSSAndResends(t *testing.T) {
	for _, sack := range []bool{true, false} {
		cfg := Config{MSS: 1460, NoSACK: !sack}
		a, b, now := establish(t, cfg, cfg)
		data := bytes.Repeat([]byte("capybara"), 1000) // 8000 bytes: six full segments
		if n, err := a.Write(data); n != len(data) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		first := emitted(a, now) // the full-size ones are too big for the path
		if len(first) < 2 || len(first[0].Payload) != int(a.sndMSS) {
			t.Fatalf("sack %t: first flight %d segments of %d bytes", sack, len(first), len(first[0].Payload))
		}
		mssBefore, cwnd := a.sndMSS, a.cwnd

		if a.PathMTU(1280, a.sndMax) || a.PathMTU(1280, a.sndUna-1) {
			t.Fatalf("sack %t: an ICMP quoting a sequence outside the flight was believed", sack)
		}
		if a.PathMTU(1500, a.sndUna) {
			t.Fatalf("sack %t: an MTU our segments fit lowered the MSS", sack)
		}
		if !a.PathMTU(1280, first[1].Seq) {
			t.Fatalf("sack %t: the ICMP for a segment in flight was not taken", sack)
		}
		want := 1280 - 40 - tsOptLen
		if int(a.sndMSS) != want || a.cwnd != cwnd || a.stats.PathMTUDrops != 1 {
			t.Fatalf("sack %t: MSS %d -> %d, cwnd %d -> %d, drops %d; want MSS %d and cwnd kept", sack, mssBefore, a.sndMSS, cwnd, a.cwnd, a.stats.PathMTUDrops, want)
		}
		again := emitted(a, now)
		if len(again) == 0 {
			t.Fatalf("sack %t: nothing resent after the MSS dropped", sack)
		}
		for _, s := range again {
			if len(s.Payload) > want {
				t.Fatalf("sack %t: resent %d bytes, more than the new MSS %d", sack, len(s.Payload), want)
			}
		}
		for _, s := range first {
			if len(s.Payload) <= want { // this one fit the path
				b.Input(now, &s)
			}
		}
		feed(b, now, again)
		pingPong(a, b, now)
		got := make([]byte, len(data)+1)
		n, _ := b.Read(got)
		if !bytes.Equal(got[:n], data) {
			t.Fatalf("sack %t: peer read %d of %d bytes, or other bytes", sack, n, len(data))
		}

		// A forged MTU of 68 is taken as MinPathMTU, and the MSS never rises.
		if _, err := a.Write(data); err != nil {
			t.Fatal(err)
		}
		emitted(a, now)
		if !a.PathMTU(68, a.sndUna) || int(a.sndMSS) != MinPathMTU-40-tsOptLen {
			t.Fatalf("sack %t: MTU 68 gave MSS %d, want %d", sack, a.sndMSS, MinPathMTU-40-tsOptLen)
		}
		if a.PathMTU(1280, a.sndUna) {
			t.Fatalf("sack %t: a larger MTU raised the MSS", sack)
		}
	}
}
