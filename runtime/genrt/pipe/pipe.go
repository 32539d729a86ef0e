// Package pipe is the part of capygen's generated switch model
// (generated/pipeline) that does not vary with the spec: the frame layout
// the switch parses, the in-place rewrites it makes with incremental
// checksums, and its exact-match control-plane tables with their sizes and
// errors. The generated package keeps what the spec decides: the
// directory's levels and hashes, the TCPMig messages the switch acts on
// (through the generated codec's names), the workload register and the
// table sizes.
//
// Everything on the per-frame path is small, inlinable where it counts,
// and allocates nothing.
package pipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"

	"github.com/capygen/capygen/runtime/genrt/wire"
	"github.com/capygen/capygen/runtime/internal/checksum"
)

// Frame layout: Ethernet, then an IPv4 header without options (the only
// kind the switch parses past), then TCP or UDP. Offsets are from the
// start of the frame.
const (
	EthLen   = 14
	EthType  = 12 // EtherType field
	TypeIPv4 = 0x0800
	IPOff    = EthLen
	IPCsum   = IPOff + 10
	IPSrc    = IPOff + 12
	IPDst    = IPOff + 16
	L4Off    = IPOff + 20
	ProtoTCP = 6
	ProtoUDP = 17
	TCPLen   = 20
	TCPFlags = L4Off + 13
	TCPCsum  = L4Off + 16
	TCPFIN   = 0x01
	TCPRST   = 0x04
	UDPLen   = 8
	UDPDst   = L4Off + 2 // destination port
	UDPSize  = L4Off + 4 // length field
	UDPCsum  = L4Off + 6
)

// Errors of the control plane; the generated calls wrap them with the
// input they refused.
var (
	// ErrTableFull: the table holds its spec size already.
	ErrTableFull = errors.New("table full")
	// ErrNotFound: a delete names an entry the table does not hold.
	ErrNotFound = errors.New("no such entry")
	// ErrOutOfRange: a port, role, level, index or load is outside its range.
	ErrOutOfRange = errors.New("out of range")
)

// IsIPv4 reports whether f's EtherType is IPv4; f holds an Ethernet header.
func IsIPv4(f []byte) bool { return binary.BigEndian.Uint16(f[EthType:]) == TypeIPv4 }

// Parsed reports whether the switch parses past f's IPv4 header: no
// options and not a fragment. Other IPv4 frames are only routed.
func Parsed(f []byte) bool {
	return f[IPOff]&0x0f == 5 && binary.BigEndian.Uint16(f[IPOff+6:])&0x3fff == 0
}

// Malformed says whether f ends inside a header the switch's parser
// extracts: Ethernet; IPv4 (20 bytes); TCP (20) or UDP (8) after an IPv4
// header it parses past. The P4 parser stops there with
// PARSER_ERROR_PARTIAL_HDR.
func Malformed(f []byte) bool {
	if len(f) < EthLen {
		return true
	}
	if !IsIPv4(f) {
		return false
	}
	if len(f) < L4Off {
		return true
	}
	if !Parsed(f) {
		return false
	}
	switch f[IPOff+9] {
	case ProtoTCP:
		return len(f) < L4Off+TCPLen
	case ProtoUDP:
		return len(f) < L4Off+UDPLen
	}
	return false
}

// SwapReply turns a datagram around: Ethernet, IPv4 and UDP sources and
// destinations swap. No checksum changes: each sum covers both halves.
func SwapReply(f []byte) {
	for i := 0; i < 6; i++ {
		f[i], f[6+i] = f[6+i], f[i]
	}
	for i := 0; i < 4; i++ {
		f[IPSrc+i], f[IPDst+i] = f[IPDst+i], f[IPSrc+i]
	}
	for i := 0; i < 2; i++ {
		f[L4Off+i], f[L4Off+2+i] = f[L4Off+2+i], f[L4Off+i]
	}
}

// SetAddr rewrites the IPv4 address at offset at, computes the IPv4
// header checksum afresh over the 20-byte header (as the P4 deparser's
// Checksum extern does: an incremental update would keep a wrong sum
// wrong, and the two would differ), and updates the TCP or UDP checksum at
// l4, whose pseudo header holds the address, incrementally (RFC 1624). A
// UDP datagram sent without a checksum (zero) keeps none.
func SetAddr(f []byte, at int, v uint32, l4 int, udp bool) {
	old := binary.BigEndian.Uint32(f[at:])
	binary.BigEndian.PutUint32(f[at:], v)
	binary.BigEndian.PutUint16(f[IPCsum:], 0)
	binary.BigEndian.PutUint16(f[IPCsum:], ^checksum.Fold(checksum.Add(0, f[IPOff:L4Off])))
	c := binary.BigEndian.Uint16(f[l4:])
	if udp && c == 0 {
		return
	}
	c = wire.Adjust(c, old, v)
	if udp && c == 0 {
		// RFC 768: a computed zero is sent as all ones.
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[l4:], c)
}

// SetChecked writes v into the n bits at bit offset bit of the region of f
// starting at base (inside a UDP datagram of a frame laid out as above) and
// updates the UDP checksum for every 16-bit word that changed. Words are
// aligned to the UDP header. The field spans at most 8 bytes.
func SetChecked(f []byte, base, bit, n int, v uint64) {
	lo := (base+bit/8-L4Off)&^1 + L4Off
	hi := base + (bit+n+7)/8
	var old [10]byte
	copy(old[:], f[lo:hi])
	wire.SetField(f[base:], bit, n, v)
	sum := binary.BigEndian.Uint16(f[UDPCsum:])
	if sum == 0 {
		return
	}
	for i := lo; i < hi; i += 2 {
		was, now := uint32(old[i-lo])<<8, uint32(f[i])<<8
		// A field ending on an odd byte leaves the word's second byte as it was.
		if i+1 < hi {
			was |= uint32(old[i+1-lo])
			now |= uint32(f[i+1])
		}
		sum = wire.Adjust(sum, was, now)
	}
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(f[UDPCsum:], sum)
}

// CheckPort refuses a port id at or over max, the target's port count.
func CheckPort(port, max int) error {
	if port < 0 || port >= max {
		return fmt.Errorf("port %d: %w (ports are 0..%d on this target)", port, ErrOutOfRange, max-1)
	}
	return nil
}

// Ports is the port_role table: a role per port id below the target's
// port count, at most size of them set. The zero role is no role.
type Ports[R ~uint8] struct {
	roles   []R
	n, size int
}

// NewPorts returns an empty port_role of size entries over max port ids.
func NewPorts[R ~uint8](max, size int) Ports[R] {
	return Ports[R]{roles: make([]R, max), size: size}
}

// Role returns port's role, the zero role when it has none or is out of
// range.
func (t *Ports[R]) Role(port int) R {
	if uint(port) >= uint(len(t.roles)) {
		return 0
	}
	return t.roles[port]
}

// Set gives port a non-zero role.
func (t *Ports[R]) Set(port int, r R) error {
	if err := CheckPort(port, len(t.roles)); err != nil {
		return err
	}
	if t.roles[port] == 0 {
		if t.n >= t.size {
			return fmt.Errorf("port %d: %w: port_role holds %d entries; raise tables.ports in the spec", port, ErrTableFull, t.size)
		}
		t.n++
	}
	t.roles[port] = r
	return nil
}

// Copy returns the ports that have a role, and their roles.
func (t *Ports[R]) Copy() map[int]R {
	m := make(map[int]R, t.n)
	for port, r := range t.roles {
		if r != 0 {
			m[port] = r
		}
	}
	return m
}

// Delete removes port's role.
func (t *Ports[R]) Delete(port int) error {
	if err := CheckPort(port, len(t.roles)); err != nil {
		return err
	}
	if t.roles[port] == 0 {
		return fmt.Errorf("port %d: %w", port, ErrNotFound)
	}
	t.roles[port] = 0
	t.n--
	return nil
}

// Table is an exact-match table of at most Size entries, such as
// ipv4_host or l2_forward.
type Table[K comparable, V any] struct {
	name, sizeKey string
	size          int
	m             map[K]V
}

// NewTable returns an empty table; name is the P4 table's, sizeKey the
// spec key that sizes it (for the error that asks to raise it).
func NewTable[K comparable, V any](name, sizeKey string, size int) Table[K, V] {
	return Table[K, V]{name: name, sizeKey: sizeKey, size: size, m: make(map[K]V)}
}

// Lookup returns k's entry.
func (t *Table[K, V]) Lookup(k K) (V, bool) {
	v, ok := t.m[k]
	return v, ok
}

// Set inserts or modifies k's entry; a new key in a full table is refused.
func (t *Table[K, V]) Set(k K, v V) error {
	if _, ok := t.m[k]; !ok && len(t.m) >= t.size {
		return fmt.Errorf("%w: %s holds %d entries; raise %s in the spec", ErrTableFull, t.name, t.size, t.sizeKey)
	}
	t.m[k] = v
	return nil
}

// Delete removes k's entry.
func (t *Table[K, V]) Delete(k K) error {
	if _, ok := t.m[k]; !ok {
		return ErrNotFound
	}
	delete(t.m, k)
	return nil
}

// Len is the number of entries.
func (t *Table[K, V]) Len() int { return len(t.m) }

// Copy returns the entries, as a control plane reads the whole table.
func (t *Table[K, V]) Copy() map[K]V { return maps.Clone(t.m) }

// KeyValid marks a used directory key cell: port 0 is a legal key, so the
// high half of the port word holds 1 (gen/SWITCH.md).
const KeyValid = 1 << 16

// KeyCell is a dir<i>_key register cell: the client IP, and the client
// port with KeyValid set. An empty cell is all zero.
type KeyCell struct{ IP, Port uint32 }

// Key is the cell that holds the client key (ip, port).
func Key(ip uint32, port uint16) KeyCell { return KeyCell{ip, uint32(port) | KeyValid} }

// AddrCell is a slot's dir<i>_origin and dir<i>_target cells: the server the client
// addresses and the one that serves it now.
type AddrCell struct{ Origin, Target uint32 }

// KeyInsert is the dir<i>_key_insert RegisterAction (one comparison): it
// returns the slot's IP word as it was, and an empty slot (IP 0: no client
// has that address) takes the key. The caller decides: seen == 0, a fresh
// entry; seen == want.IP, the slot holds the client's IP and dir<i>_port
// says whether it holds its port too (PortHolds); else another client's,
// left alone. One output source in every branch: a Tofino-1 stateful ALU
// has one output word, and bf-p4c refuses a RegisterAction that returns
// the port word in one branch and constants in others.
func KeyInsert(c *KeyCell, want KeyCell) (seen uint32) {
	seen = c.IP
	if c.IP == 0 {
		*c = want
	}
	return seen
}

// PortHolds is the insert's test on dir<i>_port (the port_read
// RegisterAction and the gateway after it): the slot whose IP word is the
// client's holds the client's key when its port cell is the client's port.
// The port cell is written with the key by every fresh insert (port_write)
// and is not cleared with it: it means something only while the key cell
// holds an IP.
func PortHolds(cell, port uint16) bool { return cell == port }

// KeyClear is the dir<i>_key_clear RegisterAction (two comparisons): it
// empties the slot when it holds the key, and says whether it did.
func KeyClear(c *KeyCell, want KeyCell) bool {
	if c.IP == want.IP && c.Port == want.Port {
		*c = KeyCell{}
		return true
	}
	return false
}

// AddrHandOver is the dir<i>_target_hand_over RegisterAction (two
// comparisons): the entry is a lease, so an ACK may rewrite the key's
// existing entry only when its stored target is the ACK's sender (the same
// target again: a repeat) or the ACK's destination (the holder that sent
// the PREPARE hands the connection over). It says whether it wrote. It
// keeps the stored origin (a connection's origin never changes; it has a
// register of its own), so the stateful ALU reads two packet values, IPv4
// src and dst, as a Tofino-1 SALU must.
func AddrHandOver(c *AddrCell, a AddrCell, dst uint32) bool {
	if c.Target == a.Target || c.Target == dst {
		c.Target = a.Target
		return true
	}
	return false
}

// Entry is one directory slot as the control plane reads and writes it.
type Entry struct {
	// Valid is false for an empty slot.
	Valid      bool
	ClientIP   [4]byte
	ClientPort uint16
	// Origin is the server the client addresses; Target serves it now.
	Origin [4]byte
	Target [4]byte
}

// EntryOf converts a directory slot's register cells.
func EntryOf(k KeyCell, a AddrCell) Entry {
	if k == (KeyCell{}) {
		return Entry{}
	}
	var e Entry
	e.Valid = k.Port&KeyValid != 0
	binary.BigEndian.PutUint32(e.ClientIP[:], k.IP)
	e.ClientPort = uint16(k.Port)
	binary.BigEndian.PutUint32(e.Origin[:], a.Origin)
	binary.BigEndian.PutUint32(e.Target[:], a.Target)
	return e
}

// Cells is the register cells of e, as P4Runtime writes a register cell:
// as is, without checking that the key hashes to the slot. An Entry that
// is not Valid is the empty slot. The port cell is dir<i>_port's, the
// insert's copy of the key's port.
func (e Entry) Cells() (KeyCell, AddrCell, uint16) {
	if !e.Valid {
		return KeyCell{}, AddrCell{}, 0
	}
	return Key(binary.BigEndian.Uint32(e.ClientIP[:]), e.ClientPort),
		AddrCell{binary.BigEndian.Uint32(e.Origin[:]), binary.BigEndian.Uint32(e.Target[:])}, e.ClientPort
}
