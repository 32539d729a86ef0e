package spec

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

func (d *decoder) machines(s *Spec, o *obj) {
	names := definedNames("machine")
	for i, n := range o.list("machines", true) {
		path := itemPath("machines", i, n)
		mo := d.object(n, path, "name", "doc", "initial", "states", "events", "actions", "transitions", "ignore")
		if mo.Bad() {
			continue
		}
		m := d.machine(s, mo, n)
		if !d.claim(names, mo, m.Name) {
			continue
		}
		s.Machines = append(s.Machines, m)
	}
}

// machine decodes one state machine and checks it: names resolve, at most
// one outcome per (state, event), every state reachable, finals stay put.
func (d *decoder) machine(s *Spec, mo *obj, n *yaml.Node) *Machine {
	m := &Machine{Pos: d.Pos(n)}
	m.Name, _ = mo.name("name", true)
	if p := fileNameProblem(m.Name); p != "" {
		d.Errorf(mo.At("name"), mo.Sub("name"), "%q %s; rename the machine", m.Name, p)
	}
	m.Doc, _ = mo.str("doc", false)

	state := map[string]*State{}
	stateNames := definedNames("state")
	stateNodes := mo.list("states", true)
	timeouts := map[*State]*obj{}
	for i, sn := range stateNodes {
		so := d.object(sn, itemPath(mo.Sub("states"), i, sn), "name", "doc", "final", "timeout")
		if so.Bad() {
			continue
		}
		st := &State{Pos: d.Pos(sn)}
		st.Name, _ = so.name("name", true)
		st.Doc, _ = so.str("doc", false)
		st.Final = so.bool("final")
		if !d.claim(stateNames, so, st.Name) {
			continue
		}
		if st.Name != "" {
			state[st.Name] = st
		}
		if to := so.object("timeout", false, "after", "retries", "resend", "exhausted", "give_up"); to != nil && !to.Bad() {
			timeouts[st] = to
		}
		m.States = append(m.States, st)
	}
	if len(m.States) == 0 && mo.Raw("states") != nil && mo.Raw("states").Kind == yaml.SequenceNode {
		d.Errorf(mo.At("states"), mo.Sub("states"), "is empty; a machine needs states")
	}

	event := map[string]*Event{}
	eventNames := definedNames("event")
	byMessage := map[*Message]*Event{}
	for i, en := range mo.list("events", true) {
		eo := d.object(en, itemPath(mo.Sub("events"), i, en), "name", "message", "doc")
		if eo.Bad() {
			continue
		}
		ev := &Event{Pos: d.Pos(en)}
		ev.Name, _ = eo.name("name", true)
		ev.Doc, _ = eo.str("doc", false)
		if ev.Name == TimeoutEvent {
			d.Errorf(eo.At("name"), eo.Sub("name"), "%q is built in (raised by a state's timer); rename the event", ev.Name)
			continue
		}
		if !d.claim(eventNames, eo, ev.Name) {
			continue
		}
		if msg, ok := eo.str("message", false); ok {
			ev.Message = s.MessageByName(msg)
			switch {
			case ev.Message == nil:
				d.Errorf(eo.At("message"), eo.Sub("message"), "message %q is not defined; use one of %s", msg, messageNames(s))
			case byMessage[ev.Message] != nil:
				d.Errorf(eo.At("message"), eo.Sub("message"), "message %s already raises event %s; one message raises one event", msg, byMessage[ev.Message].Name)
			default:
				byMessage[ev.Message] = ev
			}
		}
		if ev.Name != "" {
			event[ev.Name] = ev
		}
		m.Events = append(m.Events, ev)
	}

	action := map[string]*Action{}
	actionNames := definedNames("action")
	for i, an := range mo.list("actions", true) {
		ao := d.object(an, itemPath(mo.Sub("actions"), i, an), "name", "send", "doc")
		if ao.Bad() {
			continue
		}
		a := &Action{Pos: d.Pos(an)}
		a.Name, _ = ao.name("name", true)
		a.Doc, _ = ao.str("doc", false)
		if !d.claim(actionNames, ao, a.Name) {
			continue
		}
		if msg, ok := ao.str("send", false); ok {
			if a.Send = s.MessageByName(msg); a.Send == nil {
				d.Errorf(ao.At("send"), ao.Sub("send"), "message %q is not defined; use one of %s", msg, messageNames(s))
			}
		}
		if a.Name != "" {
			action[a.Name] = a
		}
		m.Actions = append(m.Actions, a)
	}

	// broken is set when an edge could not be resolved; the reachability
	// check is skipped then, since it would only repeat that problem.
	broken := false
	lookupState := func(o *obj, key string, required bool) *State {
		v, ok := o.str(key, required)
		if !ok {
			broken = true
			return nil
		}
		st := state[v]
		if st == nil {
			broken = true
			d.Errorf(o.At(key), o.Sub(key), "state %q is not defined in machine %s; define it under states", v, m.Name)
		}
		return st
	}
	lookupActions := func(o *obj, key string) ([]*Action, bool) {
		names, nodes := o.strings(key, false)
		var out []*Action
		ok := true
		for i, an := range names {
			a := action[an]
			if a == nil {
				d.Errorf(nodes[i], fmt.Sprintf("%s[%d]", o.Sub(key), i), "action %q is not defined in machine %s; define it under actions", an, m.Name)
				ok = false
				continue
			}
			out = append(out, a)
		}
		return out, ok
	}

	// Timeouts, in state order so diagnostics and the model are stable.
	for _, st := range m.States {
		to := timeouts[st]
		if to == nil {
			continue
		}
		t := &Timeout{}
		if v, ok := to.duration("after", true); ok {
			if v <= 0 {
				d.Errorf(to.At("after"), to.Sub("after"), "%v must be above 0; set a positive duration like 5ms", v)
			}
			t.After = v
		}
		if v, ok := to.int("retries", true); ok {
			if v < 0 {
				d.Errorf(to.At("retries"), to.Sub("retries"), "%d is negative; use 0 for no retries", v)
			}
			t.Retries = v
		}
		if v, ok := to.str("resend", false); ok {
			t.Resend = action[v]
			switch {
			case t.Resend == nil:
				d.Errorf(to.At("resend"), to.Sub("resend"), "action %q is not defined in machine %s; define it under actions", v, m.Name)
			case t.Resend.Send == nil:
				d.Errorf(to.At("resend"), to.Sub("resend"), "action %s sends nothing; resend names an action with send:", v)
			}
		}
		t.Exhausted = lookupState(to, "exhausted", true)
		if t.Exhausted == st {
			d.Errorf(to.At("exhausted"), to.Sub("exhausted"), "%s cannot be its own exhausted state (the retries would never end); name the state to give up into", st.Name)
		}
		t.GiveUp, _ = lookupActions(to, "give_up")
		if st.Final {
			d.Errorf(to.Node(), to.Path(), "final state %s cannot have a timeout; remove it or make the state non-final", st.Name)
		}
		st.Timeout = t
	}
	if anyTimeout(m) {
		m.Events = append(m.Events, &Event{Name: TimeoutEvent, Doc: "The state's timer fired.", Pos: m.Pos})
	}

	if v, ok := mo.str("initial", true); ok {
		if m.Initial = state[v]; m.Initial == nil {
			d.Errorf(mo.At("initial"), mo.Sub("initial"), "state %q is not defined in machine %s; name one of its states", v, m.Name)
		}
	}

	lookupEvent := func(o *obj) *Event {
		v, ok := o.str("on", true)
		if !ok {
			broken = true
			return nil
		}
		if v == TimeoutEvent {
			broken = true
			d.Errorf(o.At("on"), o.Sub("on"), "timeout is handled by the state's timeout (retries, exhausted); remove this entry")
			return nil
		}
		ev := event[v]
		if ev == nil {
			broken = true
			d.Errorf(o.At("on"), o.Sub("on"), "event %q is not defined in machine %s; define it under events", v, m.Name)
		}
		return ev
	}
	type key struct {
		st *State
		ev *Event
	}
	seen := map[key]*yaml.Node{}
	for i, tn := range mo.list("transitions", false) {
		to := d.object(tn, fmt.Sprintf("%s[%d]", mo.Sub("transitions"), i), "from", "on", "to", "do")
		if to.Bad() {
			continue
		}
		t := &Transition{Pos: d.Pos(tn)}
		t.From = lookupState(to, "from", true)
		t.On = lookupEvent(to)
		t.To = lookupState(to, "to", true)
		acts, actsOK := lookupActions(to, "do")
		t.Actions = acts
		if t.From == nil || t.On == nil || t.To == nil || !actsOK {
			broken = true
			continue
		}
		k := key{t.From, t.On}
		if prev := seen[k]; prev != nil {
			d.Errorf(tn, to.Path(), "a second transition for (%s, %s) (first at line %d); a state handles an event once, so remove one", t.From.Name, t.On.Name, prev.Line)
			continue
		}
		seen[k] = tn
		if t.From.Final && t.To != t.From {
			d.Errorf(to.At("to"), to.Sub("to"), "final state %s may only transition to itself, not to %s; make it non-final or change to", t.From.Name, t.To.Name)
		}
		m.Transitions = append(m.Transitions, t)
	}
	ignored := map[key]*yaml.Node{}
	for i, in := range mo.list("ignore", false) {
		io := d.object(in, fmt.Sprintf("%s[%d]", mo.Sub("ignore"), i), "in", "on")
		if io.Bad() {
			continue
		}
		ig := &Ignore{Pos: d.Pos(in)}
		ig.State = lookupState(io, "in", true)
		ig.On = lookupEvent(io)
		if ig.State == nil || ig.On == nil {
			continue
		}
		k := key{ig.State, ig.On}
		if prev := seen[k]; prev != nil {
			d.Errorf(in, io.Path(), "(%s, %s) has a transition at line %d; remove the ignore or the transition", ig.State.Name, ig.On.Name, prev.Line)
			continue
		}
		if prev := ignored[k]; prev != nil {
			d.Errorf(in, io.Path(), "(%s, %s) is already ignored at line %d; remove one", ig.State.Name, ig.On.Name, prev.Line)
			continue
		}
		ignored[k] = in
		m.Ignores = append(m.Ignores, ig)
	}
	if m.Initial != nil && !broken {
		reached := reachable(m)
		for _, st := range m.States {
			if !reached[st] {
				d.Errorf(nodeOf(stateNodes, st, d), fmt.Sprintf("%s.states.%s", mo.Path(), st.Name),
					"unreachable from initial state %s; add a transition into it or remove it", m.Initial.Name)
			}
		}
	}
	return m
}

// nodeOf finds the YAML node a state was decoded from, for its position.
func nodeOf(nodes []*yaml.Node, st *State, d *decoder) *yaml.Node {
	for _, n := range nodes {
		if d.Pos(n) == st.Pos {
			return n
		}
	}
	return &yaml.Node{Line: st.Pos.Line, Column: st.Pos.Col}
}

func anyTimeout(m *Machine) bool {
	for _, st := range m.States {
		if st.Timeout != nil {
			return true
		}
	}
	return false
}

// reachable walks transitions and timeout-exhausted edges from Initial.
func reachable(m *Machine) map[*State]bool {
	seen := map[*State]bool{m.Initial: true}
	queue := []*State{m.Initial}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		var next []*State
		for _, t := range m.Transitions {
			if t.From == st {
				next = append(next, t.To)
			}
		}
		if st.Timeout != nil && st.Timeout.Exhausted != nil {
			next = append(next, st.Timeout.Exhausted)
		}
		for _, n := range next {
			if !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
	}
	return seen
}

func messageNames(s *Spec) string {
	return oneOf(s.Messages, func(m *Message) string { return m.Name })
}

// The GOOS and GOARCH values Go reads in a file name's last _ parts
// (go/build's knownOS and knownArch, reserved names included).
var (
	knownOS   = strings.Fields("aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris wasip1 windows zos")
	knownArch = strings.Fields("386 amd64 amd64p32 arm armbe arm64 arm64be loong64 mips mipsle mips64 mips64le mips64p32 mips64p32le ppc ppc64 ppc64le riscv riscv64 s390 s390x sparc sparc64 wasm")
)

// fileNameProblem says why a machine's generated file, <name>.go, would
// not be an ordinary Go file: Go reads a _test suffix as a test file and
// a _GOOS or _GOARCH suffix as a build constraint, so the machine's code
// would vanish from the package or build on one platform only.
func fileNameProblem(name string) string {
	parts := strings.Split(name, "_")
	last := parts[len(parts)-1]
	switch {
	case len(parts) < 2:
		return ""
	case last == "test":
		return "ends in _test: its generated file " + name + ".go would be a test file"
	case slices.Contains(knownOS, last):
		return "ends in _" + last + ", a GOOS: its generated file " + name + ".go would build only on " + last
	case slices.Contains(knownArch, last):
		return "ends in _" + last + ", a GOARCH: its generated file " + name + ".go would build only on " + last
	}
	return ""
}
