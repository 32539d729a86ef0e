package app

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// ErrState is wrapped by every refusal of an application state that came
// with a migrated connection: wrong magic, a version this build does not
// read, or a malformed field. The connection cannot be served and is reset.
var ErrState = errors.New("app: application state refused")

// stateVersion is the version byte of every state this package writes;
// a reader refuses any other, so servers of mixed builds fail clearly.
const stateVersion = 1

// enc appends a state's fields.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)      { e.b = append(e.b, v) }
func (e *enc) uvar(v uint64)   { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) bytes(p []byte)  { e.uvar(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) str(s string)    { e.uvar(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) header(m string) { e.versioned(m, stateVersion) }

// versioned starts a state whose version is not stateVersion.
func (e *enc) versioned(m string, v uint8) { e.b = append(e.b, m...); e.u8(v) }
func (e *enc) flag(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// dec reads a state's fields. The first failure sticks (later reads return
// zero values), so a decoder checks err once at the end, and every failure
// names the state, the field and what was wrong.
type dec struct {
	what string // the state's name, for errors
	b    []byte
	off  int
	err  error
}

func (d *dec) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s state at byte %d: %s", ErrState, d.what, d.off, fmt.Sprintf(format, args...))
	}
}

// header checks the magic and the version.
func (d *dec) header(magic string) { d.versions(magic, stateVersion, stateVersion) }

// versions checks the magic and that the version is oldest..newest, and
// returns the version.
func (d *dec) versions(magic string, oldest, newest uint8) uint8 {
	if len(d.b) < len(magic)+1 {
		d.fail("%d bytes, shorter than the %d-byte header (magic %q and version)", len(d.b), len(magic)+1, magic)
		return 0
	}
	if string(d.b[:len(magic)]) != magic {
		d.fail("magic %q, want %q (not this application's state)", d.b[:len(magic)], magic)
		return 0
	}
	v := d.b[len(magic)]
	switch {
	case v >= oldest && v <= newest:
	case oldest == newest:
		d.fail("version %d, this build reads version %d (run the same build on every server)", v, newest)
		return 0
	default:
		d.fail("version %d, this build reads versions %d to %d (run the same build on every server)", v, oldest, newest)
		return 0
	}
	d.off = len(magic) + 1
	return v
}

func (d *dec) u8(field string) uint8 {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("%s: truncated", field)
		return 0
	}
	v := d.b[d.off]
	d.off++
	return v
}

func (d *dec) flag(field string) bool {
	switch v := d.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: flag byte %d, want 0 or 1", field, v)
		return false
	}
}

func (d *dec) uvar(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("%s: truncated or overlong varint", field)
		return 0
	}
	if n > 1 && d.b[d.off+n-1] == 0 {
		// A zero last byte adds nothing: refuse it, so that a state has
		// one encoding.
		d.fail("%s: varint padded with zero bytes", field)
		return 0
	}
	d.off += n
	return v
}

// int63 reads a varint that must fit an int64 and not exceed max.
func (d *dec) int63(field string, max int64) int64 {
	v := d.uvar(field)
	if d.err == nil && v > uint64(max) {
		d.fail("%s: %d exceeds %d", field, v, max)
		return 0
	}
	return int64(v)
}

// bytes reads a length-prefixed field of at most max bytes; the result
// aliases the input.
func (d *dec) bytes(field string, max int) []byte {
	n := d.uvar(field + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("%s: %d bytes, at most %d", field, n, max)
		return nil
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("%s: %d bytes, only %d left", field, n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p
}

// end refuses trailing bytes and returns the sticky error.
func (d *dec) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.off)
	}
	return d.err
}

// appendHash appends a running SHA-256's internal state.
func appendHash(e *enc, h hash.Hash) error {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return errors.New("app: this sha256 implementation cannot save its state (no MarshalBinary)")
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("app: saving the sha256 state: %w", err)
	}
	e.bytes(b)
	return nil
}

// maxHashState bounds a saved SHA-256 state (108 bytes today).
const maxHashState = 256

// hash reads a running SHA-256 saved by appendHash, which must have
// hashed n bytes: the task's own count, which it would otherwise belie.
func (d *dec) hash(field string, n int64) hash.Hash {
	b := d.bytes(field, maxHashState)
	if d.err != nil {
		return nil
	}
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		d.fail("%s: this sha256 implementation cannot load a state", field)
		return nil
	}
	if err := u.UnmarshalBinary(b); err != nil {
		d.fail("%s: %v", field, err)
		return nil
	}
	// crypto/sha256's state, which loaded, ends in the big-endian count
	// of bytes hashed.
	if len(b) < 8 {
		d.fail("%s: %d bytes, too short to hold a count", field, len(b))
		return nil
	}
	if c := binary.BigEndian.Uint64(b[len(b)-8:]); c != uint64(n) {
		d.fail("%s: the hash covers %d bytes, the task says %d", field, c, n)
		return nil
	}
	return h
}
