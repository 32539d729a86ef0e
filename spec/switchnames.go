package spec

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// The names gen/SWITCH.md gives the switch: the header fields and messages
// that the Go pipeline model and the P4 program read, write or send by
// name. Load refuses a spec without them, at the header or messages
// section, so `capygen vet` and `capygen generate` agree on it.
const (
	// FieldClientIP and FieldClientPort are the client's address: the
	// directory key (directory.key must name exactly these two, in this
	// order; a key of origin_ip would key the directory on the server).
	FieldClientIP   = "client_ip"
	FieldClientPort = "client_port"
	// FieldOriginIP is the origin server a PREPARE_MIG_ACK installs.
	FieldOriginIP = "origin_ip"
	// FieldLoad is the flag that makes a PREPARE_MIG_ACK install the entry.
	FieldLoad = "load"

	MessageRejected          = "rejected"
	MessagePrepareMig        = "prepare_mig"
	MessagePrepareMigAck     = "prepare_mig_ack"
	MessageHeartbeatResponse = "heartbeat_response"

	// MessageConnClosed is the default spec's directory.release: the
	// message a server sends when a migrated connection it holds has
	// finished, which makes the switch clear the connection's key. Unlike
	// the names above it is optional and may be named otherwise; Load
	// checks the message directory.release names (see release).
	MessageConnClosed = "conn_closed"
)

// switchFields are the header fields the switch needs, with their shape
// and what it does with them.
var switchFields = []struct {
	name string
	typ  FieldType
	bits int
	role string
	add  string
}{
	{FieldOriginIP, TypeIPv4, 32, "the origin server it installs as a directory entry's origin on PREPARE_MIG_ACK", "{name: origin_ip, type: ipv4}"},
	{FieldClientIP, TypeIPv4, 32, "the client's address, the first half of the directory key", "{name: client_ip, type: ipv4}"},
	{FieldClientPort, TypeUint, 16, "the client's port, the second half of the directory key", "{name: client_port, bits: 16}"},
	{FieldLoad, TypeFlag, 1, "the flag that makes a PREPARE_MIG_ACK install the directory entry", "{name: load, type: flag}"},
}

// switchMessages are the messages the switch handles or sends by name.
var switchMessages = []struct{ name, role string }{
	{MessageRejected, "sends it back for a PREPARE_MIG it cannot serve, a PREPARE_MIG_ACK whose entry fits no level and a stale PREPARE_MIG_ACK from a target that lost the connection to another"},
	{MessagePrepareMig, "steers it to the least-loaded server, or to the target a migration in progress already has"},
	{MessagePrepareMigAck, "installs the directory entry from it when its load flag is set"},
	{MessageHeartbeatResponse, "answers every heartbeat with it, carrying the minimum workload"},
}

// switchNames checks that the spec has every name gen/SWITCH.md relies
// on. hdr is the header section, msgs the messages list (either may be
// nil when already reported missing).
func (d *decoder) switchNames(s *Spec, hdr *obj, msgs *yaml.Node) {
	if hdr != nil && !hdr.Bad() && s.Header != nil {
		if list := hdr.Raw("fields"); list != nil && list.Kind == yaml.SequenceNode {
			for _, want := range switchFields {
				f := s.HeaderField(want.name)
				switch {
				case f == nil:
					d.Errorf(list, hdr.Sub("fields"), "no field %s; the switch reads it as %s (gen/SWITCH.md), so add %s", want.name, want.role, want.add)
				case f.Type != want.typ || f.Bits != want.bits:
					d.Errorf(f.node(), hdr.Sub("fields."+want.name), "is %s; the switch reads it as %s (gen/SWITCH.md), so make it %s", shape(f.Type, f.Bits), want.role, shape(want.typ, want.bits))
				}
			}
		}
	}
	if msgs != nil && msgs.Kind == yaml.SequenceNode {
		for _, want := range switchMessages {
			if s.MessageByName(want.name) == nil {
				d.Errorf(msgs, "messages", "no message %s; the switch %s (gen/SWITCH.md), so add one named %s with a stage of its own", want.name, want.role, want.name)
			}
		}
		d.heartbeatResponse(s)
		d.heartbeat(s)
		d.inPlace(s)
		d.release(s)
	}
}

// heartbeat checks workload.heartbeat: a server's message that the switch
// does not otherwise act on (it would be handled twice: two cases for
// one stage in the model and the P4).
func (d *decoder) heartbeat(s *Spec) {
	if s.Workload == nil {
		return
	}
	hb := s.MessageByName(s.Workload.Heartbeat)
	if hb == nil {
		return // reported
	}
	for _, w := range switchMessages {
		if w.name == hb.Name {
			d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: s.Workload.Pos, Msg: fmt.Sprintf(
				"workload.heartbeat: %s is a message the switch already acts on (it %s); give the heartbeat a message and stage of its own, such as heartbeat_update", hb.Name, w.role)})
			return
		}
	}
	if hb.From != "server" {
		d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: hb.Pos, Msg: fmt.Sprintf(
			"messages.%s: is from: %s; the heartbeat (workload.heartbeat) is a server's report of its load (the switch drops TCPMig from other ports), so set from: server", hb.Name, hb.From)})
	}
}

// inPlace checks the messages the switch rewrites into others in place
// (a REJECTED for a PREPARE_MIG or a PREPARE_MIG_ACK, a heartbeat's
// response): the datagram keeps its length, so the answer's payload must
// be as long as what it answers, which its decoder checks exactly.
func (d *decoder) inPlace(s *Spec) {
	var hb *Message
	if s.Workload != nil && !isSwitchMessage(s.Workload.Heartbeat) {
		hb = s.MessageByName(s.Workload.Heartbeat)
	}
	for _, p := range []struct{ from, to *Message }{
		{s.MessageByName(MessagePrepareMig), s.MessageByName(MessageRejected)},
		{s.MessageByName(MessagePrepareMigAck), s.MessageByName(MessageRejected)},
		{hb, s.MessageByName(MessageHeartbeatResponse)},
	} {
		if p.from == nil || p.to == nil || incomplete(p.from) || incomplete(p.to) ||
			p.from.PayloadBytes == p.to.PayloadBytes && !p.from.Fragmented && !p.to.Fragmented {
			continue
		}
		d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: p.to.Pos, Msg: fmt.Sprintf(
			"messages.%s: the switch rewrites %s into it in place (gen/SWITCH.md), so the two payloads must be as long and neither fragmented (%s: %d bytes, %s: %d); make them the same length",
			p.to.Name, p.from.Name, p.to.Name, p.to.PayloadBytes, p.from.Name, p.from.PayloadBytes)})
	}
}

// isSwitchMessage reports whether the switch handles or sends name itself.
func isSwitchMessage(name string) bool {
	for _, w := range switchMessages {
		if w.name == name {
			return true
		}
	}
	return false
}

// incomplete reports whether m has a field whose width was refused (and
// reported): its length means nothing.
func incomplete(m *Message) bool {
	for _, f := range m.Payload {
		if f.Bits == 0 {
			return true
		}
	}
	return false
}

// release checks the message directory.release names: a header-only
// message from a server that the switch does not otherwise act on. The
// switch reads the connection's key from its header, clears it and sends
// the datagram back unchanged but for the swapped addresses.
func (d *decoder) release(s *Spec) {
	dir := s.Directory
	if dir == nil || dir.Release == "" {
		return
	}
	at := dir.ReleasePos
	fail := func(format string, a ...any) {
		d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: at, Msg: "directory.release: " + fmt.Sprintf(format, a...)})
	}
	m := s.MessageByName(dir.Release)
	if m == nil {
		fail("%q is not a message; name the message a server sends when a migrated connection it holds has finished, and define it under messages (for example {name: %s, stage: %s, from: server})",
			dir.Release, MessageConnClosed, MessageConnClosed)
		return
	}
	handled := map[string]string{}
	for _, w := range switchMessages {
		handled[w.name] = w.role
	}
	if s.Workload != nil && s.Workload.Heartbeat != "" {
		handled[s.Workload.Heartbeat] = "updates the minimum-workload register with it (workload.heartbeat)"
	}
	if role, ok := handled[m.Name]; ok {
		fail("%s is a message the switch already acts on (it %s); give the release a message and stage of its own, such as %s", m.Name, role, MessageConnClosed)
		return
	}
	if m.From != "server" {
		fail("message %s is from: %s; a release is a server's report about a connection it holds (the switch drops TCPMig from other ports), so set from: server on it", m.Name, m.From)
	}
	if len(m.Payload) > 0 || m.Fragmented {
		fail("message %s has a payload; the switch reads a release's header only (origin_ip, origin_port, client_ip and client_port name the connection) and echoes it, so remove its payload and fragmented keys", m.Name)
	}
}

// heartbeatResponse checks that the response carries the heartbeat's
// metric where the heartbeat has it: the switch turns one into the other
// in place, rewriting only the stage and the metric.
func (d *decoder) heartbeatResponse(s *Spec) {
	resp := s.MessageByName(MessageHeartbeatResponse)
	if resp == nil || s.Workload == nil {
		return
	}
	hb := s.MessageByName(s.Workload.Heartbeat)
	if hb == nil {
		return
	}
	metric := payloadFieldByName(hb, s.Workload.MetricField)
	if metric == nil || metric.Type != TypeUint || metric.Bits == 0 {
		return // workload.metric_field, or the field's bits, is reported
	}
	got := payloadFieldByName(resp, metric.Name)
	if got != nil && got.Type == TypeUint && got.Offset == metric.Offset && got.Bits == metric.Bits {
		return
	}
	d.Diagnostics = append(d.Diagnostics, Diagnostic{Pos: resp.Pos, Msg: fmt.Sprintf(
		"messages.%s.payload: needs %s (workload.metric_field) as a %d-bit uint at bit %d of the payload, where %s has it: the switch turns a heartbeat into its response in place (gen/SWITCH.md); add {name: %s, bits: %d} there",
		resp.Name, metric.Name, metric.Bits, metric.Offset, hb.Name, metric.Name, metric.Bits)})
}

func payloadFieldByName(m *Message, name string) *Field {
	for _, f := range m.Payload {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// shape names a field's type and width for messages: "a 16-bit uint".
func shape(t FieldType, bits int) string {
	switch t {
	case TypeIPv4, TypeMAC, TypeFlag:
		return "type: " + string(t)
	}
	return fmt.Sprintf("a %d-bit %s", bits, t)
}

// node is a stand-in yaml.Node at the field's position, for Errorf.
func (f *Field) node() *yaml.Node { return &yaml.Node{Line: f.Pos.Line, Column: f.Pos.Col} }
