package spec

import (
	"fmt"
	"strings"
)

// The one naming layer of every emitter (bpf2go's name methods are the
// model): a spec name becomes a Go identifier only through GoName, and
// Parse refuses a spec whose names would collide once converted, so no
// emitter needs a check of its own.

// initialisms are the spec words written in capitals in Go identifiers,
// following the Go convention (golint's list, trimmed to what specs use).
var initialisms = map[string]string{
	"ack": "Ack", "crc": "CRC", "id": "ID", "ip": "IP", "ipv4": "IPv4", "mac": "MAC",
	"mtu": "MTU", "tcp": "TCP", "udp": "UDP", "ttl": "TTL", "rst": "RST", "fin": "FIN",
}

// protocolPrefixes are initialisms that often start a compound protocol
// name ("tcpmig" -> "TCPMig"); no English word starts with them.
var protocolPrefixes = []string{"tcp", "udp"}

// GoName turns a lower_snake spec name into an exported Go identifier:
// "prepare_mig_ack" -> "PrepareMigAck", "client_ip" -> "ClientIP",
// "tcpmig" -> "TCPMig".
func GoName(name string) string {
	var b strings.Builder
	for _, w := range strings.Split(name, "_") {
		if w != "" {
			b.WriteString(goWord(w))
		}
	}
	return b.String()
}

func goWord(w string) string {
	if v, ok := initialisms[w]; ok {
		return v
	}
	for _, p := range protocolPrefixes {
		if rest, ok := strings.CutPrefix(w, p); ok && rest != "" && isLetters(rest) {
			return strings.ToUpper(p) + goWord(rest)
		}
	}
	return strings.ToUpper(w[:1]) + w[1:]
}

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// GoUnexported makes an unexported identifier from an exported one; a
// leading initialism is lowered whole ("TCPMig" -> "tcpMig").
func GoUnexported(s string) string {
	i := 0
	for i < len(s) && s[i] >= 'A' && s[i] <= 'Z' {
		i++
	}
	switch {
	case i == 0:
		return s
	case i == 1 || i == len(s):
		return strings.ToLower(s[:i]) + s[i:]
	default:
		return strings.ToLower(s[:i-1]) + s[i-1:]
	}
}

// GoName is the Go type name of the header view.
func (h *Header) GoName() string { return GoName(h.Name) }

// GoName is the Go type name of the enum.
func (e *Enum) GoName() string { return GoName(e.Name) }

// GoName is the Go name of the field's accessors and struct field.
func (f *Field) GoName() string { return GoName(f.Name) }

// GoName is the Go type name of the message.
func (m *Message) GoName() string { return GoName(m.Name) }

// GoName is the Go type name of the machine.
func (m *Machine) GoName() string { return GoName(m.Name) }

// GoName is the state's suffix in its machine's constants.
func (s *State) GoName() string { return GoName(s.Name) }

// GoName is the event's suffix in its machine's constants.
func (e *Event) GoName() string { return GoName(e.Name) }

// GoName is the action's suffix in its machine's constants.
func (a *Action) GoName() string { return GoName(a.Name) }

// goIdent is one spec name in a Go scope, for the collision check.
type goIdent struct {
	ident, what, name string
	pos               Pos
}

// goNameCollisions reports spec names that are distinct in the spec but
// become the same Go identifier in one scope ("tcp_mig" and "tcpmig" are
// both TCPMig). The scopes are those of the emitted packages: the codec
// package (header view, enums, enum constants, messages), each header or
// payload's fields, the machines package (machine types) and each
// machine's states, events and actions.
func goNameCollisions(s *Spec) []Diagnostic {
	var ds []Diagnostic
	check := func(scope string, ids []goIdent) {
		seen := map[string]goIdent{}
		for _, id := range ids {
			if first, ok := seen[id.ident]; ok {
				ds = append(ds, Diagnostic{Pos: id.pos, Msg: fmt.Sprintf(
					"%s %q and %s %q (%s) are both the Go identifier %s in %s; rename one",
					id.what, id.name, first.what, first.name, first.pos, id.ident, scope)})
				continue
			}
			seen[id.ident] = id
		}
	}
	var pkg []goIdent
	if s.Header != nil {
		pkg = append(pkg, goIdent{s.Header.GoName(), "header", s.Header.Name, s.Header.Pos})
		check("the header's fields", fieldIdents(s.Header.Fields))
	}
	for _, e := range s.Enums {
		pkg = append(pkg, goIdent{e.GoName(), "enum", e.Name, e.Pos})
		for _, v := range e.Values {
			pkg = append(pkg, goIdent{e.GoName() + v.GoName(), "enum value", e.Name + "." + v.Name, v.Pos})
		}
	}
	for _, m := range s.Messages {
		pkg = append(pkg, goIdent{m.GoName(), "message", m.Name, m.Pos})
		check("message "+m.Name+"'s payload", fieldIdents(m.Payload))
	}
	check("the codec package", pkg)
	var machines []goIdent
	for _, m := range s.Machines {
		machines = append(machines, goIdent{m.GoName(), "machine", m.Name, m.Pos})
		var states, events, actions []goIdent
		for _, st := range m.States {
			states = append(states, goIdent{st.GoName(), "state", st.Name, st.Pos})
		}
		for _, ev := range m.Events {
			events = append(events, goIdent{ev.GoName(), "event", ev.Name, ev.Pos})
		}
		for _, a := range m.Actions {
			actions = append(actions, goIdent{a.GoName(), "action", a.Name, a.Pos})
		}
		check("machine "+m.Name+"'s states", states)
		check("machine "+m.Name+"'s events", events)
		check("machine "+m.Name+"'s actions", actions)
	}
	check("the machines package", machines)
	return ds
}

func fieldIdents(fs []*Field) []goIdent {
	ids := make([]goIdent, len(fs))
	for i, f := range fs {
		ids[i] = goIdent{f.GoName(), "field", f.Name, f.Pos}
	}
	return ids
}

// GoName is the value's suffix in its enum's constants.
func (v *EnumValue) GoName() string { return GoName(v.Name) }
