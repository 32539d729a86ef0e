// Package dissector emits a Wireshark dissector for the spec's TCPMig
// messages, a Lua plugin, into generated/wireshark/:
//
//	<header>.lua   the protocol, one ProtoField per header and payload
//	               field under the spec's names (tcpmig.stage,
//	               tcpmig.conn_state.total_length), the stage enum's
//	               values by name, flags as bits of their byte
//
// Load it with `tshark -X lua_script:generated/wireshark/tcpmig.lua` or
// copy it into Wireshark's plugin folder. It claims the spec's UDP port and
// checks the magic, so another protocol on the port is left alone.
//
// The Lua comes from templates/dissector.lua.tmpl, run with sprig's
// hermetic functions; every name and offset is computed here.
package dissector

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/templates"
)

// Dir is the emitter's directory below the output root.
const Dir = "wireshark"

// ErrUnsupported is wrapped when a field cannot be shown by Wireshark's
// Lua API as the spec lays it out.
var ErrUnsupported = errors.New("spec not supported by the dissector emitter")

// field is one ProtoField and where it sits.
type field struct {
	Var    string // the Lua variable
	Abbrev string // the display filter name: tcpmig.origin_ip
	Name   string // the spec's name
	Ctor   string // ProtoField constructor
	Base   string // display base, or "" (ipv4, ether, bytes, bool)
	Mask   string // bitmask within its bytes, or "nil"
	// Explicit: the field spans over 4 bytes with a mask, which
	// ProtoField cannot take; the tree item is given its value.
	Explicit bool
	Values   string // a value_string table's variable, or "nil"
	Bits     int    // a bool's parent width in bits
	Doc      string
	// Off and Len are its bytes from the start of its header or payload;
	// Pos is Off as a Lua expression over the datagram (p is the
	// payload's start). Shift and Width are its bits within them.
	Off, Len     int
	Pos          string
	Shift, Width int
	// Prefix, for a length-prefixed bytes field, is its length field.
	Prefix *field
	// Const is the magic a datagram must carry, or "" (none).
	Const string
}

// message is one message kind.
type message struct {
	Name       string
	Stage      uint64
	Payload    []*field
	FixedBytes int
	// Data is the fragment data of a fragmented message, after the fixed
	// payload.
	Data *field
}

// enum is a value_string table.
type enum struct {
	Var    string
	Values []*spec.EnumValue
}

type data struct {
	Proto, Title string
	Spec         *spec.Spec
	Header       []*field
	HeaderBytes  int
	Consts       []*field // the header fields with a constant: every one must match
	Stage        *field
	// Key fields for the Info column.
	OriginIP, OriginPort, ClientIP, ClientPort, Epoch, Index, More *field
	Messages                                                       []*message
	Enums                                                          []*enum
	UDPPort                                                        int
	Banner                                                         string
}

// Generate renders the dissector of s.
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	d, err := newData(s, opt)
	if err != nil {
		return nil, err
	}
	fm := sprig.HermeticTxtFuncMap()
	fm["lua"] = luaString
	tmpl, err := template.New("dissector").Funcs(fm).ParseFS(templates.FS, "dissector.lua.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse dissector template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, "dissector.lua.tmpl", d); err != nil {
		return nil, fmt.Errorf("render the dissector: %w", err)
	}
	files := genfile.Files{}
	if err := files.Add(Dir+"/"+s.Header.Name+".lua", genfile.Tidy(b.String())); err != nil {
		return nil, err
	}
	return files, nil
}

func newData(s *spec.Spec, opt genfile.Options) (*data, error) {
	h := s.Header
	d := &data{Proto: h.Name, Title: fmt.Sprintf("TCPMig (%s, capygen)", s.Name), Spec: s,
		HeaderBytes: h.Bytes, UDPPort: int(s.Transport.UDPPort), Banner: genfile.Header(s, opt, "-- ")}
	for _, e := range s.Enums {
		d.Enums = append(d.Enums, &enum{Var: e.Name + "_names", Values: e.Values})
	}
	for _, f := range h.Fields {
		pf, err := protoField(h.Name, "", f)
		if err != nil {
			return nil, err
		}
		d.Header = append(d.Header, pf)
		if f.HasConst {
			d.Consts = append(d.Consts, pf)
		}
		switch f.Name {
		case h.StageField:
			d.Stage = pf
		case "origin_ip":
			d.OriginIP = pf
		case "origin_port":
			d.OriginPort = pf
		case "client_ip":
			d.ClientIP = pf
		case "client_port":
			d.ClientPort = pf
		case "epoch":
			d.Epoch = pf
		}
	}
	if d.Stage == nil {
		return nil, fmt.Errorf("%w: the header has no stage field %q", ErrUnsupported, h.StageField)
	}
	for _, m := range s.Messages {
		msg := &message{Name: m.Name, Stage: m.Stage.Value, FixedBytes: m.PayloadBytes}
		for _, f := range m.Payload {
			pf, err := protoField(h.Name, m.Name, f)
			if err != nil {
				return nil, err
			}
			msg.Payload = append(msg.Payload, pf)
		}
		if m.Fragmented {
			fr := m.Fragmentation
			for _, hf := range d.Header {
				switch hf.Name {
				case fr.IndexField:
					d.Index = hf
				case fr.MoreField:
					d.More = hf
				}
			}
			msg.Data = &field{Var: luaVar(m.Name, "data"), Abbrev: h.Name + "." + m.Name + ".data", Name: "data",
				Ctor: "bytes", Mask: "nil", Values: "nil", Doc: "This fragment's share of the serialized " + m.Name + ".",
				Off: m.PayloadBytes}
		}
		d.Messages = append(d.Messages, msg)
	}
	return d, nil
}

func luaVar(parts ...string) string {
	var nonEmpty []string
	for _, p := range parts {
		if p != "" {
			nonEmpty = append(nonEmpty, p)
		}
	}
	return "f_" + strings.Join(nonEmpty, "_")
}

// protoField lays f out as Wireshark sees it: the whole bytes it touches,
// with a mask when it does not fill them.
func protoField(proto, msg string, f *spec.Field) (*field, error) {
	abbrev := proto + "." + f.Name
	if msg != "" {
		abbrev = proto + "." + msg + "." + f.Name
	}
	pf := &field{Var: luaVar(msg, f.Name), Abbrev: abbrev, Name: f.Name, Doc: oneLine(f.Doc), Mask: "nil", Values: "nil",
		Off: f.Offset / 8, Shift: f.Offset % 8, Width: f.Bits}
	pf.Pos = fmt.Sprint(pf.Off)
	if msg != "" {
		pf.Pos = fmt.Sprintf("p + %d", pf.Off)
	}
	if f.Doc == "" {
		pf.Doc = f.Name
	}
	shift := f.Offset % 8
	pf.Len = (shift + f.Bits + 7) / 8
	if shift != 0 || f.Bits%8 != 0 {
		mask := (uint64(1)<<f.Bits - 1) << (pf.Len*8 - shift - f.Bits)
		pf.Mask = fmt.Sprintf("0x%0*X", pf.Len*2, mask)
		// Wireshark (4.0) cuts a ProtoField's mask to 32 bits and takes
		// no UInt64 mask: a wider field gets no mask, and the tree item
		// its value, read as a bitfield.
		pf.Explicit = pf.Len > 4
	}
	uint := func() error {
		switch pf.Len {
		case 1, 2, 3, 4:
			pf.Ctor = fmt.Sprintf("uint%d", pf.Len*8)
		case 5, 6, 7, 8:
			// Lua has no uint40..uint56; a uint64 field takes 5 to 8
			// bytes, and its values are read with :uint64().
			pf.Ctor = "uint64"
		default:
			return fmt.Errorf("%w: field %s spans %d bytes; Wireshark's Lua fields take at most 8", ErrUnsupported, abbrev, pf.Len)
		}
		pf.Base = "base.DEC"
		return nil
	}
	switch f.Type {
	case spec.TypeIPv4:
		pf.Ctor = "ipv4"
	case spec.TypeMAC:
		pf.Ctor = "ether"
	case spec.TypeFlag:
		pf.Ctor, pf.Bits = "bool", pf.Len*8
	case spec.TypeEnum:
		if err := uint(); err != nil {
			return nil, err
		}
		pf.Values = f.Enum.Name + "_names"
	case spec.TypeBytes:
		prefix := *pf
		prefix.Var, prefix.Abbrev, prefix.Name, prefix.Doc = pf.Var+"_length", pf.Abbrev+"_length", f.Name+"_length", "Length of "+f.Name+"."
		if err := uint(); err != nil {
			return nil, err
		}
		prefix.Ctor, prefix.Base = pf.Ctor, pf.Base
		pf.Prefix = &prefix
		pf.Ctor, pf.Base, pf.Mask, pf.Off = "bytes", "", "nil", pf.Off+pf.Len
		pf.Pos = fmt.Sprintf("p + %d", pf.Off)
	default:
		if err := uint(); err != nil {
			return nil, err
		}
		if f.HasConst {
			pf.Base = "base.HEX"
			pf.Const = fmt.Sprintf("0x%X", f.Const)
		}
	}
	return pf, nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// luaString quotes s as a Lua string literal; Lua strings are bytes, so
// UTF-8 passes through.
func luaString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
	return `"` + r.Replace(s) + `"`
}
