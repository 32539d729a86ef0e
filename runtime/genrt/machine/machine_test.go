package machine

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// A hand-written machine shaped like generated code: a door that is asked
// to open, retries its motor, and jams when the retries run out.
type (
	doorState  uint8
	doorEvent  uint8
	doorAction uint8
)

const (
	closed doorState = iota + 1
	opening
	open
	jammed
)

const (
	push doorEvent = iota + 1
	opened
	bang
	timeout
)

const (
	runMotor doorAction = iota + 1
	beep
	callHelp
)

func doorSpec() Spec[doorState, doorEvent, doorAction] {
	return Spec[doorState, doorEvent, doorAction]{
		Name:    "door",
		New:     "NewDoor",
		Initial: closed,
		Timeout: timeout,
		States: []State[doorState, doorAction]{
			closed:  {Name: "closed"},
			opening: {Name: "opening", After: 5 * time.Millisecond, Retries: 2, Resend: runMotor, Exhausted: jammed, GiveUp: []doorAction{beep, callHelp}},
			open:    {Name: "open", Final: true},
			jammed:  {Name: "jammed", Final: true},
		},
		Events:  []string{push: "push", opened: "opened", bang: "bang", timeout: "timeout"},
		Actions: []string{runMotor: "run_motor", beep: "beep", callHelp: "call_help"},
		Transitions: []Transition[doorState, doorEvent, doorAction]{
			{From: closed, On: push, To: opening, Do: []doorAction{runMotor}},
			{From: opening, On: push, To: opening, Do: []doorAction{beep}},
			{From: opening, On: opened, To: open},
		},
		Ignores: []Ignore[doorState, doorEvent]{{In: open, On: push}, {In: open, On: opened}},
	}
}

var door = NewTable(doorSpec())

// want is a step reduced to what a test compares.
type want struct {
	to        doorState
	actions   []doorAction
	ignored   bool
	retry     int
	stopTimer bool
	armAfter  time.Duration
}

func check(t *testing.T, m *Machine[doorState], ev doorEvent, w want) {
	t.Helper()
	from := m.State()
	step, err := door.Handle(m, ev)
	if err != nil {
		t.Fatalf("Handle(%s) in %s = %v", door.EventName(ev), door.StateName(from), err)
	}
	after := time.Duration(0)
	if step.ArmTimer {
		after = step.TimerAfter
	}
	if step.From != from || step.Event != ev || step.To != m.State() || step.To != w.to || !slices.Equal(step.Actions(), w.actions) ||
		step.Ignored != w.ignored || step.Retry != w.retry || step.StopTimer != w.stopTimer || after != w.armAfter {
		t.Errorf("Handle(%s) in %s = %+v (now %s), want %+v", door.EventName(ev), door.StateName(from), step, door.StateName(m.State()), w)
	}
}

func TestTransitionsAndTimers(t *testing.T) {
	m := door.New()
	if m.State() != closed || m.RetriesLeft() != 0 {
		t.Fatalf("New() = %s with %d retries, want closed with 0", door.StateName(m.State()), m.RetriesLeft())
	}
	check(t, &m, push, want{to: opening, actions: []doorAction{runMotor}, armAfter: 5 * time.Millisecond})
	check(t, &m, timeout, want{to: opening, actions: []doorAction{runMotor}, retry: 1, armAfter: 5 * time.Millisecond})
	// A self-transition re-enters: the timer re-arms and the retries reset.
	check(t, &m, push, want{to: opening, actions: []doorAction{beep}, armAfter: 5 * time.Millisecond})
	if m.RetriesLeft() != 2 {
		t.Errorf("re-entering opening left %d retries, want 2", m.RetriesLeft())
	}
	check(t, &m, opened, want{to: open, stopTimer: true})
	check(t, &m, push, want{to: open, ignored: true})
	// A timer that fired after its state was left is stale.
	check(t, &m, timeout, want{to: open, ignored: true})
}

func TestRetriesThenGivesUp(t *testing.T) {
	m := door.New()
	check(t, &m, push, want{to: opening, actions: []doorAction{runMotor}, armAfter: 5 * time.Millisecond})
	for i := 1; i <= 2; i++ {
		check(t, &m, timeout, want{to: opening, actions: []doorAction{runMotor}, retry: i, armAfter: 5 * time.Millisecond})
	}
	check(t, &m, timeout, want{to: jammed, actions: []doorAction{beep, callHelp}, stopTimer: true})

	// At starts anywhere, as the generated package's tests do.
	m = At(opening, 0)
	check(t, &m, timeout, want{to: jammed, actions: []doorAction{beep, callHelp}, stopTimer: true})
}

func TestErrors(t *testing.T) {
	m := door.New()
	step, err := door.Handle(&m, opened)
	var ee *EventError
	if !errors.Is(err, ErrUnexpectedEvent) || !errors.As(err, &ee) || ee.Machine != "door" || ee.State != "closed" || ee.Event != "opened" {
		t.Errorf("Handle(opened) in closed = %v, want an *EventError naming door, closed, opened", err)
	}
	if got, want := err.Error(), "machine: door machine in state closed does not expect event opened"; got != want {
		t.Errorf("error text = %q, want %q", got, want)
	}
	if m.State() != closed || step.To != closed || len(step.Actions()) != 0 {
		t.Errorf("a refused event changed the machine: %s, %+v", door.StateName(m.State()), step)
	}
	for _, ev := range []doorEvent{0, timeout + 1, 255} {
		if _, err := door.Handle(&m, ev); !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), "use one of the doorEvent constants") {
			t.Errorf("Handle(%d) = %v, want ErrInvalidEvent naming doorEvent", ev, err)
		}
	}
	var zero Machine[doorState]
	if _, err := door.Handle(&zero, push); !errors.Is(err, ErrInvalidState) || !strings.Contains(err.Error(), "make it with NewDoor") {
		t.Errorf("zero machine: Handle = %v, want ErrInvalidState naming NewDoor", err)
	}
	if e := (&EventError{Machine: "m", State: "s", Event: "e"}); e.Error() != "m machine in state s does not expect event e" {
		t.Errorf("an EventError made outside NewTable reads %q", e.Error())
	}
}

func TestNamesAndPredicates(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{door.StateName(opening), "opening"}, {door.StateName(0), "invalid"}, {door.StateName(200), "200"},
		{door.EventName(timeout), "timeout"}, {door.EventName(0), "invalid"}, {door.EventName(9), "9"},
		{door.ActionName(callHelp), "call_help"}, {door.ActionName(0), "invalid"}, {door.ActionName(4), "4"},
	} {
		if tc.got != tc.want {
			t.Errorf("name = %q, want %q", tc.got, tc.want)
		}
	}
	if !door.IsFinal(jammed) || door.IsFinal(opening) || door.IsFinal(200) {
		t.Error("IsFinal disagrees with the spec")
	}
	if door.Timeout(opening) != 5*time.Millisecond || door.Timeout(closed) != 0 || door.Timeout(200) != 0 {
		t.Error("Timeout disagrees with the spec")
	}
	if door.Retries(opening) != 2 || door.Retries(open) != 0 || door.Retries(200) != 0 {
		t.Error("Retries disagrees with the spec")
	}
}

// TestRefusesBadSpecs: a table the generator could not have written panics
// when its package initializes, naming the problem.
func TestRefusesBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Spec[doorState, doorEvent, doorAction])
		want string
	}{
		{"unnamed state", func(s *Spec[doorState, doorEvent, doorAction]) { s.States[open].Name = "" }, "state 3 has no name"},
		{"named zero", func(s *Spec[doorState, doorEvent, doorAction]) { s.Events[0] = "zero" }, "index 0"},
		{"bad initial", func(s *Spec[doorState, doorEvent, doorAction]) { s.Initial = 0 }, "initial state 0 out of range"},
		{"twice", func(s *Spec[doorState, doorEvent, doorAction]) {
			s.Ignores = append(s.Ignores, Ignore[doorState, doorEvent]{In: closed, On: push})
		}, "(closed, push) is handled twice"},
		{"timeout transition", func(s *Spec[doorState, doorEvent, doorAction]) {
			s.Transitions = append(s.Transitions, Transition[doorState, doorEvent, doorAction]{From: opening, On: timeout, To: open})
		}, "(opening, timeout) is handled twice"},
		{"too many", func(s *Spec[doorState, doorEvent, doorAction]) {
			s.Transitions[0].Do = slices.Repeat([]doorAction{beep}, MaxActions+1)
		}, "9 actions in one step"},
		{"bad action", func(s *Spec[doorState, doorEvent, doorAction]) { s.Transitions[0].Do = []doorAction{7} }, "action 7 out of range"},
		{"policy without timer", func(s *Spec[doorState, doorEvent, doorAction]) { s.States[closed].Retries = 1 }, "closed has a timer policy but no timer"},
		{"bad exhausted", func(s *Spec[doorState, doorEvent, doorAction]) { s.States[opening].Exhausted = 9 }, "exhausted state 9 out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := doorSpec()
			tc.edit(&s)
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), tc.want) || !strings.HasPrefix(r.(string), "machine door: ") {
					t.Errorf("NewTable panicked with %v, want a message containing %q", r, tc.want)
				}
			}()
			NewTable(s)
		})
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		m := door.New()
		door.Handle(&m, push)
		door.Handle(&m, timeout)
		door.Handle(&m, bang) // refused: the error is prebuilt
		door.Handle(&m, opened)
	})
	if allocs != 0 {
		t.Errorf("Handle allocates %v times per run, want 0", allocs)
	}
}
