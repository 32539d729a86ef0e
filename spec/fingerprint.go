package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// fingerprint hashes the semantic content of the spec: every value an
// emitter turns into behaviour, in a canonical text form. Positions, YAML
// formatting, comments and doc strings do not count, so reformatting a spec
// or rewording its docs keeps the fingerprint (and the P4Runtime cookie)
// while any change a runtime could observe alters it.
func fingerprint(s *Spec) string {
	h := sha256.New()
	writeCanonical(h, s)
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:8])
}

// writeCanonical writes the canonical form that fingerprint hashes. Strings
// are quoted so no two specs share a form.
func writeCanonical(w io.Writer, s *Spec) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("version %d name %q", s.Version, s.Name)
	if t := s.Target; t != nil {
		p("target %q arch %q tofino %d stages %d sram %d sram_bits %d map_ram %d salu %d hash %d reg_bits %d reg_blocks %d index %d..%d port_bits %d",
			t.Name, t.Arch, t.TofinoVersion, t.Stages, t.SRAMBlocksPerStage, t.SRAMBlockBits, t.MapRAMBlocksPerStage,
			t.StatefulALUsPerStage, t.HashUnitsPerStage, t.MaxRegisterBits, t.MaxRegisterBlocks, t.MinIndexBits, t.MaxIndexBits, t.PortBits)
	}
	b := s.Budget
	p("budget sram %d map_ram %d salu %d hash %d stages %d", b.SRAMBlocks, b.MapRAMBlocks, b.StatefulALUs, b.HashUnits, b.Stages)
	p("tables hosts %d ports %d l2 %d", s.Tables.Hosts, s.Tables.Ports, s.Tables.L2)
	p("transport udp_port %d mtu %d checksum %q", s.Transport.UDPPort, s.Transport.MTU, s.Transport.Checksum)
	for _, e := range s.Enums {
		p("enum %q bits %d", e.Name, e.Bits)
		for _, v := range e.Values {
			p(" value %q %d", v.Name, v.Value)
		}
	}
	field := func(f *Field) {
		enum := ""
		if f.Enum != nil {
			enum = f.Enum.Name
		}
		p(" field %q type %q bits %d enum %q const %v %d reserved %v offset %d", f.Name, f.Type, f.Bits, enum, f.HasConst, f.Const, f.Reserved, f.Offset)
	}
	if hd := s.Header; hd != nil {
		p("header %q stage_field %q bytes %d", hd.Name, hd.StageField, hd.Bytes)
		for _, f := range hd.Fields {
			field(f)
		}
	}
	for _, m := range s.Messages {
		stage := ""
		if m.Stage != nil {
			stage = m.Stage.Name
		}
		p("message %q stage %q from %q payload_bytes %d fragmented %v", m.Name, stage, m.From, m.PayloadBytes, m.Fragmented)
		for _, f := range m.Payload {
			field(f)
		}
		if fr := m.Fragmentation; fr != nil {
			p(" fragmentation index %q more %q fragment_bytes %d max_bytes %d max_pending %d timeout %d",
				fr.IndexField, fr.MoreField, fr.FragmentBytes, fr.MaxBytes, fr.MaxPending, fr.Timeout)
		}
	}
	if d := s.Directory; d != nil {
		p("directory key %q index_bits %d insert %q on_full %q delete_on %q release %q", d.Key, d.IndexBits, d.Insert, d.OnFull, d.DeleteOn, d.Release)
		for _, l := range d.Levels {
			if c := l.Hash; c != nil {
				p(" level crc %q width %d poly %#x reversed %v init %#x xor_out %#x", c.Name, c.Width, c.Poly, c.Reversed, c.Init, c.XorOut)
			}
		}
	}
	if wl := s.Workload; wl != nil {
		p("workload bits %d update %q metric %q heartbeat %q", wl.Bits, wl.Update, wl.MetricField, wl.Heartbeat)
		if wl.AgeStep != 0 { // a line of its own, so specs without aging keep their fingerprint
			p("workload age_step %d", wl.AgeStep)
		}
	}
	for _, m := range s.Machines {
		p("machine %q initial %q", m.Name, stateName(m.Initial))
		for _, st := range m.States {
			p(" state %q final %v", st.Name, st.Final)
			if to := st.Timeout; to != nil {
				p("  timeout after %d retries %d resend %q exhausted %q give_up %q",
					to.After, to.Retries, actionName(to.Resend), stateName(to.Exhausted), actionNames(to.GiveUp))
			}
		}
		for _, ev := range m.Events {
			p(" event %q message %q", ev.Name, messageName(ev.Message))
		}
		for _, a := range m.Actions {
			p(" action %q send %q", a.Name, messageName(a.Send))
		}
		for _, t := range m.Transitions {
			p(" transition %q %q %q do %q", stateName(t.From), eventName(t.On), stateName(t.To), actionNames(t.Actions))
		}
		for _, ig := range m.Ignores {
			p(" ignore %q %q", stateName(ig.State), eventName(ig.On))
		}
	}
}

func stateName(s *State) string {
	if s == nil {
		return ""
	}
	return s.Name
}

func messageName(m *Message) string {
	if m == nil {
		return ""
	}
	return m.Name
}

func eventName(e *Event) string {
	if e == nil {
		return ""
	}
	return e.Name
}

func actionName(a *Action) string {
	if a == nil {
		return ""
	}
	return a.Name
}

func actionNames(as []*Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = actionName(a)
	}
	return out
}
