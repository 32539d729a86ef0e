package stack

import (
	"encoding/binary"
	"net/netip"

	inet "github.com/capygen/capygen/runtime/internal/checksum"
)

// Wire constants. Only what the stack speaks: Ethernet II, ARP for IPv4
// over Ethernet, IPv4, ICMP echo, UDP and TCP.
const (
	EthernetHeaderLen = 14
	IPv4MinHeaderLen  = 20
	udpHeaderLen      = 8
	icmpHeaderLen     = 8
	arpLen            = 28

	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806

	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17

	arpOpRequest = 1
	arpOpReply   = 2

	icmpEchoReply       = 0
	icmpEchoRequest     = 8
	icmpDestUnreachable = 3
	icmpFragNeeded      = 4 // the code of icmpDestUnreachable for DF packets over a hop's MTU (RFC 1191)
	icmpPortUnreachable = 3 // its code
)

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ethernet is a view of an Ethernet II header followed by its payload.
type ethernet []byte

func (e ethernet) dst() (m [6]byte)  { copy(m[:], e[0:6]); return }
func (e ethernet) src() (m [6]byte)  { copy(m[:], e[6:12]); return }
func (e ethernet) etherType() uint16 { return binary.BigEndian.Uint16(e[12:14]) }
func (e ethernet) payload() []byte   { return e[EthernetHeaderLen:] }
func putEthernet(b []byte, dst, src [6]byte, typ uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], typ)
}

// arpPacket is a view of an ARP packet for IPv4 over Ethernet (RFC 826).
type arpPacket []byte

// valid reports whether the fixed fields say Ethernet/IPv4.
func (a arpPacket) valid() bool {
	return len(a) >= arpLen &&
		binary.BigEndian.Uint16(a[0:2]) == 1 && // hardware type Ethernet
		binary.BigEndian.Uint16(a[2:4]) == etherTypeIPv4 &&
		a[4] == 6 && a[5] == 4
}
func (a arpPacket) op() uint16             { return binary.BigEndian.Uint16(a[6:8]) }
func (a arpPacket) senderMAC() (m [6]byte) { copy(m[:], a[8:14]); return }
func (a arpPacket) senderIP() netip.Addr   { return netip.AddrFrom4([4]byte(a[14:18])) }
func (a arpPacket) targetIP() netip.Addr   { return netip.AddrFrom4([4]byte(a[24:28])) }
func putARP(b []byte, op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) {
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], etherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], op)
	copy(b[8:14], sha[:])
	s4, t4 := spa.As4(), tpa.As4()
	copy(b[14:18], s4[:])
	copy(b[18:24], tha[:])
	copy(b[24:28], t4[:])
}

// IPv4 is a view of an IPv4 header followed by its payload. Callers check
// len(b) >= IPv4MinHeaderLen (and HeaderLen) before using the getters.
type IPv4 []byte

// Version is the IP version nibble.
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// HeaderLen is the header length in bytes, options included.
func (h IPv4) HeaderLen() int { return int(h[0]&0xf) * 4 }

// TotalLen is the datagram length the header claims.
func (h IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(h[2:4])) }

// ID is the identification field.
func (h IPv4) ID() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// MoreFragments reports the MF flag.
func (h IPv4) MoreFragments() bool { return h[6]&0x20 != 0 }

// FragmentOffset is the fragment offset in 8-byte units.
func (h IPv4) FragmentOffset() uint16 { return binary.BigEndian.Uint16(h[6:8]) & 0x1fff }

// TTL is the time to live.
func (h IPv4) TTL() uint8 { return h[8] }

// Protocol is the payload's IP protocol number.
func (h IPv4) Protocol() uint8 { return h[9] }

// Checksum is the header checksum field.
func (h IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(h[10:12]) }

// Src is the source address.
func (h IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(h[12:16])) }

// Dst is the destination address.
func (h IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(h[16:20])) }

// ChecksumValid reports whether the header checksum verifies.
func (h IPv4) ChecksumValid() bool { return checksum(h[:h.HeaderLen()], 0) == 0 }

// Payload is the datagram's payload, trimmed to TotalLen.
func (h IPv4) Payload() []byte { return h[h.HeaderLen():h.TotalLen()] }

// IPv4Fields are the fields the stack sets on the IPv4 packets it sends.
type IPv4Fields struct {
	TotalLen uint16
	ID       uint16
	TTL      uint8
	Protocol uint8
	Src, Dst netip.Addr
}

// Encode writes a 20-byte header (no options, DF set because the stack
// never fragments) with its checksum into h.
func (h IPv4) Encode(f *IPv4Fields) {
	h[0] = 0x45
	h[1] = 0
	binary.BigEndian.PutUint16(h[2:4], f.TotalLen)
	binary.BigEndian.PutUint16(h[4:6], f.ID)
	binary.BigEndian.PutUint16(h[6:8], 0x4000)
	h[8] = f.TTL
	h[9] = f.Protocol
	h[10], h[11] = 0, 0
	s, d := f.Src.As4(), f.Dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	binary.BigEndian.PutUint16(h[10:12], checksum(h[:IPv4MinHeaderLen], 0))
}

// checksum is the Internet checksum (RFC 1071) of b added to the partial
// sum initial, folded and complemented.
func checksum(b []byte, initial uint32) uint16 {
	return ^inet.Fold(inet.Add(uint64(initial), b))
}

// pseudoSum is the unfolded sum of the IPv4 pseudo-header used by UDP and
// TCP checksums.
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	s, d := src.As4(), dst.As4()
	sum := uint32(binary.BigEndian.Uint16(s[0:2])) + uint32(binary.BigEndian.Uint16(s[2:4])) +
		uint32(binary.BigEndian.Uint16(d[0:2])) + uint32(binary.BigEndian.Uint16(d[2:4]))
	return sum + uint32(proto) + uint32(length)
}
