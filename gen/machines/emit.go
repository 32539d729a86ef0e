package machines

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// machinePkg is the engine the generated machines run on.
const machinePkg = genfile.GenrtPath + "/machine"

// maxStepActions is runtime/genrt/machine's MaxActions, the most actions
// one step carries; a test keeps the two equal.
const maxStepActions = 8

// machine holds the Go names of one machine's generated declarations.
type machine struct {
	s *spec.Spec
	m *spec.Machine
	// typ is the machine type (Origin); the others derive from it.
	typ, stateT, eventT, actionT, stepT, maxActs, table string
	// codec is the import path of the TCPMig codec package, whose Stage
	// type and constants name the messages.
	codec string
	// timeout is the built-in timeout event, nil when no state has one.
	timeout *spec.Event
}

func newMachine(s *spec.Spec, m *spec.Machine, opt genfile.Options) *machine {
	t := m.GoName()
	g := &machine{s: s, m: m, typ: t, stateT: t + "State", eventT: t + "Event", actionT: t + "Action",
		stepT: t + "Step", maxActs: "Max" + t + "Actions", table: spec.GoUnexported(t) + "Table"}
	if s.Header != nil {
		g.codec = opt.ImportRoot + "/" + s.Header.Name
	}
	for _, ev := range m.Events {
		if ev.Name == spec.TimeoutEvent {
			g.timeout = ev
		}
	}
	return g
}

func (g *machine) state(st *spec.State) string  { return g.stateT + st.GoName() }
func (g *machine) event(ev *spec.Event) string  { return g.eventT + ev.GoName() }
func (g *machine) action(a *spec.Action) string { return g.actionT + a.GoName() }

// stage is the codec's constant for a message's stage (tcpmig.StageRejected).
func (g *machine) stage(msg *spec.Message) jen.Code {
	return jen.Qual(g.codec, g.s.StageEnum().GoName()+msg.Stage.GoName())
}

// maxActions is the most actions one step can carry: the largest of any
// transition's list, any give-up list, and a resend.
func (g *machine) maxActions() int {
	n := 1
	for _, t := range g.m.Transitions {
		n = max(n, len(t.Actions))
	}
	for _, st := range g.m.States {
		if st.Timeout != nil {
			n = max(n, len(st.Timeout.GiveUp))
		}
	}
	return n
}

// docLines turns a spec doc string into comment lines after a lead.
func docLines(lead, doc string) string {
	// One line: jen writes a comment with a newline as /* */, which a doc
	// holding "*/" ends early.
	return strings.Join(strings.Fields(lead+" "+doc), " ")
}

func (g *machine) genFile(f *jen.File) {
	g.genStates(f)
	g.genEvents(f)
	g.genActions(f)
	g.genMachine(f)
	g.genTable(f)
}

// enum writes a uint8 enum type whose zero value is Invalid, with String
// (the table's names) and IsValid.
func (g *machine) enum(f *jen.File, typ, what, nameOf string, names, ids, docs []string) {
	f.Commentf("%s is %s of the %s machine. The zero value is invalid.", typ, what, g.m.Name)
	f.Type().Id(typ).Uint8()
	f.Line()
	defs := []jen.Code{
		jen.Comment(typ + "Invalid is the zero value: never a real " + strings.TrimPrefix(strings.TrimPrefix(what, "a "), "an ") + "."),
		jen.Id(typ + "Invalid").Id(typ).Op("=").Iota(),
	}
	for i, id := range ids {
		defs = append(defs, jen.Comment(docLines(id+" is "+names[i]+".", docs[i])), jen.Id(id))
	}
	f.Const().Defs(defs...)
	f.Line()
	f.Comment("String returns the spec's name for the value.")
	f.Func().Params(jen.Id("x").Id(typ)).Id("String").Params().String().Block(
		jen.Return(jen.Id(g.table).Dot(nameOf).Call(jen.Id("x"))),
	)
	f.Line()
	f.Commentf("IsValid reports whether x is one of the machine's values.")
	f.Func().Params(jen.Id("x").Id(typ)).Id("IsValid").Params().Bool().Block(
		jen.Return(jen.Id("x").Op(">").Id(typ + "Invalid").Op("&&").Id("x").Op("<=").Id(ids[len(ids)-1])),
	)
	f.Line()
}

func (g *machine) genStates(f *jen.File) {
	var names, ids, docs []string
	for _, st := range g.m.States {
		names, ids, docs = append(names, st.Name), append(ids, g.state(st)), append(docs, st.Doc)
	}
	g.enum(f, g.stateT, "a state", "StateName", names, ids, docs)

	predicate := func(name string, result jen.Code, value jen.Code, doc ...string) {
		for _, l := range doc {
			f.Comment(l)
		}
		f.Func().Params(jen.Id("x").Id(g.stateT)).Id(name).Params().Add(result).Block(jen.Return(value))
		f.Line()
	}
	of := func(method string) *jen.Statement { return jen.Id(g.table).Dot(method).Call(jen.Id("x")) }
	predicate("IsFinal", jen.Bool(), of("IsFinal"),
		"IsFinal reports whether the state ends the migration; the runtime may free the",
		"machine after a grace period.")
	predicate("HasTimeout", jen.Bool(), of("Timeout").Op(">").Lit(0),
		"HasTimeout reports whether entering the state arms a timer.")
	predicate("Timeout", jen.Qual("time", "Duration"), of("Timeout"),
		"Timeout is how long the state waits before the timer fires; 0 for a state",
		"without a timeout.")
	predicate("Retries", jen.Int(), of("Retries"),
		"Retries is how many times the state's timeout re-runs its resend before the",
		"machine gives up; 0 for a state without a timeout.")
}

func (g *machine) genEvents(f *jen.File) {
	var names, ids, docs []string
	for _, ev := range g.m.Events {
		doc := ev.Doc
		if ev.Message != nil {
			doc = strings.TrimSpace("Raised by a received " + strings.ToUpper(ev.Message.Name) + " message. " + doc)
		}
		names, ids, docs = append(names, ev.Name), append(ids, g.event(ev)), append(docs, doc)
	}
	g.enum(f, g.eventT, "an event", "EventName", names, ids, docs)

	var cases []jen.Code
	for _, ev := range g.m.Events {
		if ev.Message != nil && ev.Message.Stage != nil {
			cases = append(cases, jen.Case(g.stage(ev.Message)).Block(jen.Return(jen.Id(g.event(ev)), jen.True())))
		}
	}
	var body []jen.Code
	if len(cases) > 0 {
		body = append(body, jen.Switch(jen.Id("stage")).Block(cases...))
	}
	body = append(body, jen.Return(jen.Id(g.eventT+"Invalid"), jen.False()))
	f.Commentf("%sForStage maps the stage of a received TCPMig message to the event it raises", g.eventT)
	f.Comment("in this machine; false when the machine has no event for that message.")
	f.Func().Id(g.eventT+"ForStage").Params(jen.Id("stage").Qual(g.codec, g.s.StageEnum().GoName())).Params(jen.Id(g.eventT), jen.Bool()).Block(body...)
	f.Line()
}

func (g *machine) genActions(f *jen.File) {
	var names, ids, docs []string
	for _, a := range g.m.Actions {
		doc := a.Doc
		if a.Send != nil {
			doc = strings.TrimSpace("Sends a " + strings.ToUpper(a.Send.Name) + " message. " + doc)
		}
		names, ids, docs = append(names, a.Name), append(ids, g.action(a)), append(docs, doc)
	}
	g.enum(f, g.actionT, "an action", "ActionName", names, ids, docs)

	var sends, stages []jen.Code
	for _, a := range g.m.Actions {
		if a.Send == nil {
			continue
		}
		sends = append(sends, jen.Case(jen.Id(g.action(a))).Block(jen.Return(jen.Lit(a.Send.Name))))
		if a.Send.Stage != nil {
			stages = append(stages, jen.Case(jen.Id(g.action(a))).Block(jen.Return(g.stage(a.Send), jen.True())))
		}
	}
	f.Comment("Sends names the message the action sends, or \"\" for an action that sends none.")
	f.Func().Params(jen.Id("x").Id(g.actionT)).Id("Sends").Params().String().Block(
		jen.Switch(jen.Id("x")).Block(sends...),
		jen.Return(jen.Lit("")),
	)
	f.Line()
	f.Comment("SendStage is the TCPMig stage of the message the action sends; false for an")
	f.Comment("action that sends none.")
	f.Func().Params(jen.Id("x").Id(g.actionT)).Id("SendStage").Params().Params(jen.Qual(g.codec, g.s.StageEnum().GoName()), jen.Bool()).Block(
		jen.Switch(jen.Id("x")).Block(stages...),
		jen.Return(jen.Lit(0), jen.False()),
	)
	f.Line()
}

// types are the machine's three enums, the engine's type arguments.
func (g *machine) types() []jen.Code {
	return []jen.Code{jen.Id(g.stateT), jen.Id(g.eventT), jen.Id(g.actionT)}
}

// genMachine writes the machine type: a typed face over the engine's
// Machine, run by the machine's table.
func (g *machine) genMachine(f *jen.File) {
	f.Commentf("%s bounds the actions of one step: the longest action list in the spec.", g.maxActs)
	f.Const().Id(g.maxActs).Op("=").Lit(g.maxActions())
	f.Line()
	f.Commentf("%s is what one Handle call decided. Carry out StopTimer, then Actions()", g.stepT)
	f.Comment("in order, then ArmTimer.")
	f.Type().Id(g.stepT).Op("=").Qual(machinePkg, "Step").Types(g.types()...)
	f.Line()
	f.Comment(docLines(fmt.Sprintf("%s is the %s migration state machine.", g.typ, g.m.Name), g.m.Doc))
	f.Commentf("The zero value is invalid: make one with New%s.", g.typ)
	f.Type().Id(g.typ).Struct(jen.Id("m").Qual(machinePkg, "Machine").Types(jen.Id(g.stateT)))
	f.Line()
	recv := func() *jen.Statement { return f.Func().Params(jen.Id("m").Op("*").Id(g.typ)) }
	f.Commentf("New%s returns a machine in the initial state, %s.", g.typ, g.m.Initial.Name)
	f.Func().Id("New" + g.typ).Params().Id(g.typ).Block(jen.Return(jen.Id(g.typ).Values(field("m", jen.Id(g.table).Dot("New").Call()))))
	f.Line()
	f.Comment("State returns the current state.")
	recv().Id("State").Params().Id(g.stateT).Block(jen.Return(jen.Id("m").Dot("m").Dot("State").Call()))
	f.Line()
	f.Comment("RetriesLeft returns how many retries the current state's timeout has left.")
	recv().Id("RetriesLeft").Params().Int().Block(jen.Return(jen.Id("m").Dot("m").Dot("RetriesLeft").Call()))
	f.Line()
	if g.m.Initial.Timeout != nil {
		f.Comment("StartTimer is the timer to arm for the initial state, which has a timeout.")
		recv().Id("StartTimer").Params().Qual("time", "Duration").Block(jen.Return(jen.Id(g.state(g.m.Initial)).Dot("Timeout").Call()))
		f.Line()
	}
	f.Comment("Handle applies ev. It returns the step to carry out, or an error that leaves the")
	f.Comment("machine unchanged: an *EventError (wrapping ErrUnexpectedEvent) for an event the")
	f.Comment("state neither handles nor ignores, ErrInvalidState for the zero machine,")
	f.Comment("ErrInvalidEvent for an event value outside the machine's events.")
	recv().Id("Handle").Params(jen.Id("ev").Id(g.eventT)).Params(jen.Id(g.stepT), jen.Error()).Block(
		jen.Return(jen.Id(g.table).Dot("Handle").Call(jen.Op("&").Id("m").Dot("m"), jen.Id("ev"))),
	)
	f.Line()
}

// genTable writes the machine as the spec declares it: what the engine
// runs.
func (g *machine) genTable(f *jen.File) {
	var states, events, actions, transitions, ignores []jen.Code
	for _, st := range g.m.States {
		fields := []jen.Code{field("Name", jen.Lit(st.Name))}
		if st.Final {
			fields = append(fields, field("Final", jen.True()))
		}
		to := st.Timeout
		if to == nil {
			states = append(states, field(g.state(st), line(fields...)))
			continue
		}
		fields = append(fields, field("After", durationCode(to.After)), field("Retries", jen.Lit(to.Retries)))
		if to.Resend != nil {
			fields = append(fields, field("Resend", jen.Id(g.action(to.Resend))))
		}
		fields = append(fields, field("Exhausted", jen.Id(g.state(to.Exhausted))))
		if len(to.GiveUp) > 0 {
			fields = append(fields, field("GiveUp", g.actions(to.GiveUp)))
		}
		// a field per line: a timed state's policy is too long for one
		states = append(states, field(g.state(st), lines(fields...)))
	}
	for _, ev := range g.m.Events {
		events = append(events, field(g.event(ev), jen.Lit(ev.Name)))
	}
	for _, a := range g.m.Actions {
		actions = append(actions, field(g.action(a), jen.Lit(a.Name)))
	}
	for _, t := range g.m.Transitions {
		fields := []jen.Code{field("From", jen.Id(g.state(t.From))), field("On", jen.Id(g.event(t.On))), field("To", jen.Id(g.state(t.To)))}
		if len(t.Actions) > 0 {
			fields = append(fields, field("Do", g.actions(t.Actions)))
		}
		transitions = append(transitions, line(fields...))
	}
	for _, ig := range g.m.Ignores {
		ignores = append(ignores, line(field("In", jen.Id(g.state(ig.State))), field("On", jen.Id(g.event(ig.On)))))
	}
	spec := []jen.Code{
		field("Name", jen.Lit(g.m.Name)),
		field("New", jen.Lit("New"+g.typ)),
		field("Initial", jen.Id(g.state(g.m.Initial))),
	}
	if g.timeout != nil {
		spec = append(spec, field("Timeout", jen.Id(g.event(g.timeout))))
	}
	spec = append(spec,
		field("States", jen.Index().Qual(machinePkg, "State").Types(jen.Id(g.stateT), jen.Id(g.actionT)).Add(lines(states...))),
		field("Events", jen.Index().String().Add(lines(events...))),
		field("Actions", jen.Index().String().Add(lines(actions...))),
	)
	if len(transitions) > 0 {
		spec = append(spec, field("Transitions", jen.Index().Qual(machinePkg, "Transition").Types(g.types()...).Add(lines(transitions...))))
	}
	if len(ignores) > 0 {
		spec = append(spec, field("Ignores", jen.Index().Qual(machinePkg, "Ignore").Types(jen.Id(g.stateT), jen.Id(g.eventT)).Add(lines(ignores...))))
	}
	f.Commentf("%s is the %s machine as the spec declares it; runtime/genrt/machine runs it.", g.table, g.m.Name)
	f.Var().Id(g.table).Op("=").Qual(machinePkg, "NewTable").Call(
		jen.Qual(machinePkg, "Spec").Types(g.types()...).Add(lines(spec...)),
	)
}

// actions is a literal list of actions.
func (g *machine) actions(as []*spec.Action) jen.Code {
	ids := make([]jen.Code, len(as))
	for i, a := range as {
		ids[i] = jen.Id(g.action(a))
	}
	return jen.Index().Id(g.actionT).Values(ids...)
}

// field is one key: value of a composite literal.
func field(key string, value jen.Code) jen.Code { return jen.Id(key).Op(":").Add(value) }

// line is a composite literal's braces on one line; lines puts one
// element per line.
func line(elems ...jen.Code) *jen.Statement { return jen.Values(elems...) }

func lines(elems ...jen.Code) *jen.Statement {
	return jen.Custom(jen.Options{Open: "{", Close: "}", Separator: ",", Multi: true}, elems...)
}
