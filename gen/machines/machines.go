// Package machines emits the migration state machines of a spec as Go
// (generated/migstate/<machine>.go, with jennifer) and as Graphviz DOT
// (generated/migstate/<machine>.dot) for the docs.
//
// The Go follows gVisor's endpoint states: typed State, Event and Action
// enums whose zero value is invalid, predicates over states, and one choke
// point (enter) through which every state change passes, so the timer and
// retry bookkeeping lives in one place. Handle never panics and never
// allocates: actions come back in a fixed-size array, and every error it
// can return is built once at package init.
package machines

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// Dir is the output directory below the generated root.
const Dir = "migstate"

// ErrBadMachine is wrapped by every error Generate returns for a spec the
// Go output cannot represent.
var ErrBadMachine = errors.New("machine cannot be generated")

// Generate emits doc.go and, per machine, <machine>.go and <machine>.dot.
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	if err := check(s); err != nil {
		return nil, err
	}
	files := genfile.Files{}
	doc, err := render(s, opt, "doc.go", func(f *jen.File) { genDoc(f, s) })
	if err != nil {
		return nil, err
	}
	if err := files.Add(Dir+"/doc.go", doc); err != nil {
		return nil, err
	}
	for _, m := range s.Machines {
		g := newMachine(s, m)
		src, err := render(s, opt, m.Name+".go", g.genFile)
		if err != nil {
			return nil, err
		}
		if err := files.Add(Dir+"/"+m.Name+".go", src); err != nil {
			return nil, err
		}
		if err := files.Add(Dir+"/"+m.Name+".dot", dot(s, m, opt)); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// check refuses what would produce Go that does not compile: identifiers
// that collide after CamelCasing, a machine file that would overwrite
// doc.go, more states or events than a uint8 enum holds.
func check(s *spec.Spec) error {
	seen := map[string]string{}
	claim := func(id, what string) error {
		if prev, dup := seen[id]; dup {
			return fmt.Errorf("%s and %s both become the Go identifier %s; rename one: %w", prev, what, id, ErrBadMachine)
		}
		seen[id] = what
		return nil
	}
	for _, id := range sharedIdents {
		seen[id] = "the package's own " + id
	}
	for _, m := range s.Machines {
		if m.Name == "doc" {
			return fmt.Errorf("machine %q would overwrite %s/doc.go; rename it: %w", m.Name, Dir, ErrBadMachine)
		}
		if m.Initial == nil {
			return fmt.Errorf("machine %s has no initial state: %w", m.Name, ErrBadMachine)
		}
		if len(m.States) > 254 || len(m.Events) > 254 || len(m.Actions) > 254 {
			return fmt.Errorf("machine %s has more than 254 states, events or actions (uint8 enums): %w", m.Name, ErrBadMachine)
		}
		g := newMachine(s, m)
		ids := []struct{ id, what string }{
			{g.typ, "machine " + m.Name}, {g.stateT, "machine " + m.Name + "'s state type"},
			{g.eventT, "machine " + m.Name + "'s event type"}, {g.actionT, "machine " + m.Name + "'s action type"},
			{g.stepT, "machine " + m.Name + "'s step type"}, {"New" + g.typ, "machine " + m.Name + "'s constructor"},
			{g.maxActs, "machine " + m.Name + "'s action bound"}, {g.eventT + "ForStage", "machine " + m.Name + "'s stage lookup"},
			{g.stateT + "Invalid", "machine " + m.Name + "'s invalid state"}, {g.eventT + "Invalid", "machine " + m.Name + "'s invalid event"},
			{g.actionT + "Invalid", "machine " + m.Name + "'s invalid action"},
		}
		for _, st := range m.States {
			ids = append(ids, struct{ id, what string }{g.state(st), "state " + m.Name + "." + st.Name})
		}
		for _, ev := range m.Events {
			ids = append(ids, struct{ id, what string }{g.event(ev), "event " + m.Name + "." + ev.Name})
		}
		for _, a := range m.Actions {
			ids = append(ids, struct{ id, what string }{g.action(a), "action " + m.Name + "." + a.Name})
		}
		for _, x := range ids {
			if err := claim(x.id, x.what); err != nil {
				return err
			}
		}
	}
	return nil
}

// sharedIdents are the exported names doc.go declares.
var sharedIdents = []string{"SpecFingerprint", "ErrUnexpectedEvent", "ErrInvalidState", "ErrInvalidEvent", "EventError"}

func render(s *spec.Spec, opt genfile.Options, name string, body func(*jen.File)) ([]byte, error) {
	f := jen.NewFile("migstate")
	f.HeaderComment(strings.TrimSuffix(genfile.Header(s, opt, "// "), "\n"))
	body(f)
	var buf bytes.Buffer
	if err := f.Render(&buf); err != nil {
		return nil, fmt.Errorf("%s/%s: render: %w", Dir, name, err)
	}
	return genfile.FormatGo(Dir+"/"+name, buf.Bytes())
}

// genDoc writes the package documentation and what every machine shares.
func genDoc(f *jen.File, s *spec.Spec) {
	var names []string
	for _, m := range s.Machines {
		names = append(names, m.Name)
	}
	for _, l := range []string{
		"Package migstate holds the migration state machines of the " + s.Name + " spec (" + strings.Join(names, ", ") + ").",
		"",
		"Each machine is a value (New<Machine>() starts it in its initial state) whose Handle",
		"method applies one event and returns the step to carry out: the actions in order and",
		"what to do with the state's timer. Apply a step's StopTimer before its ArmTimer.",
		"Handle never panics and never allocates; an event the current state does not expect",
		"is an *EventError wrapping ErrUnexpectedEvent and leaves the machine unchanged.",
		"",
		"A timer event in a state without a timeout (a timer that fired after its state was",
		"left) is ignored, since a runtime cannot always stop a timer before it fires.",
		"",
		"Each machine has a Graphviz drawing beside its Go file (<machine>.dot).",
	} {
		f.PackageComment(l)
	}
	f.Comment("SpecFingerprint is the fingerprint of the spec these machines come from; a runtime")
	f.Comment("compares it with the codec's and the switch's to refuse a mix of specs.")
	f.Const().Id("SpecFingerprint").Op("=").Lit(s.Fingerprint)
	f.Line()
	f.Var().Defs(
		jen.Comment("ErrUnexpectedEvent is wrapped by the *EventError Handle returns for an event"),
		jen.Comment("the current state neither handles nor ignores."),
		jen.Id("ErrUnexpectedEvent").Op("=").Qual("errors", "New").Call(jen.Lit("unexpected event")),
		jen.Comment("ErrInvalidState is returned by Handle on a machine that was not made by its"),
		jen.Comment("New function (the zero value)."),
		jen.Id("ErrInvalidState").Op("=").Qual("errors", "New").Call(jen.Lit("invalid state")),
		jen.Comment("ErrInvalidEvent is returned by Handle for an event value that is not one of the"),
		jen.Comment("machine's events (the zero value, or out of range)."),
		jen.Id("ErrInvalidEvent").Op("=").Qual("errors", "New").Call(jen.Lit("invalid event")),
	)
	f.Line()
	f.Comment("EventError says which machine, in which state, got which unexpected event.")
	f.Type().Id("EventError").Struct(
		jen.List(jen.Id("Machine"), jen.Id("State"), jen.Id("Event")).String(),
	)
	f.Line()
	f.Func().Params(jen.Id("e").Op("*").Id("EventError")).Id("Error").Params().String().Block(
		jen.Return(jen.Lit("migstate: ").Op("+").Id("e").Dot("Machine").Op("+").Lit(" machine in state ").Op("+").
			Id("e").Dot("State").Op("+").Lit(" does not expect event ").Op("+").Id("e").Dot("Event")),
	)
	f.Line()
	f.Comment("Unwrap makes errors.Is(err, ErrUnexpectedEvent) hold.")
	f.Func().Params(jen.Id("e").Op("*").Id("EventError")).Id("Unwrap").Params().Error().Block(
		jen.Return(jen.Id("ErrUnexpectedEvent")),
	)
}

// durationCode writes d as a readable constant such as 5 * time.Millisecond.
func durationCode(d time.Duration) jen.Code {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "Hour"}, {time.Minute, "Minute"}, {time.Second, "Second"}, {time.Millisecond, "Millisecond"}, {time.Microsecond, "Microsecond"}} {
		if d%u.unit == 0 {
			return jen.Lit(int(d/u.unit)).Op("*").Qual("time", u.name)
		}
	}
	return jen.Qual("time", "Duration").Call(jen.Lit(int64(d)))
}
