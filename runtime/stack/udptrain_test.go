package stack

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
)

// trainCutter is a link that cuts UDP trains as the kernel's UDP GSO does
// (__udp_gso_segment): each datagram gets the train's headers with its
// own lengths, the next IP ID and its own checksums.
type trainCutter struct {
	*link.Memory
	mu     sync.Mutex
	trains int
}

func (c *trainCutter) Queue(frame []byte) error { return c.Send(frame) }
func (c *trainCutter) Flush() error             { return nil }
func (c *trainCutter) MaxUDPSegments() int      { return 4 }

func (c *trainCutter) QueueUDPSegments(frame []byte, segSize int) error {
	c.mu.Lock()
	c.trains++
	c.mu.Unlock()
	hdr := EthernetHeaderLen + IPv4MinHeaderLen + udpHeaderLen
	ip := frame[EthernetHeaderLen:]
	id := binary.BigEndian.Uint16(ip[4:6])
	for off := hdr; off < len(frame); off += segSize {
		p := frame[off:min(off+segSize, len(frame))]
		d := append(append([]byte(nil), frame[:hdr]...), p...)
		dip := d[EthernetHeaderLen:]
		binary.BigEndian.PutUint16(dip[2:4], uint16(IPv4MinHeaderLen+udpHeaderLen+len(p)))
		binary.BigEndian.PutUint16(dip[4:6], id)
		id++
		dip[10], dip[11] = 0, 0
		binary.BigEndian.PutUint16(dip[10:12], checksum(dip[:IPv4MinHeaderLen], 0))
		u := dip[IPv4MinHeaderLen:]
		binary.BigEndian.PutUint16(u[4:6], uint16(udpHeaderLen+len(p)))
		u[6], u[7] = 0, 0
		src, dst := netip.AddrFrom4([4]byte(dip[12:16])), netip.AddrFrom4([4]byte(dip[16:20]))
		binary.BigEndian.PutUint16(u[6:8], checksum(u, pseudoSum(src, dst, protoUDP, len(u))))
		if err := c.Send(d); err != nil {
			return err
		}
	}
	return nil
}

// TestSendUDPSegments: the datagrams of SendUDPSegments arrive, in order
// and with valid checksums (the receiving stack drops others), whether the
// link cuts trains or the stack sends them one by one.
func TestSendUDPSegments(t *testing.T) {
	const segSize = 1000
	payloads := make([]byte, 9*segSize+77) // 10 datagrams: trains of 4, 4, then 2
	for i := range payloads {
		payloads[i] = byte(i*31 + i>>8)
	}
	for _, cut := range []bool{true, false} {
		name := "one-by-one"
		if cut {
			name = "trains"
		}
		t.Run(name, func(t *testing.T) {
			ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
			var ea link.Endpoint = ma
			cutter := &trainCutter{Memory: ma}
			if cut {
				ea = cutter
			}
			a, b := runPair(t, ea, mb, nil)
			got := make(chan []byte, 32)
			if err := b.HandleUDP(9000, func(_, _ netip.AddrPort, p []byte) { got <- append([]byte(nil), p...) }); err != nil {
				t.Fatal(err)
			}
			src, dst := netip.AddrPortFrom(addrA.Addr(), 9001), netip.AddrPortFrom(addrB.Addr(), 9000)
			// The first datagram resolves B's address; the trains follow.
			if err := a.SendUDP(src, dst, []byte("hello")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("the first datagram did not arrive")
			}
			var err error
			a.Burst(func() { err = a.SendUDPSegments(src, dst, payloads, segSize) })
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i*segSize < len(payloads); i++ {
				want := payloads[i*segSize : min((i+1)*segSize, len(payloads))]
				select {
				case p := <-got:
					if !bytes.Equal(p, want) {
						t.Fatalf("datagram %d: %d bytes %x..., want %d bytes %x...", i, len(p), p[:min(8, len(p))], len(want), want[:8])
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("datagram %d did not arrive", i)
				}
			}
			c := a.Counters()
			wantTrains := uint64(0)
			if cut {
				wantTrains = 3 // 4, 4 and 2 datagrams
			}
			if c.UDPTrains != wantTrains || c.UDPOut != 11 {
				t.Errorf("udp.trains %d udp.out %d, want %d and 11", c.UDPTrains, c.UDPOut, wantTrains)
			}
			if bc := b.Counters(); bc.UDPBadChecksum != 0 || bc.IPv4BadChecksum != 0 {
				t.Errorf("receiver counted bad checksums: udp %d ipv4 %d", bc.UDPBadChecksum, bc.IPv4BadChecksum)
			}
			if err := a.SendUDPSegments(src, dst, payloads, 1500); err == nil {
				t.Error("1500-byte segments over a 1500-byte MTU were accepted")
			}
		})
	}
}

// A train to a neighbour being resolved waits whole behind the ARP
// request: only ARPQueue of its datagrams waited, the rest were dropped
// (168 of 200), and the engine's resend timer had to run out.
func TestTrainWaitsWholeForARP(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	payloads := make([]byte, 200*1000)
	if err := s.SendUDPSegments(netip.AddrPortFrom(ipUs, 7071), netip.AddrPortFrom(ipPeer, 7071), payloads, 1000); err != nil {
		t.Fatal(err)
	}
	if n := s.Counters().Drops[DropARPQueueFull]; n != 0 {
		t.Errorf("%d datagrams dropped behind the ARP request, want none", n)
	}
	ep.take() // the ARP request
	s.Input(0, arpFrame(arpOpReply, [6]byte(macUs), macPeer, ipPeer, [6]byte(macUs), ipUs))
	if n := len(ep.take()); n != 200 {
		t.Errorf("%d datagrams went out once the peer answered, want 200", n)
	}
	if err := s.SendUDP(netip.AddrPortFrom(ipUs, 7071), netip.AddrPortFrom(netip.MustParseAddr("10.77.0.3"), 9), []byte("x")); err != nil {
		t.Fatal(err)
	}
	for range 40 { // a plain sender still queues ARPQueue at most
		s.SendUDP(netip.AddrPortFrom(ipUs, 7071), netip.AddrPortFrom(netip.MustParseAddr("10.77.0.3"), 9), []byte("x")) //nolint:errcheck // counted
	}
	if n := s.Counters().Drops[DropARPQueueFull]; n != 41-uint64(s.Config().ARPQueue) {
		t.Errorf("%d plain datagrams dropped over the ARP queue, want %d", n, 41-s.Config().ARPQueue)
	}
}
