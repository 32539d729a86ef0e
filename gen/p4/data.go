package p4

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// data is what the P4 templates are executed with.
type data struct {
	// Header is the generated-file header, as "// " comment lines.
	Header      string
	Name        ident
	Fingerprint string
	Arch        string
	Ingress     string
	// Guard is the include guard of headers.p4.
	Guard   string
	UDPPort uint64
	// TCPMig is the fixed header after UDP.
	TCPMig header
	// Magic lists the header's constant fields (the parser's match), and
	// MagicLook how the parser matches them before it extracts the header:
	// a lookahead at the header's first Bits bits.
	Magic     []field
	MagicLook magicLook
	Enums     []enum
	// Payloads are the messages with a fixed payload, one header each.
	Payloads []header
	// Messages are every message, for the parser's stage select.
	Messages []message
	// Stage is the stage field's expression and each stage constant the
	// switch program uses.
	Stage stages
	// StageWord lists the header fields sharing 16-bit checksum words with
	// the stage field; MetricWord those with the heartbeat's metric field.
	StageWord  []string
	MetricWord []string
	// Heartbeat is the heartbeat message's payload instance, Metric the
	// expression of its workload field and MetricBits its width.
	Heartbeat  ident
	Metric     string
	MetricBits int
	// WorkloadBits is the width the register keeps (workload.bits).
	WorkloadBits int
	// WorkloadIn is the 32-bit register value of the heartbeat's metric
	// (truncated to WorkloadBits); WorkloadOut writes ig_md.held_load back
	// into the metric field.
	WorkloadIn, WorkloadOut string
	// AgeStep is workload.age_step: what another server's report that does
	// not take min_workload adds to the held load (0: no aging).
	AgeStep uint32
	// KeyIP, KeyPort, Origin and Load are the header fields the directory
	// insert reads.
	KeyIP, KeyPort, Origin, Load string
	IndexBits                    int
	Entries                      int
	Levels                       []level
	// DeleteFlags is the TCP flag mask that deletes an entry (0: never).
	DeleteFlags uint64
	DeleteOn    string
	// Release is directory.release's message ("" when none): its arrival
	// clears the key it names from every level and is echoed to the sender.
	Release     ident
	DropReasons []dropReason
	Tables      spec.Tables
	PortBits    int
}

// header is a P4 header type and its instance name in header_t.
type header struct {
	Name   ident
	Doc    string
	Bytes  int
	Stage  string
	Fields []field
}

type field struct {
	Name ident
	// Type is the P4 type: bit<N>, ipv4_addr_t, stage_t...
	Type    string
	Bits    int
	Comment string
	// Const is the constant's name and Value its literal, for const fields.
	Const string
	Value string
	// off is the bit offset from the start of the UDP payload.
	off int
	// constVal is a const field's value.
	constVal uint64
	// Expr is the field's expression: hdr.<instance>.<field>.
	Expr string
}

type enum struct {
	Name   ident
	Bits   int
	Doc    string
	Values []enumValue
}

type enumValue struct {
	Const string
	Lit   string
	Doc   string
}

type message struct {
	Name  ident
	Stage string
	// MinUDPLen is the smallest UDP length field of the message: the UDP
	// header, the TCPMig header and the fixed payload (gen/SWITCH.md step 4).
	MinUDPLen uint64
	// Payload is set when the message has fixed payload fields.
	Payload *header
}

type stages struct {
	Field             string
	Rejected          string
	PrepareMig        string
	PrepareMigAck     string
	Heartbeat         string
	HeartbeatResponse string
	// Release is the stage of directory.release's message ("": none).
	Release string
}

type dropReason struct {
	Name  ident
	Value int
	Doc   string
}

// dropReasons are gen/SWITCH.md's reasons, in its order; value 0 is "not
// dropped".
var dropReasons = []dropReason{
	{"no_route", 1, "the IPv4 destination is not in ipv4_host"},
	{"spoofed_control", 2, "TCPMig from a port whose role is not server"},
	{"unknown_port", 3, "the ingress port has no role in port_role"},
	{"bad_tcpmig", 4, "TCPMig whose UDP length or frame is shorter than its stage's fixed size, or an unknown stage"},
	{"malformed", 5, "the frame ends inside the Ethernet, IPv4, TCP or UDP header (a parser error)"},
}

// p4Reserved are P4 keywords and the names the program itself uses for
// header instances; spec names must avoid them.
var p4Reserved = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`action actions apply bit bool const control default else entries enum error exit extern
		false header header_union if in inout int key list match_kind out package parser return select size state
		string struct switch table transition true tuple type typedef varbit verify void value_set
		ethernet ipv4 tcp udp hdr ig_md eg_md pkt main pipe`) {
		p4Reserved[w] = true
	}
}

var identRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func checkIdent(what, name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("%w: %s %q is not a lower_snake P4 identifier; rename it", ErrUnsupported, what, name)
	}
	if p4Reserved[name] {
		return fmt.Errorf("%w: %s %q is a P4 keyword or a name the switch program uses; rename it", ErrUnsupported, what, name)
	}
	return nil
}

func newData(s *spec.Spec, opt genfile.Options) (*data, error) {
	if s == nil || s.Header == nil || s.Directory == nil || s.Workload == nil || s.Target == nil {
		return nil, fmt.Errorf("%w: the spec needs a header, a directory, a workload and a target", ErrUnsupported)
	}
	if err := checkIdent("name", s.Name); err != nil {
		return nil, err
	}
	if err := checkIdent("header.name", s.Header.Name); err != nil {
		return nil, err
	}
	if s.Transport.Checksum != "udp" {
		return nil, fmt.Errorf("%w: transport.checksum %q: the Tofino program keeps the UDP checksum valid with the deparser's one's-complement residual method, which only fits the standard UDP checksum; set transport.checksum: udp",
			ErrUnsupported, s.Transport.Checksum)
	}
	if s.Target.Arch != "tna" && s.Target.Arch != "t2na" {
		return nil, fmt.Errorf("%w: target %s has arch %q; the program is written for tna or t2na", ErrUnsupported, s.Target.Name, s.Target.Arch)
	}
	d := &data{
		Header:       genfile.Header(s, opt, "// "),
		Name:         ident(s.Name),
		Fingerprint:  s.Fingerprint,
		Arch:         s.Target.Arch,
		Ingress:      ingress,
		Guard:        "_" + strings.ToUpper(s.Name) + "_HEADERS_P4_",
		UDPPort:      uint64(s.Transport.UDPPort),
		IndexBits:    s.Directory.IndexBits,
		Entries:      s.Directory.Entries(),
		DropReasons:  dropReasons,
		Tables:       s.Tables,
		PortBits:     s.Target.PortBits,
		WorkloadBits: s.Workload.Bits,
	}
	if d.PortBits == 0 {
		d.PortBits = 9
	}
	for _, e := range s.Enums {
		if err := checkIdent("enum", e.Name); err != nil {
			return nil, err
		}
		en := enum{Name: ident(e.Name), Bits: e.Bits, Doc: oneLine(e.Doc)}
		if en.Doc == "" {
			en.Doc = "Values of " + e.Name + "."
		}
		for _, v := range e.Values {
			en.Values = append(en.Values, enumValue{Const: enumConst(e, v), Lit: dec(e.Bits, v.Value), Doc: oneLine(v.Doc)})
		}
		d.Enums = append(d.Enums, en)
	}

	hdrName := ident(s.Header.Name)
	fields, err := p4Fields(hdrName, s.Header.Fields, 0)
	if err != nil {
		return nil, err
	}
	d.TCPMig = header{Name: hdrName, Doc: "The TCPMig header", Bytes: s.Header.Bytes, Fields: fields}
	for _, f := range fields {
		if f.Const != "" {
			d.Magic = append(d.Magic, f)
		}
	}
	if d.MagicLook, err = lookaheadOf(d.Magic); err != nil {
		return nil, err
	}
	if s.Header.Bytes%2 != 0 {
		return nil, fmt.Errorf("%w: header %s is %d bytes; the payload's checksum words need an even header length, add a reserved byte",
			ErrUnsupported, s.Header.Name, s.Header.Bytes)
	}

	stageEnum := s.StageEnum()
	if stageEnum == nil {
		return nil, fmt.Errorf("%w: header.stage_field %q is not an enum field", ErrUnsupported, s.Header.StageField)
	}
	stageField := s.HeaderField(s.Header.StageField)
	d.Stage.Field = "hdr." + s.Header.Name + "." + stageField.Name
	payloadOf := map[string]*header{}
	for _, m := range s.Messages {
		if err := checkIdent("message", m.Name); err != nil {
			return nil, err
		}
		if m.Name == s.Header.Name {
			return nil, fmt.Errorf("%w: message %q has the header's name; rename one", ErrUnsupported, m.Name)
		}
		if m.Stage == nil {
			return nil, fmt.Errorf("%w: message %s has no stage", ErrUnsupported, m.Name)
		}
		msg := message{Name: ident(m.Name), Stage: enumConst(stageEnum, m.Stage), MinUDPLen: uint64(8 + s.Header.Bytes + m.PayloadBytes)}
		if msg.MinUDPLen > 0xFFFF {
			return nil, fmt.Errorf("%w: message %s needs %d bytes of UDP, more than a UDP length field holds; shorten its fixed payload",
				ErrUnsupported, m.Name, msg.MinUDPLen)
		}
		pf, err := p4Fields(ident(m.Name), m.Payload, s.Header.Bytes*8)
		if err != nil {
			return nil, err
		}
		if len(pf) > 0 {
			h := &header{Name: ident(m.Name), Doc: oneLine(m.Doc), Bytes: m.PayloadBytes, Stage: msg.Stage, Fields: pf}
			d.Payloads = append(d.Payloads, *h)
			msg.Payload = h
			payloadOf[m.Name] = h
		}
		d.Messages = append(d.Messages, msg)
	}
	need := func(name string) (*spec.Message, error) {
		m := s.MessageByName(name)
		if m == nil {
			return nil, fmt.Errorf("%w: the spec has no message %q; the switch program sends or handles it (gen/SWITCH.md)", ErrUnsupported, name)
		}
		return m, nil
	}
	stageOf := func(name string) (string, error) {
		m, err := need(name)
		if err != nil {
			return "", err
		}
		return enumConst(stageEnum, m.Stage), nil
	}
	for _, p := range []struct {
		dst  *string
		name string
	}{
		{&d.Stage.Rejected, "rejected"},
		{&d.Stage.PrepareMig, "prepare_mig"},
		{&d.Stage.PrepareMigAck, "prepare_mig_ack"},
		{&d.Stage.Heartbeat, s.Workload.Heartbeat},
		{&d.Stage.HeartbeatResponse, "heartbeat_response"},
	} {
		if *p.dst, err = stageOf(p.name); err != nil {
			return nil, err
		}
	}

	// The heartbeat's metric is rewritten in place into the response, so
	// the response must carry it at the same place.
	hb, _ := need(s.Workload.Heartbeat)
	resp, _ := need("heartbeat_response")
	metric := payloadField(hb, s.Workload.MetricField)
	if metric == nil || metric.Type != spec.TypeUint || metric.Bits > 32 {
		return nil, fmt.Errorf("%w: workload.metric_field %q must be a uint field of at most 32 bits in message %s's payload",
			ErrUnsupported, s.Workload.MetricField, hb.Name)
	}
	if rm := payloadField(resp, s.Workload.MetricField); rm == nil || rm.Offset != metric.Offset || rm.Bits != metric.Bits {
		return nil, fmt.Errorf("%w: heartbeat_response must carry %s at the same offset and width as %s, since the switch turns one into the other in place",
			ErrUnsupported, s.Workload.MetricField, hb.Name)
	}
	if s.Workload.Update != "holder_or_smaller" {
		return nil, fmt.Errorf("%w: workload.update %q: the switch program implements holder_or_smaller", ErrUnsupported, s.Workload.Update)
	}
	if s.Workload.Bits < 1 || s.Workload.Bits > 32 {
		return nil, fmt.Errorf("%w: workload.bits %d: a register half holds at most 32 bits", ErrUnsupported, s.Workload.Bits)
	}
	if s.Workload.AgeStep > 0 && s.Workload.Bits != 32 {
		return nil, fmt.Errorf("%w: workload.age_step %d needs workload.bits 32, not %d: the aged load saturates at 2^32-1", ErrUnsupported, s.Workload.AgeStep, s.Workload.Bits)
	}
	d.AgeStep = s.Workload.AgeStep
	d.Heartbeat = ident(hb.Name)
	d.Metric = "hdr." + hb.Name + "." + metric.Name
	d.MetricBits = metric.Bits
	d.WorkloadIn, d.WorkloadOut = d.Metric, "ig_md.held_load"
	if w := s.Workload.Bits; w < metric.Bits {
		d.WorkloadIn = fmt.Sprintf("%s[%d:0]", d.Metric, w-1)
	}
	if min(s.Workload.Bits, metric.Bits) < 32 {
		d.WorkloadIn = "(bit<32>)" + d.WorkloadIn
	}
	if metric.Bits < 32 {
		d.WorkloadOut = fmt.Sprintf("(bit<%d>)ig_md.held_load", metric.Bits)
	}

	all := append(append([]field(nil), d.TCPMig.Fields...), payloadOf[hb.Name].Fields...)
	if d.StageWord, err = wordSpan(all, d.Stage.Field); err != nil {
		return nil, err
	}
	if d.MetricWord, err = wordSpan(all, d.Metric); err != nil {
		return nil, err
	}
	for _, a := range d.StageWord {
		for _, b := range d.MetricWord {
			if a == b {
				return nil, fmt.Errorf("%w: %s shares a 16-bit checksum word with the stage field; move it to its own word", ErrUnsupported, d.Metric)
			}
		}
	}

	hf := func(name string, typ spec.FieldType, bits int, role string) (string, error) {
		f := s.HeaderField(name)
		if f == nil || f.Type != typ || f.Bits != bits {
			return "", fmt.Errorf("%w: header field %q must exist as a %d-bit %s: it is the %s", ErrUnsupported, name, bits, typ, role)
		}
		return "hdr." + s.Header.Name + "." + name, nil
	}
	dir := s.Directory
	if len(dir.Key) != 2 {
		return nil, fmt.Errorf("%w: directory.key %v must be [client IPv4 field, client port field]", ErrUnsupported, dir.Key)
	}
	if d.KeyIP, err = hf(dir.Key[0], spec.TypeIPv4, 32, "directory key's client address"); err != nil {
		return nil, err
	}
	if d.KeyPort, err = hf(dir.Key[1], spec.TypeUint, 16, "directory key's client port"); err != nil {
		return nil, err
	}
	if d.Origin, err = hf("origin_ip", spec.TypeIPv4, 32, "migration's origin server"); err != nil {
		return nil, err
	}
	if d.Load, err = hf("load", spec.TypeFlag, 1, "flag that makes the switch install the entry"); err != nil {
		return nil, err
	}

	if len(dir.Levels) < 1 {
		return nil, fmt.Errorf("%w: directory.levels is empty; give it at least one level", ErrUnsupported)
	}
	if dir.IndexBits < 1 || dir.IndexBits > 32 {
		return nil, fmt.Errorf("%w: directory.index_bits %d is outside 1..32", ErrUnsupported, dir.IndexBits)
	}
	for i, l := range dir.Levels {
		h := l.Hash
		if h == nil || (h.Width != 8 && h.Width != 16 && h.Width != 32) {
			return nil, fmt.Errorf("%w: directory.levels[%d].hash: Tofino's CRCPolynomial takes 8, 16 or 32 bits", ErrUnsupported, i)
		}
		if h.Width < dir.IndexBits {
			return nil, fmt.Errorf("%w: directory.levels[%d].hash %s is %d bits, narrower than index_bits %d; use a wider CRC or fewer index bits",
				ErrUnsupported, i, h.Name, h.Width, dir.IndexBits)
		}
		d.Levels = append(d.Levels, level{N: i, Hash: h})
	}
	if dir.Insert != "write_if_empty" || dir.OnFull != "reject" {
		return nil, fmt.Errorf("%w: directory insert %q / on_full %q: the switch program implements write_if_empty with reject",
			ErrUnsupported, dir.Insert, dir.OnFull)
	}
	var del []string
	for _, f := range dir.DeleteOn {
		switch f {
		case "fin":
			d.DeleteFlags |= 0x01
		case "rst":
			d.DeleteFlags |= 0x04
		default:
			return nil, fmt.Errorf("%w: directory.delete_on %q: only rst and fin", ErrUnsupported, f)
		}
		del = append(del, strings.ToUpper(f))
	}
	d.DeleteOn = strings.Join(del, " or ")
	if dir.Release != "" {
		m, err := need(dir.Release)
		if err != nil {
			return nil, err
		}
		for _, other := range []string{"rejected", "prepare_mig", "prepare_mig_ack", s.Workload.Heartbeat, "heartbeat_response"} {
			if m.Name == other {
				return nil, fmt.Errorf("%w: directory.release %s is a message the switch already acts on; give the release a message of its own", ErrUnsupported, m.Name)
			}
		}
		if m.PayloadBytes != 0 || m.From != "server" {
			return nil, fmt.Errorf("%w: directory.release %s must be a header-only message from: server", ErrUnsupported, m.Name)
		}
		d.Release = ident(m.Name)
		d.Stage.Release = enumConst(stageEnum, m.Stage)
	}
	return d, nil
}

func payloadField(m *spec.Message, name string) *spec.Field {
	for _, f := range m.Payload {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// enumConst names an enum value's constant: STAGE_REJECTED.
func enumConst(e *spec.Enum, v *spec.EnumValue) string {
	return strings.ToUpper(e.Name + "_" + v.Name)
}

// p4Fields turns spec fields into P4 header fields of instance inst; base
// is the bit offset of the first field from the start of the UDP payload.
func p4Fields(inst ident, fs []*spec.Field, base int) ([]field, error) {
	var out []field
	seen := map[string]bool{}
	for _, f := range fs {
		if err := checkIdent(string(inst)+" field", f.Name); err != nil {
			return nil, err
		}
		name := f.Name
		var typ string
		switch f.Type {
		case spec.TypeIPv4:
			typ = "ipv4_addr_t"
		case spec.TypeMAC:
			typ = "mac_addr_t"
		case spec.TypeEnum:
			typ = ident(f.Enum.Name).Type()
		case spec.TypeBytes:
			// Only the length prefix is fixed; the bytes stay payload.
			name += "_length"
			typ = fmt.Sprintf("bit<%d>", f.Bits)
		default:
			typ = fmt.Sprintf("bit<%d>", f.Bits)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: %s has two fields named %s", ErrUnsupported, inst, name)
		}
		seen[name] = true
		pf := field{Name: ident(name), Type: typ, Bits: f.Bits, off: base + f.Offset, Expr: "hdr." + string(inst) + "." + name}
		var notes []string
		if d := oneLine(f.Doc); d != "" {
			notes = append(notes, strings.TrimSuffix(d, "."))
		}
		if f.Offset%8 != 0 || f.Bits%8 != 0 {
			byteN, hi := f.Offset/8, 7-f.Offset%8
			if lo := hi - f.Bits + 1; lo == hi {
				notes = append(notes, fmt.Sprintf("byte %d, bit %d (MSB first)", byteN, hi))
			} else {
				notes = append(notes, fmt.Sprintf("byte %d, bits %d-%d (MSB first)", byteN, hi, lo))
			}
		}
		if f.Reserved {
			notes = append(notes, "reserved, zero")
		}
		if f.HasConst {
			pf.Const = strings.ToUpper(string(inst) + "_" + f.Name)
			pf.Value = lit(f.Bits, f.Const)
			pf.constVal = f.Const
		}
		if len(notes) > 0 {
			pf.Comment = strings.Join(notes, "; ") + "."
		}
		out = append(out, pf)
	}
	return out, nil
}

// magicLook is the parser's match on the magic: a lookahead at the first
// Bits bits of the header, against Value under Mask (Full: no mask).
type magicLook struct {
	Bits        int
	Value, Mask string
	Full        bool
}

// lookaheadOf is the lookahead that matches the magic fields. The parser
// matches the magic before it extracts the header, and the stage in the
// state that extracts it: selecting on the stage after a state that
// extracted the header and matched a 32-bit magic (all of a Tofino-1
// parser state's match registers) made bf-p4c fail ("packet rval shifted
// to be negative?").
func lookaheadOf(magic []field) (magicLook, error) {
	if len(magic) == 0 {
		return magicLook{}, nil
	}
	end := 0
	for _, f := range magic {
		end = max(end, f.off+f.Bits)
	}
	if end > 64 {
		return magicLook{}, fmt.Errorf("%w: the magic field %s ends at bit %d of the header; the parser looks ahead at the magic, at most 64 bits: move the constant fields to the header's start",
			ErrUnsupported, magic[len(magic)-1].Name, end)
	}
	var value, mask uint64
	for _, f := range magic {
		shift := end - f.off - f.Bits
		value |= f.constVal << shift
		mask |= (1<<f.Bits - 1) << shift
	}
	full := mask == 1<<end-1 // a 64-bit shift gives 0, so 64 bits work too
	if len(magic) == 1 && full {
		return magicLook{Bits: end, Value: magic[0].Const, Mask: lit(end, mask), Full: true}, nil
	}
	return magicLook{Bits: end, Value: lit(end, value), Mask: lit(end, mask), Full: full}, nil
}

// wordSpan returns the fields that share 16-bit checksum words with the
// field expr, widened until the span starts and ends on word boundaries
// and cuts no field: the Tofino checksum engines add whole 16-bit words.
func wordSpan(fs []field, expr string) ([]string, error) {
	var target *field
	for i := range fs {
		if fs[i].Expr == expr {
			target = &fs[i]
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%w: no field %s for the checksum", ErrUnsupported, expr)
	}
	lo, hi := target.off/16*16, (target.off+target.Bits+15)/16*16
	for {
		nlo, nhi := lo, hi
		for _, f := range fs {
			if f.off < hi && f.off+f.Bits > lo {
				nlo = min(nlo, f.off/16*16)
				nhi = max(nhi, (f.off+f.Bits+15)/16*16)
			}
		}
		if nlo == lo && nhi == hi {
			break
		}
		lo, hi = nlo, nhi
	}
	var out []string
	covered := 0
	for _, f := range fs {
		if f.off >= lo && f.off+f.Bits <= hi {
			out = append(out, f.Expr)
			covered += f.Bits
		}
	}
	if covered != hi-lo {
		return nil, fmt.Errorf("%w: the 16-bit words around %s are not covered by whole fields (%d of %d bits)", ErrUnsupported, expr, covered, hi-lo)
	}
	return out, nil
}

func oneLine(s string) string {
	// A line comment ending in a backslash would swallow the next line:
	// the P4 preprocessor splices lines before it strips comments.
	return strings.TrimRight(strings.Join(strings.Fields(s), " "), `\`)
}
