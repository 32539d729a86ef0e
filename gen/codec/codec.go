// Package codec emits the Go wire codec of a spec's TCPMig protocol
// (generated/<header name>): a []byte view of the header with typed
// accessors, a struct form per message with allocation-free Encode and
// Decode, UDP framing with the spec's checksum, fragmentation and bounded
// reassembly of fragmented messages, and a gopacket layer bound to the
// spec's UDP port. Nothing about TCPMig is hard-coded here: every name,
// offset and limit comes from the spec.
package codec

import (
	"fmt"
	"sort"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// Import paths used by the generated code.
const (
	pkgBinary   = "encoding/binary"
	pkgErrors   = "errors"
	pkgFmt      = "fmt"
	pkgNetip    = "net/netip"
	pkgStrconv  = "strconv"
	pkgTime     = "time"
	pkgBytes    = "bytes"
	pkgGopacket = "github.com/google/gopacket"
	pkgLayers   = "github.com/google/gopacket/layers"
	pkgTesting  = "testing"
	pkgReflect  = "reflect"
	pkgRand     = "math/rand/v2"
)

// UDPHeaderLen is the UDP header size the framing helpers write.
const udpHeaderLen = 8

// Generate emits the codec package for s under <header name>/.
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	g, err := newGen(s, opt)
	if err != nil {
		return nil, err
	}
	files := genfile.Files{}
	emit := []struct {
		name string
		fn   func(f *jen.File)
		test bool
		when bool
	}{
		{"codec.go", g.genCodec, false, true},
		{"messages.go", g.genMessages, false, true},
		{"udp.go", g.genUDP, false, true},
		{"fragment.go", g.genFragment, false, len(g.fragmented) > 0},
		{"layer.go", g.genLayer, false, true},
		{"codec_gen_test.go", g.genTests, true, true},
		{"fuzz_gen_test.go", g.genFuzz, true, true},
		{"bench_gen_test.go", g.genBench, true, true},
	}
	for _, e := range emit {
		if !e.when {
			continue
		}
		out, err := genfile.GoFile(s, opt, g.pkg+"/"+e.name, g.pkg, func(f *jen.File) {
			f.ImportNames(map[string]string{pkgGopacket: "gopacket", pkgLayers: "layers", pkgRand: "rand", pkgNetip: "netip", pkgWire: "wire"})
			e.fn(f)
		})
		if err != nil {
			return nil, fmt.Errorf("codec: %w", err)
		}
		if err := files.Add(g.pkg+"/"+e.name, out); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// gen is the spec resolved into everything the emitters need.
type gen struct {
	s   *spec.Spec
	pkg string // package name and output directory

	view       string // header view type, e.g. TCPMig
	fieldsType string // header struct form, e.g. TCPMigFields
	layer      string // gopacket layer struct
	layerType  string // LayerTypeTCPMig
	layerNum   int

	header  []*field // every header field, wire order
	enums   []*enum
	stage   *enum
	stageF  *field
	msgs    []*message
	byStage map[uint64]*message

	fragmented []*message
	keyFields  []*field // header fields that key a reassembly
}

type enum struct {
	*spec.Enum
	Go     string // type name
	Under  string // underlying Go type
	Values []enumValue
}

type enumValue struct {
	*spec.EnumValue
	Go string
}

// field is a spec field with its Go names and its place in the bytes.
type field struct {
	*spec.Field
	Go    string // exported name: struct field and view method
	GoT   jen.Code
	enum  *enum
	start int // first byte, from the start of its region
	span  int // bytes touched
	shift int // right shift of the value within the span
	// off, shiftC and mask name the constants that place the field: its
	// byte offset from the start of the header, and for a field that is
	// not whole bytes its Shift and Mask (OffsetX, ShiftX, MaskX; payload
	// fields carry their message's name, OffsetHeartbeatUpdateWorkload).
	off, shiftC, mask string
}

// plain reports whether the field is a whole Go integer or address at a
// byte boundary, read without masking.
func (f *field) plain() bool {
	if f.Offset%8 != 0 {
		return false
	}
	switch f.Type {
	case spec.TypeIPv4, spec.TypeMAC:
		return true
	case spec.TypeUint, spec.TypeEnum:
		return f.Bits == 8 || f.Bits == 16 || f.Bits == 32 || f.Bits == 64
	}
	return false
}

// ranged reports whether a Go value of the field's type can hold values
// the wire cannot, so Encode has to check it.
func (f *field) ranged() bool {
	switch f.Type {
	case spec.TypeUint:
		return f.Bits != 8 && f.Bits != 16 && f.Bits != 32 && f.Bits != 64
	case spec.TypeEnum:
		return true
	}
	return false
}

// public reports whether the field appears in the struct forms: consts,
// reserved bits and the stage are implied by the message.
func (f *field) public(g *gen) bool {
	return !f.HasConst && !f.Reserved && f != g.stageF
}

type message struct {
	*spec.Message
	Go      string
	stage   enumValue
	payload []*field
	fixed   int    // payload bytes before any variable part
	bytesF  *field // trailing length-prefixed bytes field
	total   *field // fragmented: the payload field with the whole length
	index   *field // fragmented: header fields
	more    *field
}

// dataField is the struct field that carries a fragment's bytes.
const dataField = "Data"

// totalField is the payload field of a fragmented message that carries the
// length of the whole reassembled message.
const totalField = "total_length"

func uintType(bits int) string {
	switch {
	case bits <= 8:
		return "uint8"
	case bits <= 16:
		return "uint16"
	case bits <= 32:
		return "uint32"
	default:
		return "uint64"
	}
}

func newGen(s *spec.Spec, opt genfile.Options) (*gen, error) {
	if s == nil || s.Header == nil {
		return nil, fmt.Errorf("codec: the spec has no header")
	}
	g := &gen{s: s, byStage: map[uint64]*message{}}
	g.pkg = s.Header.Name
	if !isIdent(g.pkg) {
		return nil, fmt.Errorf("codec: header name %q is not a lower-case identifier usable as a Go package name; rename header.name", g.pkg)
	}
	g.view = s.Header.GoName()
	g.fieldsType = g.view + "Fields"
	g.layer = g.view + "Layer"
	g.layerType = "LayerType" + g.view
	// The layer number is derived from the port so that packages generated
	// for specs on different ports can share a binary without gopacket's
	// duplicate-registration panic.
	g.layerNum = 1000 + int(s.Transport.UDPPort)%1000

	if s.Header.Bytes*8 != sumBits(s.Header.Fields) {
		return nil, fmt.Errorf("codec: header %s is %d bits, not whole bytes; pad it with a reserved field", s.Header.Name, sumBits(s.Header.Fields))
	}
	for _, e := range s.Enums {
		ge := &enum{Enum: e, Go: e.GoName(), Under: uintType(e.Bits)}
		for _, v := range e.Values {
			ge.Values = append(ge.Values, enumValue{EnumValue: v, Go: ge.Go + v.GoName()})
		}
		g.enums = append(g.enums, ge)
	}
	var err error
	if g.header, err = g.fields("header", "", s.Header.Fields); err != nil {
		return nil, err
	}
	for _, f := range g.header {
		if f.Name == s.Header.StageField {
			g.stageF = f
			g.stage = f.enum
		}
	}
	if g.stage == nil {
		return nil, fmt.Errorf("codec: header.stage_field %q is not an enum field of the header", s.Header.StageField)
	}
	for _, m := range s.Messages {
		gm, err := g.message(m)
		if err != nil {
			return nil, err
		}
		if other := g.byStage[gm.stage.Value]; other != nil {
			return nil, fmt.Errorf("codec: messages %s and %s share stage %s; give each message its own stage", other.Name, m.Name, m.Stage.Name)
		}
		g.byStage[gm.stage.Value] = gm
		g.msgs = append(g.msgs, gm)
		if gm.Fragmented {
			g.fragmented = append(g.fragmented, gm)
		}
	}
	for _, f := range g.header {
		if !f.public(g) || f.Type == spec.TypeFlag || f.Type == spec.TypeEnum {
			continue
		}
		frag := false
		for _, m := range g.fragmented {
			frag = frag || f == m.index
		}
		if !frag {
			g.keyFields = append(g.keyFields, f)
		}
	}
	if len(g.fragmented) > 0 && len(g.keyFields) == 0 {
		return nil, fmt.Errorf("codec: fragmented messages need header fields that identify the connection (ipv4, mac or uint fields)")
	}
	return g, g.checkNames()
}

func sumBits(fs []*spec.Field) int {
	n := 0
	for _, f := range fs {
		n += f.Bits
	}
	return n
}

func isIdent(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (g *gen) enumOf(e *spec.Enum) *enum {
	for _, ge := range g.enums {
		if ge.Enum == e || ge.Name == e.Name {
			return ge
		}
	}
	return nil
}

// fields lays out a field list (header or payload); prefix is what its
// constants' names carry after Offset, Shift and Mask ("" for the header,
// the message's Go name for a payload).
func (g *gen) fields(where, prefix string, fs []*spec.Field) ([]*field, error) {
	var out []*field
	for i, sf := range fs {
		f := &field{Field: sf, Go: sf.GoName()}
		f.off, f.shiftC, f.mask = "Offset"+prefix+f.Go, "Shift"+prefix+f.Go, "Mask"+prefix+f.Go
		if f.Go == "" {
			return nil, fmt.Errorf("codec: %s field %d has no name", where, i)
		}
		if sf.Bits < 1 || sf.Bits > 64 {
			return nil, fmt.Errorf("codec: %s.%s is %d bits; fields are 1 to 64 bits wide", where, sf.Name, sf.Bits)
		}
		f.start = sf.Offset / 8
		f.span = (sf.Offset+sf.Bits-1)/8 - f.start + 1
		f.shift = f.span*8 - sf.Offset%8 - sf.Bits
		if f.span > 8 {
			return nil, fmt.Errorf("codec: %s.%s spans %d bytes; align it to a byte boundary", where, sf.Name, f.span)
		}
		switch sf.Type {
		case spec.TypeIPv4:
			f.GoT = jen.Index(jen.Lit(4)).Byte()
		case spec.TypeMAC:
			f.GoT = jen.Index(jen.Lit(6)).Byte()
		case spec.TypeFlag:
			f.GoT = jen.Bool()
		case spec.TypeEnum:
			if sf.Enum == nil || g.enumOf(sf.Enum) == nil {
				return nil, fmt.Errorf("codec: %s.%s names no enum", where, sf.Name)
			}
			f.enum = g.enumOf(sf.Enum)
			f.GoT = jen.Id(f.enum.Go)
		case spec.TypeUint, spec.TypeBytes:
			f.GoT = jen.Id(uintType(sf.Bits))
		default:
			return nil, fmt.Errorf("codec: %s.%s has type %q, which the codec does not know", where, sf.Name, sf.Type)
		}
		if (sf.Type == spec.TypeIPv4 || sf.Type == spec.TypeMAC) && sf.Offset%8 != 0 {
			return nil, fmt.Errorf("codec: %s.%s is an address at bit %d; addresses must start on a byte boundary", where, sf.Name, sf.Offset)
		}
		if sf.Type == spec.TypeBytes {
			if i != len(fs)-1 {
				return nil, fmt.Errorf("codec: %s.%s is a bytes field but not the last field", where, sf.Name)
			}
			f.GoT = jen.Index().Byte()
		}
		out = append(out, f)
	}
	return out, nil
}

func (g *gen) message(m *spec.Message) (*message, error) {
	gm := &message{Message: m, Go: m.GoName()}
	if m.Stage == nil {
		return nil, fmt.Errorf("codec: message %s has no stage", m.Name)
	}
	for _, v := range g.stage.Values {
		if v.Name == m.Stage.Name {
			gm.stage = v
		}
	}
	if gm.stage.EnumValue == nil {
		return nil, fmt.Errorf("codec: message %s: stage %q is not a value of enum %s", m.Name, m.Stage.Name, g.stage.Name)
	}
	var err error
	if gm.payload, err = g.fields("messages."+m.Name+".payload", gm.Go, m.Payload); err != nil {
		return nil, err
	}
	bits := sumBits(m.Payload)
	if bits%8 != 0 {
		return nil, fmt.Errorf("codec: messages.%s.payload is %d bits, not whole bytes; pad it with a reserved field", m.Name, bits)
	}
	gm.fixed = bits / 8
	if n := len(gm.payload); n > 0 && gm.payload[n-1].Type == spec.TypeBytes {
		gm.bytesF = gm.payload[n-1]
		if gm.bytesF.Offset%8 != 0 || gm.bytesF.Bits%8 != 0 {
			return nil, fmt.Errorf("codec: messages.%s.%s: the length prefix of a bytes field must be whole, aligned bytes", m.Name, gm.bytesF.Name)
		}
	}
	if m.Fragmented {
		fr := m.Fragmentation
		if fr == nil {
			return nil, fmt.Errorf("codec: message %s is fragmented without limits", m.Name)
		}
		if gm.bytesF != nil {
			return nil, fmt.Errorf("codec: messages.%s is fragmented and ends in bytes field %s; fragments carry their bytes after the fixed payload, so drop the field", m.Name, gm.bytesF.Name)
		}
		for _, f := range gm.payload {
			if f.Name == totalField && f.Type == spec.TypeUint {
				gm.total = f
			}
			if f.Go == dataField {
				return nil, fmt.Errorf("codec: messages.%s.%s clashes with the fragment bytes field %s; rename it", m.Name, f.Name, dataField)
			}
		}
		if gm.total == nil {
			return nil, fmt.Errorf("codec: messages.%s is fragmented but has no uint payload field %q carrying the whole message's length; add one", m.Name, totalField)
		}
		for _, f := range g.header {
			if f.Name == fr.IndexField && f.Type == spec.TypeUint {
				gm.index = f
			}
			if f.Name == fr.MoreField && f.Type == spec.TypeFlag {
				gm.more = f
			}
		}
		if gm.index == nil || gm.more == nil {
			return nil, fmt.Errorf("codec: messages.%s.fragmented: index_field %q must be a uint and more_field %q a flag of the header", m.Name, fr.IndexField, fr.MoreField)
		}
		if fr.FragmentBytes < 1 {
			return nil, fmt.Errorf("codec: messages.%s: the MTU leaves %d bytes per fragment; raise transport.mtu", m.Name, fr.FragmentBytes)
		}
		if fr.MaxBytes < 0 || fr.MaxPending < 1 || fr.Timeout <= 0 {
			return nil, fmt.Errorf("codec: messages.%s.fragmented: max_bytes, max_pending and timeout must be positive", m.Name)
		}
		if gm.total.Bits < 63 && uint64(fr.MaxBytes) > 1<<gm.total.Bits-1 {
			return nil, fmt.Errorf("codec: messages.%s: max_bytes %d does not fit the %d-bit %s", m.Name, fr.MaxBytes, gm.total.Bits, totalField)
		}
		if frags := (fr.MaxBytes + fr.FragmentBytes - 1) / fr.FragmentBytes; gm.index.Bits < 63 && uint64(frags) > 1<<gm.index.Bits {
			return nil, fmt.Errorf("codec: messages.%s: max_bytes %d needs %d fragments, more than the %d-bit %s can number; lower max_bytes", m.Name, fr.MaxBytes, frags, gm.index.Bits, fr.IndexField)
		}
	}
	return gm, nil
}

// checkNames refuses specs whose names collide once turned into Go.
func (g *gen) checkNames() error {
	seen := map[string]string{}
	add := func(id, what string) error {
		if prev, dup := seen[id]; dup {
			return fmt.Errorf("codec: %s and %s both become the Go identifier %s; rename one", prev, what, id)
		}
		seen[id] = what
		return nil
	}
	fixed := []string{g.view, g.fieldsType, g.layer, g.layerType, "Message", "ReassemblyKey", "Fingerprint", "UDPPort", "MTU",
		"HeaderLen", "UDPHeaderLen", "ChecksumMode", "LayerTypeNumber", "DatagramChecksum", "FinishUDP", "DecodeUDP", "MinLen"}
	for _, id := range fixed {
		if err := add(id, "the codec's own "+id); err != nil {
			return err
		}
	}
	for _, e := range g.enums {
		if err := add(e.Go, "enum "+e.Name); err != nil {
			return err
		}
		for _, v := range e.Values {
			if err := add(v.Go, "enum value "+e.Name+"."+v.Name); err != nil {
				return err
			}
		}
	}
	for _, f := range g.header {
		for _, id := range f.consts() {
			if err := add(id, "header field "+f.Name); err != nil {
				return err
			}
		}
	}
	for _, m := range g.msgs {
		for _, f := range m.payload {
			for _, id := range f.consts() {
				if err := add(id, "messages."+m.Name+".payload."+f.Name); err != nil {
					return err
				}
			}
		}
		for _, id := range []string{m.Go, m.Go + "Len"} {
			if err := add(id, "message "+m.Name); err != nil {
				return err
			}
		}
		if m.Fragmented {
			for _, id := range []string{"Fragment" + m.Go, m.Go + "Reassembler", "New" + m.Go + "Reassembler", m.Go + "FragmentBytes",
				m.Go + "MaxBytes", m.Go + "MaxPending", m.Go + "Timeout"} {
				if err := add(id, "message "+m.Name); err != nil {
					return err
				}
			}
		}
		fs := map[string]string{}
		for _, f := range append(g.publicHeader(), m.payload...) {
			if prev, dup := fs[f.Go]; dup {
				return fmt.Errorf("codec: message %s: fields %s and %s both become %s; rename one", m.Name, prev, f.Name, f.Go)
			}
			fs[f.Go] = f.Name
			// The struct forms' methods, and the fragment bytes, share the
			// fields' namespace.
			for _, taken := range []string{"Stage", "EncodedLen", "Encode", "Decode", "EncodeUDP", "ReassemblyKey", "LayerType", "CanDecode",
				"NextLayerType", "DecodeFromBytes", "SerializeTo", "LayerContents", "LayerPayload", "BaseLayer", "Contents", "Payload", g.fieldsType} {
				if f.Go == taken && f != g.stageF {
					return fmt.Errorf("codec: message %s: field %s becomes %s, which the generated code already uses; rename it", m.Name, f.Name, f.Go)
				}
			}
			if m.Fragmented && f.Go == dataField {
				return fmt.Errorf("codec: message %s: field %s clashes with the fragment bytes field %s; rename it", m.Name, f.Name, dataField)
			}
		}
	}
	fs := map[string]string{}
	for _, f := range g.header {
		if prev, dup := fs[f.Go]; dup {
			return fmt.Errorf("codec: header fields %s and %s both become %s; rename one", prev, f.Name, f.Go)
		}
		fs[f.Go] = f.Name
		for _, reservedName := range []string{"Fields", "SetFields", "Encode", "Validate", "Valid", "ConstantsOK", "Payload", "ReassemblyKey", "Contents"} {
			if f.Go == reservedName {
				return fmt.Errorf("codec: header field %s becomes %s, which the header view already uses; rename it", f.Name, f.Go)
			}
		}
	}
	return nil
}

// consts lists the identifiers of the constants that place f.
func (f *field) consts() []string {
	if f.plain() {
		return []string{f.off}
	}
	return []string{f.off, f.shiftC, f.mask}
}

// headerChecked reports whether some header field of the struct forms can
// hold a value the wire cannot, so Encode has a check to make.
func (g *gen) headerChecked() bool {
	for _, f := range g.publicHeader() {
		if f.ranged() {
			return true
		}
	}
	return false
}

// publicHeader lists the header fields of the struct forms.
func (g *gen) publicHeader() []*field {
	var out []*field
	for _, f := range g.header {
		if f.public(g) {
			out = append(out, f)
		}
	}
	return out
}

// sortedMsgs returns the messages ordered by stage value.
func (g *gen) sortedMsgs() []*message {
	out := append([]*message(nil), g.msgs...)
	sort.Slice(out, func(i, j int) bool { return out[i].stage.Value < out[j].stage.Value })
	return out
}
