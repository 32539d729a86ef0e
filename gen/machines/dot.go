package machines

import (
	"fmt"
	"strings"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// dot draws m for the docs: solid edges are transitions, dashed ones the
// timeout's retry and give-up, dotted grey self-loops the ignored events
// (one loop per state).
// Final states are double circles; timed states show their timer.
func dot(s *spec.Spec, m *spec.Machine, opt genfile.Options) []byte {
	var b strings.Builder
	b.WriteString(genfile.Header(s, opt, "// "))
	fmt.Fprintf(&b, "digraph %q {\n", m.Name)
	b.WriteString("\trankdir=LR;\n")
	b.WriteString("\tnode [shape=ellipse, fontname=\"Helvetica\"];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("\t\"__start\" [shape=point, label=\"\"];\n")
	fmt.Fprintf(&b, "\t\"__start\" -> %q;\n", m.Initial.Name)
	for _, st := range m.States {
		label := st.Name
		attrs := ""
		if st.Timeout != nil {
			label += fmt.Sprintf("\\ntimeout %v, %d retries", st.Timeout.After, st.Timeout.Retries)
		}
		if st.Final {
			attrs = ", shape=doublecircle"
		}
		fmt.Fprintf(&b, "\t%q [label=\"%s\"%s];\n", st.Name, label, attrs)
	}
	edge := func(from, to *spec.State, label string, acts []*spec.Action, style string) {
		if len(acts) > 0 {
			label += " / " + strings.Join(actionNames(acts), ", ")
		}
		fmt.Fprintf(&b, "\t%q -> %q [label=%q%s];\n", from.Name, to.Name, label, style)
	}
	for _, t := range m.Transitions {
		edge(t.From, t.To, t.On.Name, t.Actions, "")
	}
	for _, st := range m.States {
		to := st.Timeout
		if to == nil {
			continue
		}
		if to.Retries > 0 {
			var acts []*spec.Action
			if to.Resend != nil {
				acts = []*spec.Action{to.Resend}
			}
			edge(st, st, fmt.Sprintf("%s (retry, up to %d)", spec.TimeoutEvent, to.Retries), acts, ", style=dashed")
		}
		edge(st, to.Exhausted, spec.TimeoutEvent+" (exhausted)", to.GiveUp, ", style=dashed")
	}
	// One dotted loop per state lists all of its ignored events.
	for _, st := range m.States {
		var evs []string
		for _, ig := range m.Ignores {
			if ig.State == st {
				evs = append(evs, ig.On.Name)
			}
		}
		if len(evs) > 0 {
			edge(st, st, strings.Join(evs, ", ")+" (ignored)", nil, ", style=dotted, color=gray50, fontcolor=gray50")
		}
	}
	b.WriteString("}\n")
	return []byte(b.String())
}

func actionNames(as []*spec.Action) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}
