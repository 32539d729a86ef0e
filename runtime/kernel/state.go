package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/capygen/capygen/runtime/repair"
)

// The state a kernel origin sends: magic, the dump's length, the dump
// (repair's encoding, which carries its own CRC-32C), then the
// application's state to the end.
const stateMagic = "CKR1"

// ErrState matches every refused state.
var ErrState = errors.New("kernel: bad connection state")

func appendState(b []byte, d *repair.Dump, app []byte) ([]byte, error) {
	b = append(b, stateMagic...)
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b, err := d.AppendBinary(b)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return append(b, app...), nil
}

// decodeState splits a state into its dump and application state. The
// application state aliases b.
func decodeState(b []byte) (*repair.Dump, []byte, error) {
	if len(b) < len(stateMagic)+4 {
		return nil, nil, fmt.Errorf("%w: %d bytes, shorter than its %d-byte header", ErrState, len(b), len(stateMagic)+4)
	}
	if string(b[:4]) != stateMagic {
		return nil, nil, fmt.Errorf("%w: magic %q, want %q (a userspace stack's snapshot? kernel and bypass servers cannot exchange connections)", ErrState, b[:4], stateMagic)
	}
	n := binary.BigEndian.Uint32(b[4:])
	rest := b[8:]
	if uint64(n) > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("%w: dump length %d, but only %d bytes follow", ErrState, n, len(rest))
	}
	d := new(repair.Dump)
	if err := d.UnmarshalBinary(rest[:n]); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	return d, rest[n:], nil
}
