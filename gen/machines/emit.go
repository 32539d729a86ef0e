package machines

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/spec"
)

// machine holds the Go names of one machine's generated declarations.
type machine struct {
	s *spec.Spec
	m *spec.Machine
	// typ is the machine type (Origin); the others derive from it.
	typ, stateT, eventT, actionT, stepT, maxActs string
	// recv is the receiver name of the machine's methods.
	recv string
	// timeout is the built-in timeout event, nil when no state has one.
	timeout *spec.Event
}

func newMachine(s *spec.Spec, m *spec.Machine) *machine {
	t := m.GoName()
	g := &machine{s: s, m: m, typ: t, stateT: t + "State", eventT: t + "Event", actionT: t + "Action",
		stepT: t + "Step", maxActs: "Max" + t + "Actions", recv: "m"}
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
	doc = strings.TrimSpace(doc)
	if doc == "" {
		return lead
	}
	return lead + " " + doc
}

func (g *machine) genFile(f *jen.File) {
	g.genStates(f)
	g.genEvents(f)
	g.genActions(f)
	g.genStep(f)
	g.genMachine(f)
	g.genHandle(f)
	g.genErrors(f)
}

// enum writes a uint8 enum type whose zero value is Invalid, with String
// and IsValid.
func (g *machine) enum(f *jen.File, typ, what string, names, ids, docs []string) {
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
	var cases []jen.Code
	for i, id := range ids {
		cases = append(cases, jen.Case(jen.Id(id)).Block(jen.Return(jen.Lit(names[i]))))
	}
	cases = append(cases, jen.Case(jen.Id(typ+"Invalid")).Block(jen.Return(jen.Lit("invalid"))))
	f.Comment("String returns the spec's name for the value.")
	f.Func().Params(jen.Id("x").Id(typ)).Id("String").Params().String().Block(
		jen.Switch(jen.Id("x")).Block(cases...),
		jen.Return(jen.Qual("strconv", "Itoa").Call(jen.Int().Call(jen.Id("x")))).Comment("out of range; only a conversion makes one"),
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
	g.enum(f, g.stateT, "a state", names, ids, docs)

	var finals, timed []jen.Code
	var timeoutCases, retryCases []jen.Code
	for _, st := range g.m.States {
		if st.Final {
			finals = append(finals, jen.Id(g.state(st)))
		}
		if st.Timeout != nil {
			timed = append(timed, jen.Id(g.state(st)))
			timeoutCases = append(timeoutCases, jen.Case(jen.Id(g.state(st))).Block(jen.Return(durationCode(st.Timeout.After))))
			retryCases = append(retryCases, jen.Case(jen.Id(g.state(st))).Block(jen.Return(jen.Lit(st.Timeout.Retries))))
		}
	}
	f.Comment("IsFinal reports whether the state ends the migration; the runtime may free the")
	f.Comment("machine after a grace period.")
	f.Func().Params(jen.Id("x").Id(g.stateT)).Id("IsFinal").Params().Bool().Block(membership(finals)...)
	f.Line()
	f.Comment("HasTimeout reports whether entering the state arms a timer.")
	f.Func().Params(jen.Id("x").Id(g.stateT)).Id("HasTimeout").Params().Bool().Block(membership(timed)...)
	f.Line()
	f.Comment("Timeout is how long the state waits before the timer fires; 0 for a state")
	f.Comment("without a timeout.")
	f.Func().Params(jen.Id("x").Id(g.stateT)).Id("Timeout").Params().Qual("time", "Duration").Block(
		jen.Switch(jen.Id("x")).Block(timeoutCases...),
		jen.Return(jen.Lit(0)),
	)
	f.Line()
	f.Comment("Retries is how many times the state's timeout re-runs its resend before the")
	f.Comment("machine gives up; 0 for a state without a timeout.")
	f.Func().Params(jen.Id("x").Id(g.stateT)).Id("Retries").Params().Int().Block(
		jen.Switch(jen.Id("x")).Block(retryCases...),
		jen.Return(jen.Lit(0)),
	)
	f.Line()
}

// membership is the body of a predicate true for the listed values.
func membership(ids []jen.Code) []jen.Code {
	if len(ids) == 0 {
		return []jen.Code{jen.Return(jen.False())}
	}
	return []jen.Code{
		jen.Switch(jen.Id("x")).Block(jen.Case(ids...).Block(jen.Return(jen.True()))),
		jen.Return(jen.False()),
	}
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
	g.enum(f, g.eventT, "an event", names, ids, docs)

	var cases []jen.Code
	for _, ev := range g.m.Events {
		if ev.Message != nil && ev.Message.Stage != nil {
			cases = append(cases, jen.Case(jen.Lit(int(ev.Message.Stage.Value))).Block(
				jen.Comment(ev.Message.Stage.Name),
				jen.Return(jen.Id(g.event(ev)), jen.True())))
		}
	}
	body := []jen.Code{jen.Return(jen.Id(g.eventT+"Invalid"), jen.False())}
	if len(cases) > 0 {
		body = append([]jen.Code{jen.Switch(jen.Id("stage")).Block(cases...)}, body...)
	} else {
		body = append([]jen.Code{jen.Id("_").Op("=").Id("stage")}, body...)
	}
	f.Commentf("%sForStage maps the stage of a received TCPMig message to the event it raises", g.eventT)
	f.Comment("in this machine; false when the machine has no event for that message.")
	f.Func().Id(g.eventT+"ForStage").Params(jen.Id("stage").Uint8()).Params(jen.Id(g.eventT), jen.Bool()).Block(body...)
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
	g.enum(f, g.actionT, "an action", names, ids, docs)

	var sends, stages []jen.Code
	for _, a := range g.m.Actions {
		if a.Send == nil {
			continue
		}
		sends = append(sends, jen.Case(jen.Id(g.action(a))).Block(jen.Return(jen.Lit(a.Send.Name))))
		if a.Send.Stage != nil {
			stages = append(stages, jen.Case(jen.Id(g.action(a))).Block(jen.Return(jen.Lit(int(a.Send.Stage.Value)), jen.True())))
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
	f.Func().Params(jen.Id("x").Id(g.actionT)).Id("SendStage").Params().Params(jen.Uint8(), jen.Bool()).Block(
		jen.Switch(jen.Id("x")).Block(stages...),
		jen.Return(jen.Lit(0), jen.False()),
	)
	f.Line()
}

func (g *machine) genStep(f *jen.File) {
	f.Commentf("%s bounds the actions of one step: the longest action list in the spec.", g.maxActs)
	f.Const().Id(g.maxActs).Op("=").Lit(g.maxActions())
	f.Line()
	f.Commentf("%s is what one Handle call decided. Carry out StopTimer, then Actions()", g.stepT)
	f.Comment("in order, then ArmTimer.")
	f.Type().Id(g.stepT).Struct(
		jen.Comment("From and To are the states before and after; equal for a retry, an"),
		jen.Comment("ignored event and a self-transition."),
		jen.List(jen.Id("From"), jen.Id("To")).Id(g.stateT),
		jen.Id("Event").Id(g.eventT),
		jen.Comment("Ignored is set when the spec lists (From, Event) as a duplicate or stale"),
		jen.Comment("message to accept without change, or for a stale timer."),
		jen.Id("Ignored").Bool(),
		jen.Comment("Retry is the retry number (1 for the first) when a timeout re-ran the"),
		jen.Comment("state's resend; 0 otherwise."),
		jen.Id("Retry").Int(),
		jen.Comment("StopTimer is set when the step left a state with a timeout."),
		jen.Id("StopTimer").Bool(),
		jen.Comment("ArmTimer is set when the step entered (or re-entered, or retried in) a state"),
		jen.Comment("with a timeout: start the timer for TimerAfter, replacing any pending one."),
		jen.Id("ArmTimer").Bool(),
		jen.Id("TimerAfter").Qual("time", "Duration"),
		jen.Id("actions").Index(jen.Id(g.maxActs)).Id(g.actionT),
		jen.Id("n").Uint8(),
	)
	f.Line()
	f.Comment("Actions returns the actions to carry out, in order. The slice aliases the step.")
	f.Func().Params(jen.Id("s").Op("*").Id(g.stepT)).Id("Actions").Params().Index().Id(g.actionT).Block(
		jen.Return(jen.Id("s").Dot("actions").Index(jen.Op(":").Id("s").Dot("n"))),
	)
	f.Line()
	f.Comment("add appends an action; the generator sized the array for the longest list.")
	f.Func().Params(jen.Id("s").Op("*").Id(g.stepT)).Id("add").Params(jen.Id("a").Id(g.actionT)).Block(
		jen.Id("s").Dot("actions").Index(jen.Id("s").Dot("n")).Op("=").Id("a"),
		jen.Id("s").Dot("n").Op("++"),
	)
	f.Line()
}

func (g *machine) genMachine(f *jen.File) {
	doc := strings.TrimSpace(g.m.Doc)
	f.Commentf("%s is the %s migration state machine. %s", g.typ, g.m.Name, doc)
	f.Commentf("The zero value is invalid: make one with New%s.", g.typ)
	f.Type().Id(g.typ).Struct(
		jen.Id("state").Id(g.stateT),
		jen.Comment("retries left in the current state's timeout"),
		jen.Id("retries").Int(),
	)
	f.Line()
	f.Commentf("New%s returns a machine in the initial state, %s.", g.typ, g.m.Initial.Name)
	init := []jen.Code{jen.Id("m").Op(":=").Id(g.typ).Values(jen.Dict{jen.Id("state"): jen.Id(g.state(g.m.Initial))})}
	if g.m.Initial.Timeout != nil {
		init = append(init, jen.Id("m").Dot("retries").Op("=").Id(g.state(g.m.Initial)).Dot("Retries").Call())
	}
	init = append(init, jen.Return(jen.Id("m")))
	f.Func().Id("New" + g.typ).Params().Id(g.typ).Block(init...)
	f.Line()
	f.Comment("State returns the current state.")
	f.Func().Params(jen.Id("m").Op("*").Id(g.typ)).Id("State").Params().Id(g.stateT).Block(jen.Return(jen.Id("m").Dot("state")))
	f.Line()
	f.Comment("RetriesLeft returns how many retries the current state's timeout has left.")
	f.Func().Params(jen.Id("m").Op("*").Id(g.typ)).Id("RetriesLeft").Params().Int().Block(jen.Return(jen.Id("m").Dot("retries")))
	f.Line()
	if g.m.Initial.Timeout != nil {
		f.Comment("StartTimer is the timer to arm for the initial state, which has a timeout.")
		f.Func().Params(jen.Id("m").Op("*").Id(g.typ)).Id("StartTimer").Params().Qual("time", "Duration").Block(
			jen.Return(jen.Id(g.state(g.m.Initial)).Dot("Timeout").Call()))
		f.Line()
	}
	f.Comment("enter is the one place the state changes: it stops the timer of a timed state")
	f.Comment("being left, arms the timer of a timed state being entered (a self-transition")
	f.Comment("re-enters) and resets its retries.")
	f.Func().Params(jen.Id("m").Op("*").Id(g.typ)).Id("enter").Params(jen.Id("step").Op("*").Id(g.stepT), jen.Id("to").Id(g.stateT)).Block(
		jen.If(jen.Id("m").Dot("state").Dot("HasTimeout").Call().Op("&&").Id("to").Op("!=").Id("m").Dot("state")).Block(
			jen.Id("step").Dot("StopTimer").Op("=").True(),
		),
		jen.Id("m").Dot("state").Op("=").Id("to"),
		jen.Id("m").Dot("retries").Op("=").Id("to").Dot("Retries").Call(),
		jen.If(jen.Id("to").Dot("HasTimeout").Call()).Block(
			jen.Id("step").Dot("ArmTimer").Op("=").True(),
			jen.Id("step").Dot("TimerAfter").Op("=").Id("to").Dot("Timeout").Call(),
		),
		jen.Id("step").Dot("To").Op("=").Id("to"),
	)
	f.Line()
	if g.timeout != nil {
		f.Comment("retry spends one retry of the current state and re-arms its timer.")
		f.Func().Params(jen.Id("m").Op("*").Id(g.typ)).Id("retry").Params(jen.Id("step").Op("*").Id(g.stepT)).Block(
			jen.Id("m").Dot("retries").Op("--"),
			jen.Id("step").Dot("Retry").Op("=").Id("m").Dot("state").Dot("Retries").Call().Op("-").Id("m").Dot("retries"),
			jen.Id("step").Dot("ArmTimer").Op("=").True(),
			jen.Id("step").Dot("TimerAfter").Op("=").Id("m").Dot("state").Dot("Timeout").Call(),
		)
		f.Line()
	}
}

// genHandle writes Handle: one case per state, one per handled event.
func (g *machine) genHandle(f *jen.File) {
	var stateCases []jen.Code
	for _, st := range g.m.States {
		var evCases []jen.Code
		for _, t := range g.m.Transitions {
			if t.From != st {
				continue
			}
			body := []jen.Code{}
			for _, a := range t.Actions {
				body = append(body, jen.Id("step").Dot("add").Call(jen.Id(g.action(a))))
			}
			body = append(body, jen.Id("m").Dot("enter").Call(jen.Op("&").Id("step"), jen.Id(g.state(t.To))), jen.Return(jen.Id("step"), jen.Nil()))
			evCases = append(evCases, jen.Case(jen.Id(g.event(t.On))).Block(body...))
		}
		var ignored []jen.Code
		for _, ig := range g.m.Ignores {
			if ig.State == st {
				ignored = append(ignored, jen.Id(g.event(ig.On)))
			}
		}
		if len(ignored) > 0 {
			evCases = append(evCases, jen.Case(ignored...).Block(
				jen.Comment("duplicates and stale messages, as the spec lists them"),
				jen.Id("step").Dot("Ignored").Op("=").True(),
				jen.Return(jen.Id("step"), jen.Nil()),
			))
		}
		if to := st.Timeout; to != nil {
			retry := []jen.Code{jen.Id("m").Dot("retry").Call(jen.Op("&").Id("step"))}
			if to.Resend != nil {
				retry = append(retry, jen.Id("step").Dot("add").Call(jen.Id(g.action(to.Resend))))
			}
			retry = append(retry, jen.Return(jen.Id("step"), jen.Nil()))
			giveUp := []jen.Code{}
			for _, a := range to.GiveUp {
				giveUp = append(giveUp, jen.Id("step").Dot("add").Call(jen.Id(g.action(a))))
			}
			giveUp = append(giveUp, jen.Id("m").Dot("enter").Call(jen.Op("&").Id("step"), jen.Id(g.state(to.Exhausted))), jen.Return(jen.Id("step"), jen.Nil()))
			caseBody := append([]jen.Code{
				jen.If(jen.Id("m").Dot("retries").Op(">").Lit(0)).Block(retry...),
				jen.Comment("retries used up: give up"),
			}, giveUp...)
			evCases = append(evCases, jen.Case(jen.Id(g.event(g.timeout))).Block(caseBody...))
		}
		if len(evCases) > 0 {
			stateCases = append(stateCases, jen.Case(jen.Id(g.state(st))).Block(jen.Switch(jen.Id("ev")).Block(evCases...)))
		}
	}
	body := []jen.Code{
		jen.Id("step").Op(":=").Id(g.stepT).Values(jen.Dict{jen.Id("From"): jen.Id("m").Dot("state"), jen.Id("To"): jen.Id("m").Dot("state"), jen.Id("Event"): jen.Id("ev")}),
		jen.If(jen.Op("!").Id("m").Dot("state").Dot("IsValid").Call()).Block(jen.Return(jen.Id("step"), jen.Id("err"+g.typ+"InvalidState"))),
		jen.If(jen.Op("!").Id("ev").Dot("IsValid").Call()).Block(jen.Return(jen.Id("step"), jen.Id("err"+g.typ+"InvalidEvent"))),
		jen.Switch(jen.Id("m").Dot("state")).Block(stateCases...),
	}
	if g.timeout != nil {
		body = append(body,
			jen.If(jen.Id("ev").Op("==").Id(g.event(g.timeout))).Block(
				jen.Comment("a timer that fired after its state was left"),
				jen.Id("step").Dot("Ignored").Op("=").True(),
				jen.Return(jen.Id("step"), jen.Nil()),
			))
	}
	body = append(body, jen.Return(jen.Id("step"), jen.Id("err"+g.typ+"Unexpected").Index(jen.Id("m").Dot("state")).Index(jen.Id("ev"))))
	f.Comment("Handle applies ev. It returns the step to carry out, or an error that leaves the")
	f.Comment("machine unchanged: an *EventError (wrapping ErrUnexpectedEvent) for an event the")
	f.Comment("state neither handles nor ignores, ErrInvalidState for the zero machine,")
	f.Comment("ErrInvalidEvent for an event value outside the machine's events.")
	f.Func().Params(jen.Id("m").Op("*").Id(g.typ)).Id("Handle").Params(jen.Id("ev").Id(g.eventT)).Params(jen.Id(g.stepT), jen.Error()).Block(body...)
	f.Line()
}

// genErrors writes the errors Handle returns, built once so Handle does
// not allocate even when it fails.
func (g *machine) genErrors(f *jen.File) {
	ns, ne := len(g.m.States)+1, len(g.m.Events)+1
	f.Var().Defs(
		jen.Id("err"+g.typ+"InvalidState").Op("=").Qual("fmt", "Errorf").Call(jen.Lit(fmt.Sprintf("migstate: %s machine: %%w (make it with New%s)", g.m.Name, g.typ)), jen.Id("ErrInvalidState")),
		jen.Id("err"+g.typ+"InvalidEvent").Op("=").Qual("fmt", "Errorf").Call(jen.Lit(fmt.Sprintf("migstate: %s machine: %%w (use one of the %s constants)", g.m.Name, g.eventT)), jen.Id("ErrInvalidEvent")),
		jen.Comment("err"+g.typ+"Unexpected holds the *EventError of every (state, event)."),
		jen.Id("err"+g.typ+"Unexpected").Op("=").Func().Params().Params(jen.Id("t").Index(jen.Lit(ns)).Index(jen.Lit(ne)).Error()).Block(
			jen.For(jen.Id("s").Op(":=").Range().Id("t")).Block(
				jen.For(jen.Id("e").Op(":=").Range().Id("t").Index(jen.Id("s"))).Block(
					jen.Id("t").Index(jen.Id("s")).Index(jen.Id("e")).Op("=").Op("&").Id("EventError").Values(jen.Dict{
						jen.Id("Machine"): jen.Lit(g.m.Name),
						jen.Id("State"):   jen.Id(g.stateT).Call(jen.Id("s")).Dot("String").Call(),
						jen.Id("Event"):   jen.Id(g.eventT).Call(jen.Id("e")).Dot("String").Call(),
					}),
				),
			),
			jen.Return(jen.Id("t")),
		).Call(),
	)
}
