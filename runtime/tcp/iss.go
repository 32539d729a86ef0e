package tcp

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// NewISS returns an initial sequence number per RFC 6528: a clock that
// ticks every 4 µs plus a keyed hash of the connection's addresses, so
// sequence numbers of one address pair keep increasing across
// incarnations while others cannot guess them. The caller supplies the
// secret and the time, keeping the package deterministic.
func NewISS(secret [16]byte, id ID, now Time) uint32 {
	var b [16 + 2*(16+2)]byte
	copy(b[:16], secret[:])
	l, r := id.Local.Addr().As16(), id.Remote.Addr().As16()
	copy(b[16:], l[:])
	binary.BigEndian.PutUint16(b[32:], id.Local.Port())
	copy(b[34:], r[:])
	binary.BigEndian.PutUint16(b[50:], id.Remote.Port())
	sum := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(sum[:]) + uint32(now/(4*time.Microsecond))
}
