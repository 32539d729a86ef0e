// Package machine is the engine under capygen's generated state machines
// (generated/migstate), as protoimpl is under protoc-gen-go's messages:
// the generated package declares its enums and a Spec (the states with
// their timers, the transitions, the ignores), and everything that does
// not vary with the spec lives here.
//
// The engine follows gVisor's endpoint states: one choke point (enter)
// through which every state change passes, so the timer and retry
// bookkeeping lives in one place. Handle never panics and never
// allocates: actions come back in a fixed-size array, and every error it
// can return is built once, by NewTable.
package machine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Enum is the underlying type of the generated State, Event and Action
// types; their zero value is invalid and the spec's values count from 1.
type Enum interface{ ~uint8 }

// MaxActions bounds the actions of one step (a transition's list, a
// give-up list or a resend). The generator refuses a spec with a longer
// list; gen/machines mirrors this constant.
const MaxActions = 8

// Spec is one machine as the generated code declares it. States, Events
// and Actions are indexed by value; index 0, the invalid zero value, is
// left empty.
type Spec[S, E, A Enum] struct {
	// Name is the spec's name of the machine, and New its generated
	// constructor; both appear in errors.
	Name, New string
	Initial   S
	// Timeout is the event a state's timer raises; zero when no state has
	// a timer.
	Timeout E
	States  []State[S, A]
	// Events and Actions are the spec's names of the values.
	Events, Actions []string
	Transitions     []Transition[S, E, A]
	Ignores         []Ignore[S, E]
}

// State is one state of a Spec.
type State[S, A Enum] struct {
	Name string
	// Final states end the migration; the runtime may free the machine.
	Final bool
	// After, when above zero, arms a timer on entering the state. When it
	// fires, the state resends Resend (if any) up to Retries times, then
	// does GiveUp and enters Exhausted.
	After     time.Duration
	Retries   int
	Resend    A
	Exhausted S
	GiveUp    []A
}

// Transition moves the machine From a state To another On an event, doing
// Do in order.
type Transition[S, E, A Enum] struct {
	From S
	On   E
	To   S
	Do   []A
}

// Ignore accepts On in state In without a change: a duplicate or stale
// message the spec expects.
type Ignore[S, E Enum] struct {
	In S
	On E
}

var (
	// ErrUnexpectedEvent is wrapped by the *EventError Handle returns for
	// an event the current state neither handles nor ignores.
	ErrUnexpectedEvent = errors.New("unexpected event")
	// ErrInvalidState is returned by Handle on a machine that was not
	// made by its New function (the zero value).
	ErrInvalidState = errors.New("invalid state")
	// ErrInvalidEvent is returned by Handle for an event value that is not
	// one of the machine's events (the zero value, or out of range).
	ErrInvalidEvent = errors.New("invalid event")
)

// EventError says which machine, in which state, got which unexpected
// event.
type EventError struct {
	Machine, State, Event string
	// pkg is the generated package, the prefix of the message.
	pkg string
}

func (e *EventError) Error() string {
	msg := e.Machine + " machine in state " + e.State + " does not expect event " + e.Event
	if e.pkg == "" {
		return msg
	}
	return e.pkg + ": " + msg
}

// Unwrap makes errors.Is(err, ErrUnexpectedEvent) hold.
func (e *EventError) Unwrap() error { return ErrUnexpectedEvent }

// Step is what one Handle call decided. Carry out StopTimer, then
// Actions() in order, then ArmTimer.
type Step[S, E, A Enum] struct {
	// From and To are the states before and after; equal for a retry, an
	// ignored event and a self-transition.
	From, To S
	Event    E
	// Ignored is set when the spec lists (From, Event) as a duplicate or
	// stale message to accept without change, or for a stale timer.
	Ignored bool
	// Retry is the retry number (1 for the first) when a timeout re-ran
	// the state's resend; 0 otherwise.
	Retry int
	// StopTimer is set when the step left a state with a timeout.
	StopTimer bool
	// ArmTimer is set when the step entered (or re-entered, or retried in)
	// a state with a timeout: start the timer for TimerAfter, replacing
	// any pending one.
	ArmTimer   bool
	TimerAfter time.Duration
	actions    [MaxActions]A
	n          uint8
}

// Actions returns the actions to carry out, in order. The slice aliases
// the step.
func (s *Step[S, E, A]) Actions() []A { return s.actions[:s.n] }

// Machine is the part of a machine that changes: its state and the
// retries left in the state's timeout. The zero value is invalid; a
// Table's New makes one.
type Machine[S Enum] struct {
	state   S
	retries int
}

// At returns a machine in state with retriesLeft retries, as Handle
// would leave it; tests use it to start from any state.
func At[S Enum](state S, retriesLeft int) Machine[S] {
	return Machine[S]{state: state, retries: retriesLeft}
}

// State returns the current state.
func (m *Machine[S]) State() S { return m.state }

// RetriesLeft returns how many retries the current state's timeout has
// left.
func (m *Machine[S]) RetriesLeft() int { return m.retries }

// Table is a Spec made ready to run: the outcome of every (state, event)
// is looked up, not searched, and every error is built.
type Table[S, E, A Enum] struct {
	initial S
	states  []State[S, A]
	events  []string
	actions []string
	// outcomes[s*len(events)+e] is what state s does with event e.
	outcomes        []outcome[S, A]
	errInvalidState error
	errInvalidEvent error
}

type kind uint8

const (
	unexpected kind = iota
	transition
	ignored
	// timer is a timed state's own timeout: retry, or give up when the
	// retries are used up.
	timer
)

// outcome is one (state, event) of a Table. For a timer, To and Do are the
// give-up.
type outcome[S, A Enum] struct {
	kind kind
	to   S
	n    uint8
	do   [MaxActions]A
	err  error
}

// NewTable checks spec and builds its table. A spec the generator could
// not have written (a name missing, a value out of range, a (state, event)
// handled twice, too many actions) panics: that is a bug in the generated
// code, found when its package initializes.
func NewTable[S, E, A Enum](spec Spec[S, E, A]) *Table[S, E, A] {
	// The table keeps copies: nothing outside can change a running machine.
	t := &Table[S, E, A]{initial: spec.Initial, states: slices.Clone(spec.States), events: slices.Clone(spec.Events), actions: slices.Clone(spec.Actions)}
	bad := func(format string, args ...any) {
		panic(fmt.Sprintf("machine %s: ", spec.Name) + fmt.Sprintf(format, args...))
	}
	for _, c := range []struct {
		what  string
		names []string
	}{{"state", statesNames(spec.States)}, {"event", spec.Events}, {"action", spec.Actions}} {
		what, names := c.what, c.names
		if len(names) < 2 || names[0] != "" {
			bad("%s names %q: index 0, the invalid value, has no name, and the values from 1 up do", what, names)
		}
		for v, n := range names[1:] {
			if n == "" {
				bad("%s %d has no name", what, v+1)
			}
		}
	}
	validS := func(s S) bool { return s != 0 && int(s) < len(t.states) }
	validE := func(e E) bool { return e != 0 && int(e) < len(t.events) }
	validA := func(a A) bool { return a != 0 && int(a) < len(t.actions) }
	list := func(as []A) (out [MaxActions]A, n uint8) {
		if len(as) > MaxActions {
			bad("%d actions in one step, more than %d", len(as), MaxActions)
		}
		for i, a := range as {
			if !validA(a) {
				bad("action %d out of range", a)
			}
			out[i] = a
		}
		return out, uint8(len(as))
	}
	if !validS(spec.Initial) {
		bad("initial state %d out of range", spec.Initial)
	}

	pkg, eventType := typeName[E]()
	t.errInvalidState = fmt.Errorf("%s: %s machine: %w (make it with %s)", pkg, spec.Name, ErrInvalidState, spec.New)
	t.errInvalidEvent = fmt.Errorf("%s: %s machine: %w (use one of the %s constants)", pkg, spec.Name, ErrInvalidEvent, eventType)
	stride := len(t.events)
	t.outcomes = make([]outcome[S, A], len(t.states)*stride)
	at := func(s S, e E) *outcome[S, A] {
		if !validS(s) || !validE(e) {
			bad("(state %d, event %d) out of range", s, e)
		}
		o := &t.outcomes[int(s)*stride+int(e)]
		if o.kind != unexpected {
			bad("(%s, %s) is handled twice", t.StateName(s), t.EventName(e))
		}
		return o
	}
	for s := 1; s < len(t.states); s++ {
		st := &t.states[s]
		if st.After <= 0 {
			if st.Retries != 0 || st.Resend != 0 || st.Exhausted != 0 || st.GiveUp != nil {
				bad("state %s has a timer policy but no timer", st.Name)
			}
			if spec.Timeout != 0 {
				// a timer that fired after its state was left
				at(S(s), spec.Timeout).kind = ignored
			}
			continue
		}
		if !validS(st.Exhausted) || st.Retries < 0 {
			bad("state %s: exhausted state %d out of range, or %d retries", st.Name, st.Exhausted, st.Retries)
		}
		if st.Resend != 0 && !validA(st.Resend) {
			bad("state %s resends action %d, out of range", st.Name, st.Resend)
		}
		o := at(S(s), spec.Timeout)
		o.kind, o.to = timer, st.Exhausted
		o.do, o.n = list(st.GiveUp)
	}
	for _, tr := range spec.Transitions {
		if !validS(tr.To) {
			bad("transition to state %d out of range", tr.To)
		}
		o := at(tr.From, tr.On)
		o.kind, o.to = transition, tr.To
		o.do, o.n = list(tr.Do)
	}
	for _, ig := range spec.Ignores {
		at(ig.In, ig.On).kind = ignored
	}
	for s := 1; s < len(t.states); s++ {
		for e := 1; e < stride; e++ {
			if o := &t.outcomes[s*stride+e]; o.kind == unexpected {
				o.err = &EventError{Machine: spec.Name, State: t.StateName(S(s)), Event: t.EventName(E(e)), pkg: pkg}
			}
		}
	}
	return t
}

func statesNames[S, A Enum](states []State[S, A]) []string {
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = st.Name
	}
	return names
}

// typeName splits the name of T's type into its package and type names:
// "migstate", "OriginEvent".
func typeName[T any]() (pkg, name string) {
	var zero T
	pkg, name, _ = strings.Cut(fmt.Sprintf("%T", zero), ".")
	return pkg, name
}

// New returns a machine in the initial state.
func (t *Table[S, E, A]) New() Machine[S] {
	return Machine[S]{state: t.initial, retries: t.states[t.initial].Retries}
}

// Handle applies ev to m. It returns the step to carry out, or an error
// that leaves m unchanged: an *EventError (wrapping ErrUnexpectedEvent)
// for an event the state neither handles nor ignores, ErrInvalidState for
// the zero machine, ErrInvalidEvent for an event value outside the
// machine's events.
func (t *Table[S, E, A]) Handle(m *Machine[S], ev E) (Step[S, E, A], error) {
	step := Step[S, E, A]{From: m.state, To: m.state, Event: ev}
	if m.state == 0 || int(m.state) >= len(t.states) {
		return step, t.errInvalidState
	}
	if ev == 0 || int(ev) >= len(t.events) {
		return step, t.errInvalidEvent
	}
	o := &t.outcomes[int(m.state)*len(t.events)+int(ev)]
	switch o.kind {
	case transition:
		step.actions, step.n = o.do, o.n
		t.enter(m, &step, o.to)
	case ignored:
		step.Ignored = true
	case timer:
		if m.retries > 0 {
			t.retry(m, &step)
			break
		}
		step.actions, step.n = o.do, o.n
		t.enter(m, &step, o.to)
	default:
		return step, o.err
	}
	return step, nil
}

// enter is the one place the state changes: it stops the timer of a timed
// state being left, arms the timer of a timed state being entered (a
// self-transition re-enters) and resets its retries.
func (t *Table[S, E, A]) enter(m *Machine[S], step *Step[S, E, A], to S) {
	if t.states[m.state].After > 0 && to != m.state {
		step.StopTimer = true
	}
	m.state = to
	m.retries = t.states[to].Retries
	if after := t.states[to].After; after > 0 {
		step.ArmTimer, step.TimerAfter = true, after
	}
	step.To = to
}

// retry spends one retry of the current state, resends and re-arms its
// timer.
func (t *Table[S, E, A]) retry(m *Machine[S], step *Step[S, E, A]) {
	st := &t.states[m.state]
	m.retries--
	step.Retry = st.Retries - m.retries
	if st.Resend != 0 {
		step.actions[0], step.n = st.Resend, 1
	}
	step.ArmTimer, step.TimerAfter = true, st.After
}

// StateName, EventName and ActionName return the spec's name of a value,
// "invalid" for the zero value, and the number for a value out of range
// (only a conversion makes one).
func (t *Table[S, E, A]) StateName(s S) string {
	if s != 0 && int(s) < len(t.states) {
		return t.states[s].Name
	}
	return numberName(uint8(s))
}

func (t *Table[S, E, A]) EventName(e E) string { return name(t.events, uint8(e)) }

func (t *Table[S, E, A]) ActionName(a A) string { return name(t.actions, uint8(a)) }

func name(names []string, v uint8) string {
	if v != 0 && int(v) < len(names) {
		return names[v]
	}
	return numberName(v)
}

func numberName(v uint8) string {
	if v == 0 {
		return "invalid"
	}
	return strconv.Itoa(int(v))
}

// IsFinal reports whether s ends the migration.
func (t *Table[S, E, A]) IsFinal(s S) bool { return int(s) < len(t.states) && t.states[s].Final }

// Timeout is how long s waits before its timer fires; 0 for a state
// without a timer.
func (t *Table[S, E, A]) Timeout(s S) time.Duration {
	if int(s) < len(t.states) {
		return t.states[s].After
	}
	return 0
}

// Retries is how many times the timeout of s re-runs its resend before
// the machine gives up; 0 for a state without a timer.
func (t *Table[S, E, A]) Retries(s S) int {
	if int(s) < len(t.states) {
		return t.states[s].Retries
	}
	return 0
}
