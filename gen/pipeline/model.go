package pipeline

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/spec"
)

// ErrUnsupported marks a spec that the switch semantics of gen/SWITCH.md
// cannot be applied to (a message or field the switch needs is missing, or
// a width the model cannot carry).
var ErrUnsupported = errors.New("spec cannot be modelled by the switch pipeline")

// The messages and header fields gen/SWITCH.md names. The switch acts on
// them by these names, exactly as the P4 program does.
const (
	msgRejected          = "rejected"
	msgPrepareMig        = "prepare_mig"
	msgPrepareMigAck     = "prepare_mig_ack"
	msgHeartbeatResponse = "heartbeat_response"
	fieldOriginIP        = "origin_ip"
	fieldLoad            = "load"
)

// TCP flag bits of the flags byte (offset 13 of the TCP header).
const (
	tcpFIN = 0x01
	tcpRST = 0x04
)

// model is the spec reduced to what the switch pipeline needs, checked.
type model struct {
	s *spec.Spec

	levels    []*spec.CRC
	indexBits int
	udpPort   uint16
	portBits  int
	tables    spec.Tables
	// deleteMask holds the TCP flag bits that delete a directory entry.
	deleteMask byte

	headerBytes int
	consts      []*spec.Field
	stage       *spec.Field
	load        *spec.Field
	clientIP    *spec.Field
	clientPort  *spec.Field
	originIP    *spec.Field

	// The messages the switch acts on; release is directory.release's
	// (nil: none). Their stages, lengths and fields are read through the
	// generated codec (codec, view), never spelled here.
	rejected, prepare, ack, heartbeat, response, release *spec.Message
	codec, view                                          string

	workloadBits int
	ageStep      uint32 // workload.age_step; 0: no aging
	// metric is the heartbeat's workload field, reply the response's.
	metric, reply *spec.Field
}

func unsupported(where, format string, a ...any) error {
	return fmt.Errorf("%s: %s: %w", where, fmt.Sprintf(format, a...), ErrUnsupported)
}

// newModel checks that s has everything gen/SWITCH.md uses, in shapes the
// generated Go can carry, and extracts it.
func newModel(s *spec.Spec) (*model, error) {
	if s == nil || s.Header == nil || s.Directory == nil || s.Workload == nil {
		return nil, unsupported("spec", "header, directory and workload sections are required")
	}
	if s.Target == nil {
		return nil, unsupported("target", "no target profile; set target: to one of %v", spec.TargetNames())
	}
	m := &model{
		s:           s,
		indexBits:   s.Directory.IndexBits,
		udpPort:     s.Transport.UDPPort,
		portBits:    s.Target.PortBits,
		tables:      s.Tables,
		headerBytes: s.Header.Bytes,
	}
	if s.Transport.Checksum != "udp" {
		return nil, unsupported("transport.checksum", "%q: the switch rewrites TCPMig fields and keeps the standard UDP checksum valid; only checksum: udp is modelled", s.Transport.Checksum)
	}
	if m.portBits < 1 || m.portBits > 16 {
		return nil, unsupported("target "+s.Target.Name+".port_bits", "%d is outside 1..16", m.portBits)
	}
	for _, t := range []struct {
		name string
		size int
	}{{"tables.hosts", s.Tables.Hosts}, {"tables.ports", s.Tables.Ports}, {"tables.l2", s.Tables.L2}} {
		if t.size < 1 {
			return nil, unsupported(t.name, "size %d; a table needs at least one entry", t.size)
		}
	}

	d := s.Directory
	if len(d.Levels) < 1 {
		return nil, unsupported("directory.levels", "at least one level is needed")
	}
	for i, l := range d.Levels {
		c := l.Hash
		where := fmt.Sprintf("directory.levels[%d].hash", i)
		if c == nil {
			return nil, unsupported(where, "missing")
		}
		if c.Width < 8 || c.Width > 64 {
			return nil, unsupported(where, "width %d is outside 8..64", c.Width)
		}
		if d.IndexBits < 1 || d.IndexBits > 31 || d.IndexBits > c.Width {
			return nil, unsupported("directory.index_bits", "%d does not fit level %d's %d-bit CRC (1..min(31, width))", d.IndexBits, i, c.Width)
		}
		m.levels = append(m.levels, c)
	}
	if d.Insert != "write_if_empty" {
		return nil, unsupported("directory.insert", "%q; only write_if_empty is modelled", d.Insert)
	}
	if d.OnFull != "reject" {
		return nil, unsupported("directory.on_full", "%q; only reject is modelled", d.OnFull)
	}
	for _, f := range d.DeleteOn {
		switch f {
		case "rst":
			m.deleteMask |= tcpRST
		case "fin":
			m.deleteMask |= tcpFIN
		default:
			return nil, unsupported("directory.delete_on", "%q is not a TCP flag the switch deletes on (rst, fin)", f)
		}
	}

	// Header fields the switch reads or writes.
	field := func(name string, want spec.FieldType, bits int) (*spec.Field, error) {
		f := s.HeaderField(name)
		if f == nil {
			return nil, unsupported("header.fields", "no field %q; gen/SWITCH.md reads it", name)
		}
		if (want != "" && f.Type != want) || (bits != 0 && f.Bits != bits) {
			return nil, unsupported("header.fields."+name, "is %s/%d bits; the switch needs %s/%d bits", f.Type, f.Bits, want, bits)
		}
		return f, nil
	}
	var err error
	if len(d.Key) != 2 {
		return nil, unsupported("directory.key", "%v; the switch keys on [client ip field, client port field]", d.Key)
	}
	if m.clientIP, err = field(d.Key[0], spec.TypeIPv4, 32); err != nil {
		return nil, err
	}
	if m.clientPort, err = field(d.Key[1], "", 16); err != nil {
		return nil, err
	}
	if m.originIP, err = field(fieldOriginIP, spec.TypeIPv4, 32); err != nil {
		return nil, err
	}
	if m.load, err = field(fieldLoad, spec.TypeFlag, 1); err != nil {
		return nil, err
	}
	if m.stage, err = field(s.Header.StageField, spec.TypeEnum, 0); err != nil {
		return nil, err
	}
	if m.stage.Bits > 8 {
		return nil, unsupported("header.fields."+m.stage.Name, "stage is %d bits; the switch model carries stages up to 8 bits", m.stage.Bits)
	}
	for _, f := range s.Header.Fields {
		if f.HasConst {
			m.consts = append(m.consts, f)
		}
	}
	for _, f := range append(append([]*spec.Field{}, m.consts...), m.clientIP, m.clientPort, m.originIP, m.load, m.stage) {
		if err := readable(f, "header.fields."+f.Name, m.headerBytes); err != nil {
			return nil, err
		}
	}

	// Messages the switch answers or rewrites.
	msg := func(name string) (*spec.Message, error) {
		mm := s.MessageByName(name)
		if mm == nil || mm.Stage == nil {
			return nil, unsupported("messages", "no message %q with a stage; gen/SWITCH.md handles it", name)
		}
		return mm, nil
	}
	rejected, err := msg(msgRejected)
	if err != nil {
		return nil, err
	}
	prepare, err := msg(msgPrepareMig)
	if err != nil {
		return nil, err
	}
	ack, err := msg(msgPrepareMigAck)
	if err != nil {
		return nil, err
	}
	hb, err := msg(s.Workload.Heartbeat)
	if err != nil {
		return nil, err
	}
	resp, err := msg(msgHeartbeatResponse)
	if err != nil {
		return nil, err
	}
	m.rejected, m.prepare, m.ack, m.heartbeat, m.response = rejected, prepare, ack, hb, resp
	named := []*spec.Message{rejected, prepare, ack, hb, resp}
	if d.Release != "" {
		if m.release, err = msg(d.Release); err != nil {
			return nil, fmt.Errorf("directory.release: %w", err)
		}
		for _, mm := range named {
			if mm == m.release {
				return nil, unsupported("directory.release", "%s is a message the switch already acts on; a release needs a message of its own", mm.Name)
			}
		}
		if m.release.PayloadBytes != 0 || m.release.From != "server" {
			return nil, unsupported("directory.release", "%s must be a header-only message from: server", m.release.Name)
		}
		named = append(named, m.release)
	}
	seen := map[uint64]string{}
	for _, mm := range named {
		if other, dup := seen[mm.Stage.Value]; dup && other != mm.Name {
			return nil, unsupported("messages."+mm.Name+".stage", "%s shares stage %d with %s; the switch tells them apart by stage", mm.Name, mm.Stage.Value, other)
		}
		seen[mm.Stage.Value] = mm.Name
	}
	// The switch turns messages into others in place: the answer's fixed
	// part must fit in what it answers.
	for _, p := range []struct{ from, to *spec.Message }{{prepare, rejected}, {ack, rejected}, {hb, resp}} {
		if p.to.PayloadBytes > p.from.PayloadBytes {
			return nil, unsupported("messages."+p.to.Name, "fixed payload is %d bytes, more than the %d bytes of %s that the switch rewrites into it",
				p.to.PayloadBytes, p.from.PayloadBytes, p.from.Name)
		}
	}

	if s.Workload.Bits < 1 || s.Workload.Bits > 32 {
		return nil, unsupported("workload.bits", "%d is outside 1..32 (one half of a register pair)", s.Workload.Bits)
	}
	m.workloadBits = s.Workload.Bits
	if a := s.Workload.AgeStep; a > 0 && s.Workload.Bits != 32 {
		return nil, unsupported("workload.age_step", "aging needs workload.bits 32, not %d", s.Workload.Bits)
	}
	m.ageStep = s.Workload.AgeStep
	payloadField := func(mm *spec.Message) (*spec.Field, error) {
		for _, f := range mm.Payload {
			if f.Name == s.Workload.MetricField {
				where := "messages." + mm.Name + ".payload." + f.Name
				if f.Type != spec.TypeUint {
					return nil, unsupported(where, "is %s; the workload metric must be uint", f.Type)
				}
				return f, readable(f, where, mm.PayloadBytes)
			}
		}
		return nil, unsupported("messages."+mm.Name+".payload", "no field %q (workload.metric_field)", s.Workload.MetricField)
	}
	if m.metric, err = payloadField(hb); err != nil {
		return nil, err
	}
	if m.reply, err = payloadField(resp); err != nil {
		return nil, err
	}

	// Only stages that select a message are known: the P4 parser's stage
	// select has one arm per message and sends every other value to
	// bad_tcpmig (gen/SWITCH.md step 4).
	staged := false
	for _, v := range m.stage.Enum.Values {
		for _, mm := range s.Messages {
			staged = staged || mm.Stage == v
		}
	}
	if m.stage.Enum.Bits != m.stage.Bits || !staged {
		return nil, unsupported("header.fields."+m.stage.Name, "no message has a stage of enum %s; the switch would drop every TCPMig datagram", m.stage.Enum.Name)
	}
	return m, nil
}

// codecID is a name of the generated codec package (tcpmig.HeaderLen).
func (m *model) codecID(name string) *jen.Statement { return jen.Qual(m.codec, name) }

// stageOf is the codec's constant for msg's stage (tcpmig.StageRejected).
func (m *model) stageOf(msg *spec.Message) *jen.Statement {
	return m.codecID(m.stage.Enum.GoName() + msg.Stage.GoName())
}

// readable checks that f lies inside a region of size bytes and that one
// 64-bit load covers it, which the generated accessors rely on.
func readable(f *spec.Field, where string, size int) error {
	if f.Bits < 1 || f.Offset < 0 || f.Offset+f.Bits > size*8 {
		return unsupported(where, "bits %d..%d lie outside the %d-byte region", f.Offset, f.Offset+f.Bits, size)
	}
	if f.Offset%8+f.Bits > 64 {
		return unsupported(where, "%d bits at bit offset %d span more than 8 bytes", f.Bits, f.Offset)
	}
	return nil
}

// crcTable is the byte-at-a-time table of c: MSB-first for a plain CRC,
// LSB-first (with the reflected polynomial) for a reversed one.
func crcTable(c *spec.CRC) [256]uint64 {
	w := uint(c.Width)
	mask := uint64(1)<<(w-1)<<1 - 1
	var t [256]uint64
	if c.Reversed {
		rp := bits.Reverse64(c.Poly) >> (64 - w)
		for i := range t {
			r := uint64(i)
			for k := 0; k < 8; k++ {
				if r&1 != 0 {
					r = r>>1 ^ rp
				} else {
					r >>= 1
				}
			}
			t[i] = r & mask
		}
		return t
	}
	top := uint64(1) << (w - 1)
	for i := range t {
		r := uint64(i) << (w - 8)
		for k := 0; k < 8; k++ {
			if r&top != 0 {
				r = (r<<1 ^ c.Poly) & mask
			} else {
				r = r << 1 & mask
			}
		}
		t[i] = r
	}
	return t
}

// crcInit is the register's start value in the table algorithm: the
// reversed algorithm works on the reflected register.
func crcInit(c *spec.CRC) uint64 {
	w := uint(c.Width)
	mask := uint64(1)<<(w-1)<<1 - 1
	if c.Reversed {
		return bits.Reverse64(c.Init&mask) >> (64 - w)
	}
	return c.Init & mask
}

// crcType is the smallest unsigned type holding a CRC of width w.
func crcType(w int) (name string, size int) {
	switch {
	case w <= 8:
		return "uint8", 8
	case w <= 16:
		return "uint16", 16
	case w <= 32:
		return "uint32", 32
	}
	return "uint64", 64
}
