package p4

import (
	"fmt"
	mbits "math/bits"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/capygen/capygen/spec"
)

// ident is a spec name as P4 spells it. Its methods derive every other
// identifier, so templates never build names themselves (bpf2go's
// templateName).
type ident string

func (n ident) String() string { return string(n) }

// Header is the P4 header type: tcpmig -> tcpmig_h.
func (n ident) Header() string { return string(n) + "_h" }

// Type is the P4 typedef: stage -> stage_t.
func (n ident) Type() string { return string(n) + "_t" }

// Const is the constant spelling: no_route -> NO_ROUTE.
func (n ident) Const() string { return strings.ToUpper(string(n)) }

// State is the parser state that extracts the header: parse_tcpmig.
func (n ident) State() string { return "parse_" + string(n) }

// level is one directory level; its methods name the level's P4 objects.
type level struct {
	N    int
	Hash *spec.CRC
}

func (l level) name(suffix string) string { return fmt.Sprintf("dir%d_%s", l.N, suffix) }

// KeyReg holds the level's client keys; TargetReg and OriginReg their
// target and origin; PortReg the insert's copy of each key's port.
func (l level) KeyReg() string    { return l.name("key") }
func (l level) TargetReg() string { return l.name("target") }
func (l level) OriginReg() string { return l.name("origin") }
func (l level) PortReg() string   { return l.name("port") }

// Index is the metadata field with the level's slot index.
func (l level) Index() string { return l.name("index") }

// Poly, HashUnit, HashAction and HashTable are the level's CRC polynomial,
// its Hash extern and the keyless table that runs it.
func (l level) Poly() string       { return l.name("poly") }
func (l level) HashUnit() string   { return l.name("crc") }
func (l level) HashAction() string { return l.name("hash") }
func (l level) HashTable() string  { return l.name("hash_tbl") }

// The level's RegisterActions.
func (l level) KeyLookup() string      { return l.name("key_lookup") }
func (l level) KeyInsert() string      { return l.name("key_insert") }
func (l level) KeyClear() string       { return l.name("key_clear") }
func (l level) TargetWrite() string    { return l.name("target_write") }
func (l level) TargetHandOver() string { return l.name("target_hand_over") }
func (l level) TargetRead() string     { return l.name("target_read") }
func (l level) OriginWrite() string    { return l.name("origin_write") }
func (l level) OriginRead() string     { return l.name("origin_read") }
func (l level) PortWrite() string      { return l.name("port_write") }
func (l level) PortRead() string       { return l.name("port_read") }

// PolyArgs is the CRCPolynomial constructor's argument list: coefficient,
// reversed, msb (false: the CRC's own bit order), extended (false), init,
// xor.
func (l level) PolyArgs() string {
	w := l.Hash.Width
	return fmt.Sprintf("%s, %t, false, false, %s, %s", lit(w, l.Hash.Poly), l.Hash.Reversed, lit(w, l.Hash.Init), lit(w, p4XorOut(l.Hash)))
}

// p4XorOut is the xor argument of CRCPolynomial for h. bf-p4c's hash
// (bf-utils' dynamic_hash, determine_crc_gfm) xors the register before it
// reflects a reversed CRC's result; the CRC catalogue, spec.CRC.Sum and the
// Go model xor after. A reversed CRC's xor_out therefore goes in reflected.
func p4XorOut(h *spec.CRC) uint64 {
	if !h.Reversed {
		return h.XorOut
	}
	return mbits.Reverse64(h.XorOut) >> (64 - h.Width)
}

// lit is a typed P4 literal: lit(16, 0x800) = 16w0x0800.
func lit(bits int, v uint64) string {
	digits := (bits + 3) / 4
	return fmt.Sprintf("%dw0x%0*X", bits, digits, v)
}

// dec is a typed decimal literal: dec(8, 6) = 8w6.
func dec(bits int, v uint64) string { return fmt.Sprintf("%dw%d", bits, v) }

// funcMap is the one FuncMap of the P4 templates: sprig's hermetic
// functions (no clock, environment or randomness, so output is
// deterministic) plus the naming helpers. id renders the @id annotation of
// a control-plane object of the ingress control by its local name, and
// fails the render for an object the ID table does not know.
func funcMap(ids *idTable) template.FuncMap {
	m := sprig.HermeticTxtFuncMap()
	// Templates hold ints of several types; the literal helpers take any.
	m["lit"] = func(bits int, v any) (string, error) {
		u, err := toUint64(v)
		return lit(bits, u), err
	}
	m["dec"] = func(bits int, v any) (string, error) {
		u, err := toUint64(v)
		return dec(bits, u), err
	}
	m["id"] = func(local string) (string, error) {
		return ids.annotation(ingress + "." + local)
	}
	return m
}

func toUint64(v any) (uint64, error) {
	switch n := v.(type) {
	case int:
		if n >= 0 {
			return uint64(n), nil
		}
	case int64:
		if n >= 0 {
			return uint64(n), nil
		}
	case uint64:
		return n, nil
	case uint32:
		return uint64(n), nil
	case uint16:
		return uint64(n), nil
	}
	return 0, fmt.Errorf("%v (%T) is not a non-negative integer", v, v)
}
