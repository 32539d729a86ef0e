// Package machines emits the migration state machines of a spec as Go
// (generated/migstate/<machine>.go, with jennifer) and as Graphviz DOT
// (generated/migstate/<machine>.dot) for the docs.
//
// The Go is what the spec decides and nothing more: typed State, Event and
// Action enums whose zero value is invalid (gVisor's endpoint states), the
// TCPMig stages in tcpmig's own constants, and each machine's table of
// states, timers, transitions and ignores. The engine that runs a table
// (Handle, the one choke point through which a state changes, timers and
// retries) is hand-written in runtime/genrt/machine, as protoimpl is under
// protoc-gen-go's output.
package machines

import (
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
	if opt.ImportRoot == "" {
		opt.ImportRoot = genfile.DefaultImportRoot
	}
	if err := check(s, opt); err != nil {
		return nil, err
	}
	files := genfile.Files{}
	add := func(name string, body func(*jen.File)) error {
		src, err := genfile.GoFile(s, opt, Dir+"/"+name, Dir, body)
		if err != nil {
			return err
		}
		return files.Add(Dir+"/"+name, src)
	}
	if err := add("doc.go", func(f *jen.File) { genDoc(f, s) }); err != nil {
		return nil, err
	}
	for _, m := range s.Machines {
		if err := add(m.Name+".go", newMachine(s, m, opt).genFile); err != nil {
			return nil, err
		}
		if err := files.Add(Dir+"/"+m.Name+".dot", dot(s, m, opt)); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// check refuses what would produce Go that does not compile. The loader
// already refuses spec names that collide once converted (spec.GoName);
// what it cannot know is this emitter's output: the identifiers it derives
// (OriginStateInvalid, OriginEventForStage, MaxOriginActions) against each
// other and against doc.go's own, a machine file that would overwrite
// doc.go, enums that overflow uint8, and steps longer than the engine's.
func check(s *spec.Spec, opt genfile.Options) error {
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
		if len(m.States) > 254 || len(m.Events) > 254 || len(m.Actions) > 254 {
			return fmt.Errorf("machine %s has more than 254 states, events or actions (uint8 enums): %w", m.Name, ErrBadMachine)
		}
		g := newMachine(s, m, opt)
		if n := g.maxActions(); n > maxStepActions {
			return fmt.Errorf("machine %s does %d actions in one step, more than the %d runtime/genrt/machine carries; split the step: %w", m.Name, n, maxStepActions, ErrBadMachine)
		}
		ids := []struct{ id, what string }{
			{g.typ, "machine " + m.Name}, {g.stateT, "machine " + m.Name + "'s state type"},
			{g.eventT, "machine " + m.Name + "'s event type"}, {g.actionT, "machine " + m.Name + "'s action type"},
			{g.stepT, "machine " + m.Name + "'s step type"}, {"New" + g.typ, "machine " + m.Name + "'s constructor"},
			{g.maxActs, "machine " + m.Name + "'s action bound"}, {g.eventT + "ForStage", "machine " + m.Name + "'s stage lookup"},
			{g.table, "machine " + m.Name + "'s table"},
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
		"This package holds what the spec decides: the enums and each machine's table. The",
		"engine that runs the tables is runtime/genrt/machine.",
		"",
		"Each machine has a Graphviz drawing beside its Go file (<machine>.dot).",
	} {
		f.PackageComment(l)
	}
	genfile.EnforceVersion(f)
	f.Line()
	f.Comment("SpecFingerprint is the fingerprint of the spec these machines come from; a runtime")
	f.Comment("compares it with the codec's and the switch's to refuse a mix of specs.")
	f.Const().Id("SpecFingerprint").Op("=").Lit(s.Fingerprint)
	f.Line()
	f.Var().Defs(
		jen.Comment("ErrUnexpectedEvent is wrapped by the *EventError Handle returns for an event"),
		jen.Comment("the current state neither handles nor ignores."),
		jen.Id("ErrUnexpectedEvent").Op("=").Qual(machinePkg, "ErrUnexpectedEvent"),
		jen.Comment("ErrInvalidState is returned by Handle on a machine that was not made by its"),
		jen.Comment("New function (the zero value)."),
		jen.Id("ErrInvalidState").Op("=").Qual(machinePkg, "ErrInvalidState"),
		jen.Comment("ErrInvalidEvent is returned by Handle for an event value that is not one of the"),
		jen.Comment("machine's events (the zero value, or out of range)."),
		jen.Id("ErrInvalidEvent").Op("=").Qual(machinePkg, "ErrInvalidEvent"),
	)
	f.Line()
	f.Comment("EventError says which machine, in which state, got which unexpected event.")
	f.Type().Id("EventError").Op("=").Qual(machinePkg, "EventError")
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
