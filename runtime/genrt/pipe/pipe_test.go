package pipe

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/capygen/capygen/runtime/genrt/wire"
)

// udpFrame is an Ethernet + IPv4 + UDP frame with valid checksums and n
// payload bytes.
func udpFrame(n int) []byte {
	f := make([]byte, L4Off+UDPLen+n)
	binary.BigEndian.PutUint16(f[EthType:], TypeIPv4)
	f[IPOff] = 0x45
	binary.BigEndian.PutUint16(f[IPOff+2:], uint16(20+UDPLen+n))
	f[IPOff+8], f[IPOff+9] = 64, ProtoUDP
	copy(f[IPSrc:], []byte{10, 0, 0, 1})
	copy(f[IPDst:], []byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(f[IPCsum:], ipSum(f))
	binary.BigEndian.PutUint16(f[L4Off:], 40000)
	binary.BigEndian.PutUint16(f[UDPDst:], 7071)
	binary.BigEndian.PutUint16(f[UDPSize:], uint16(UDPLen+n))
	for i := 0; i < n; i++ {
		f[L4Off+UDPLen+i] = byte(i*7 + 3)
	}
	binary.BigEndian.PutUint16(f[UDPCsum:], udpSum(f))
	return f
}

func ipSum(f []byte) uint16 {
	h := append([]byte(nil), f[IPOff:L4Off]...)
	h[10], h[11] = 0, 0
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func udpSum(f []byte) uint16 {
	return wire.UDPChecksum([4]byte(f[IPSrc:IPSrc+4]), [4]byte(f[IPDst:IPDst+4]), f[L4Off:])
}

func checkSums(t *testing.T, what string, f []byte) {
	t.Helper()
	if got, want := binary.BigEndian.Uint16(f[IPCsum:]), ipSum(f); got != want {
		t.Errorf("%s: IPv4 checksum %#04x, summing again gives %#04x", what, got, want)
	}
	if got, want := binary.BigEndian.Uint16(f[UDPCsum:]), udpSum(f); got != want {
		t.Errorf("%s: UDP checksum %#04x, summing again gives %#04x", what, got, want)
	}
}

func TestSetAddrKeepsChecksumsValid(t *testing.T) {
	f := udpFrame(20)
	SetAddr(f, IPDst, 0xC0A80A0B, UDPCsum, true)
	if got := binary.BigEndian.Uint32(f[IPDst:]); got != 0xC0A80A0B {
		t.Fatalf("destination %#x, want 0xc0a80a0b", got)
	}
	checkSums(t, "SetAddr", f)
	// A datagram sent without a checksum keeps none.
	g := udpFrame(20)
	binary.BigEndian.PutUint16(g[UDPCsum:], 0)
	SetAddr(g, IPSrc, 1, UDPCsum, true)
	if c := binary.BigEndian.Uint16(g[UDPCsum:]); c != 0 {
		t.Errorf("SetAddr gave a checksum-less datagram checksum %#04x", c)
	}
}

// TestSetAddrRecomputesTheIPv4Checksum: a header whose checksum was wrong
// on the way in leaves with a right one, as the P4 deparser's Checksum
// extern computes it; an incremental update kept it wrong, and the model
// and the switch disagreed on such packets.
func TestSetAddrRecomputesTheIPv4Checksum(t *testing.T) {
	f := udpFrame(20)
	binary.BigEndian.PutUint16(f[IPCsum:], 0)
	SetAddr(f, IPDst, 0xC0A80A0B, UDPCsum, true)
	if got, want := binary.BigEndian.Uint16(f[IPCsum:]), ipSum(f); got != want {
		t.Errorf("IPv4 checksum %#04x after a rewrite of a header that came with 0, want %#04x", got, want)
	}
}

// FuzzSetChecked checks the incremental UDP checksum against summing the
// datagram again, for fields at every bit position and width.
func FuzzSetChecked(f *testing.F) {
	f.Add(20, 3, 13, uint64(0xabc))
	f.Add(7, 0, 32, uint64(0xffffffff))
	f.Fuzz(func(t *testing.T, at, bit, n int, v uint64) {
		fr := udpFrame(40)
		base := L4Off + UDPLen
		if at < 0 || at > 30 || bit < 0 || bit > 7 || n < 1 || n > 56 || base+at+(bit+n+7)/8 > len(fr) {
			return
		}
		SetChecked(fr, base+at, bit, n, v)
		if got := wire.Field(fr[base+at:], bit, n); got != v&(1<<uint(n)-1) {
			t.Fatalf("field reads %#x after writing %#x", got, v)
		}
		checkSums(t, "SetChecked", fr)
	})
}

func TestSwapReply(t *testing.T) {
	f := udpFrame(4)
	copy(f[0:6], []byte{1, 1, 1, 1, 1, 1})
	copy(f[6:12], []byte{2, 2, 2, 2, 2, 2})
	SwapReply(f)
	if f[0] != 2 || f[6] != 1 || f[IPSrc+3] != 2 || f[IPDst+3] != 1 || binary.BigEndian.Uint16(f[L4Off:]) != 7071 || binary.BigEndian.Uint16(f[UDPDst:]) != 40000 {
		t.Errorf("SwapReply did not swap MACs, addresses and ports: % x", f[:L4Off+4])
	}
	checkSums(t, "SwapReply", f)
}

func TestMalformed(t *testing.T) {
	full := udpFrame(0)
	for _, c := range []struct {
		name string
		f    []byte
		want bool
	}{
		{"short Ethernet", full[:EthLen-1], true},
		{"IPv4 cut", full[:L4Off-1], true},
		{"UDP cut", full[:L4Off+UDPLen-1], true},
		{"whole UDP", full, false},
		{"not IPv4", append([]byte(nil), make([]byte, EthLen)...), false},
	} {
		if got := Malformed(c.f); got != c.want {
			t.Errorf("%s: Malformed = %v, want %v", c.name, got, c.want)
		}
	}
	opts := udpFrame(0)
	opts[IPOff] = 0x46
	if Parsed(opts) || Malformed(opts[:L4Off+2]) {
		t.Errorf("an IPv4 header with options is not parsed past, so a short L4 is not malformed")
	}
}

func TestPorts(t *testing.T) {
	p := NewPorts[uint8](4, 2)
	if err := p.Set(4, 1); !errors.Is(err, ErrOutOfRange) || err.Error() != "port 4: out of range (ports are 0..3 on this target)" {
		t.Errorf("Set(4) = %v", err)
	}
	if p.Set(0, 1) != nil || p.Set(1, 2) != nil || p.Set(1, 1) != nil {
		t.Fatal("two ports, one changed, must fit a table of 2")
	}
	if err := p.Set(2, 1); !errors.Is(err, ErrTableFull) || err.Error() != "port 2: table full: port_role holds 2 entries; raise tables.ports in the spec" {
		t.Errorf("third port = %v", err)
	}
	if p.Role(1) != 1 || p.Role(3) != 0 || p.Role(-1) != 0 || p.Role(99) != 0 {
		t.Errorf("Role lookups wrong")
	}
	if err := p.Delete(3); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(3) = %v, want ErrNotFound", err)
	}
	if p.Delete(0) != nil || p.Set(2, 1) != nil {
		t.Errorf("a deleted entry frees its room")
	}
}

func TestTable(t *testing.T) {
	tb := NewTable[uint32, int]("ipv4_host", "tables.hosts", 1)
	if tb.Set(1, 10) != nil || tb.Set(1, 11) != nil {
		t.Fatal("insert and modify of one key must fit a table of 1")
	}
	if err := tb.Set(2, 20); !errors.Is(err, ErrTableFull) || err.Error() != "table full: ipv4_host holds 1 entries; raise tables.hosts in the spec" {
		t.Errorf("Set(2) = %v", err)
	}
	if v, ok := tb.Lookup(1); !ok || v != 11 || tb.Len() != 1 {
		t.Errorf("Lookup(1) = %d, %v", v, ok)
	}
	if !errors.Is(tb.Delete(2), ErrNotFound) || tb.Delete(1) != nil || tb.Len() != 0 {
		t.Errorf("Delete wrong")
	}
}

func TestRegisterActions(t *testing.T) {
	var c KeyCell
	want := Key(0x0a000001, 0) // port 0 is a legal key
	if seen := KeyInsert(&c, want); seen != 0 || c != want {
		t.Fatalf("an empty slot must take the key: seen %d, cell %+v", seen, c)
	}
	if seen := KeyInsert(&c, want); seen != want.IP || c != want {
		t.Errorf("the same key again: seen %#x, want its IP word %#x and the cell untouched", seen, want.IP)
	}
	if seen := KeyInsert(&c, Key(0x0a000001, 7)); seen != want.IP || c != want {
		t.Errorf("the same IP, another port: seen %#x and cell %+v, want the IP word and the cell untouched", seen, c)
	}
	if !PortHolds(0, 0) || PortHolds(0, 7) {
		t.Errorf("PortHolds must compare the port cell with the client's port")
	}
	if seen := KeyInsert(&c, Key(0x0a000002, 0)); seen != want.IP || c != want {
		t.Errorf("another key: seen %#x and cell %+v, want the other IP and the cell untouched", seen, c)
	}
	if KeyClear(&c, Key(0x0a000001, 1)) || !KeyClear(&c, want) || c != (KeyCell{}) {
		t.Errorf("KeyClear must clear only its own key")
	}
	a := AddrCell{Origin: 1, Target: 2}
	if AddrHandOver(&a, AddrCell{Origin: 9, Target: 3}, 4) || a.Target != 2 {
		t.Errorf("an ACK from a third server to a fourth must not take the lease")
	}
	if !AddrHandOver(&a, AddrCell{Origin: 9, Target: 3}, 2) || a != (AddrCell{Origin: 1, Target: 3}) {
		t.Errorf("the holder hands over: got %+v, want origin kept and target 3", a)
	}
}

func TestEntryCellsRoundTrip(t *testing.T) {
	e := Entry{Valid: true, ClientIP: [4]byte{10, 0, 0, 9}, ClientPort: 80, Origin: [4]byte{10, 1, 0, 1}, Target: [4]byte{10, 1, 0, 2}}
	k, a, port := e.Cells()
	if got := EntryOf(k, a); got != e || port != e.ClientPort {
		t.Errorf("EntryOf(Cells()) = %+v with port cell %d, want %+v and %d", got, port, e, e.ClientPort)
	}
	if k, a, port := (Entry{ClientIP: [4]byte{1}, ClientPort: 5}).Cells(); k != (KeyCell{}) || a != (AddrCell{}) || port != 0 || EntryOf(k, a) != (Entry{}) {
		t.Errorf("an Entry that is not Valid is the empty slot")
	}
}
