package kernel

import (
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/repair"
	"github.com/capygen/capygen/runtime/tcp"
)

// TestKeepAliveProbe: the probe that follows an abort is an ACK with
// SND.UNA-1, one octet and the client's RCV.NXT, from the address the client knows,
// with valid checksums, and a TSval ahead of any the restored socket could
// have sent by then (else Linux drops it, unanswered, by PAWS).
func TestKeepAliveProbe(t *testing.T) {
	d := &repair.Dump{
		Local: netip.MustParseAddrPort("10.77.0.11:80"), Remote: netip.MustParseAddrPort("10.77.0.1:40000"),
		SendSeq: 5000, SendQueue: make([]byte, 1000), RecvSeq: 777,
		Options: repair.OptTimestamps | repair.OptWindowScale, RcvWscale: 7, Window: repair.Window{RcvWnd: 65536 << 2},
		Timestamp: 1_000_000,
	}
	for _, since := range []time.Duration{0, 600 * time.Millisecond} {
		pr := probeOf(d, time.Time{})
		pkt, err := pr.packet(since)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 6 {
			t.Fatalf("not an IPv4 TCP packet: % x", pkt)
		}
		src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		seg, err := tcp.ParseSegment(pkt[20:], src, dst)
		if err != nil {
			t.Fatalf("probe %v after the dump: %v", since, err)
		}
		if src != d.Local.Addr() || dst != d.Remote.Addr() || seg.SrcPort != 80 || seg.DstPort != 40000 {
			t.Errorf("probe %v:%d > %v:%d, want %v > %v", src, seg.SrcPort, dst, seg.DstPort, d.Local, d.Remote)
		}
		if seg.Flags != tcp.FlagACK || seg.Seq != 3999 || seg.Ack != 777 || len(seg.Payload) != 1 || seg.Window != 2048 {
			t.Errorf("probe %+v, want an ACK with one octet, seq 3999 (SND.UNA-1), ack 777, window 2048", seg)
		}
		restored := d.Timestamp + repair.TimestampSlack + uint32(since/time.Millisecond)
		if !seg.HasTS || int32(seg.TSVal-restored) < 1 || int32(seg.TSVal-restored) > 2 {
			t.Errorf("probe %v after the dump: TSval %d (has %v), want just past the restored clock's %d", since, seg.TSVal, seg.HasTS, restored)
		}
	}
	d.Options = 0
	pr := probeOf(d, time.Time{})
	pkt, _ := pr.packet(0)
	if seg, err := tcp.ParseSegment(pkt[20:], d.Local.Addr(), d.Remote.Addr()); err != nil || seg.HasTS {
		t.Errorf("without timestamps: %+v, %v; want no TS option", seg, err)
	}
	d.Remote = netip.MustParseAddrPort("[::1]:80")
	pr = probeOf(d, time.Time{})
	if _, err := pr.packet(0); err == nil {
		t.Error("an IPv6 peer got a probe, want an error")
	}
}
