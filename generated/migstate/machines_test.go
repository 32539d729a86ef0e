package migstate

// Behavioural tests of the generated machines for the default spec. This
// file is hand-written (no generated header), so capygen never deletes it.

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/genrt/machine"
	"github.com/capygen/capygen/spec"
)

func names[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

// stepCheck is what a step must look like.
type stepCheck struct {
	to        string
	actions   []string
	ignored   bool
	retry     int
	stopTimer bool
	armAfter  time.Duration // 0: not armed
}

func checkOriginStep(t *testing.T, m *Origin, ev OriginEvent, want stepCheck) {
	t.Helper()
	from := m.State()
	step, err := m.Handle(ev)
	if err != nil {
		t.Fatalf("Handle(%s) in %s = %v", ev, from, err)
	}
	got := stepCheck{step.To.String(), names(step.Actions()), step.Ignored, step.Retry, step.StopTimer, 0}
	if step.ArmTimer {
		got.armAfter = step.TimerAfter
	}
	if step.From != from || step.Event != ev || m.State() != step.To ||
		got.to != want.to || !slices.Equal(got.actions, want.actions) || got.ignored != want.ignored ||
		got.retry != want.retry || got.stopTimer != want.stopTimer || got.armAfter != want.armAfter {
		t.Errorf("Handle(%s) in %s = %+v (state now %s), want %+v", ev, from, got, m.State(), want)
	}
}

func TestOriginMigration(t *testing.T) {
	m := NewOrigin()
	if m.State() != OriginStateIdle {
		t.Fatalf("NewOrigin().State() = %s, want idle", m.State())
	}
	checkOriginStep(t, &m, OriginEventStart, stepCheck{to: "preparing", actions: []string{"send_prepare_mig"}, armAfter: prepareAfter})
	checkOriginStep(t, &m, OriginEventPrepareMigAck, stepCheck{to: "transferring", actions: []string{"freeze_connection", "send_conn_state"}, stopTimer: true, armAfter: transferAfter})
	// The ACK of a retransmitted PREPARE arrives late: accepted, nothing done.
	checkOriginStep(t, &m, OriginEventPrepareMigAck, stepCheck{to: "transferring", ignored: true})
	checkOriginStep(t, &m, OriginEventConnStateAck, stepCheck{to: "done", actions: []string{"release_connection"}, stopTimer: true})
	checkOriginStep(t, &m, OriginEventConnStateAck, stepCheck{to: "done", ignored: true})
	if !m.State().IsFinal() {
		t.Errorf("done.IsFinal() = false")
	}
}

func TestOriginRejected(t *testing.T) {
	m := NewOrigin()
	checkOriginStep(t, &m, OriginEventStart, stepCheck{to: "preparing", actions: []string{"send_prepare_mig"}, armAfter: prepareAfter})
	checkOriginStep(t, &m, OriginEventRejected, stepCheck{to: "rejected", actions: []string{"resume_connection"}, stopTimer: true})
	checkOriginStep(t, &m, OriginEventRejected, stepCheck{to: "rejected", ignored: true})
}

// The origin's retry budgets: enough that a migration survives 5% loss on
// every link in the simulator.
const (
	prepareAfter    = 10 * time.Millisecond
	transferAfter   = 20 * time.Millisecond
	prepareRetries  = 8
	transferRetries = 12
)

func TestOriginRetryBudgets(t *testing.T) {
	if got := OriginStatePreparing.Retries(); got != prepareRetries {
		t.Errorf("preparing retries %d, want %d", got, prepareRetries)
	}
	if got := OriginStateTransferring.Retries(); got != transferRetries {
		t.Errorf("transferring retries %d, want %d", got, transferRetries)
	}
}

func TestOriginRetriesThenGivesUp(t *testing.T) {
	m := NewOrigin()
	checkOriginStep(t, &m, OriginEventStart, stepCheck{to: "preparing", actions: []string{"send_prepare_mig"}, armAfter: prepareAfter})
	for i := 1; i <= prepareRetries; i++ {
		checkOriginStep(t, &m, OriginEventTimeout, stepCheck{to: "preparing", actions: []string{"send_prepare_mig"}, retry: i, armAfter: prepareAfter})
		if m.RetriesLeft() != prepareRetries-i {
			t.Errorf("after retry %d RetriesLeft() = %d, want %d", i, m.RetriesLeft(), prepareRetries-i)
		}
	}
	checkOriginStep(t, &m, OriginEventTimeout, stepCheck{to: "failed", actions: []string{"resume_connection", "reclaim_entry"}, stopTimer: true})
	// A late ACK means the switch may point at a target that will never
	// get the state: reclaim the entry. Other late answers are stale.
	checkOriginStep(t, &m, OriginEventPrepareMigAck, stepCheck{to: "failed", actions: []string{"reclaim_entry"}})
	for _, ev := range []OriginEvent{OriginEventConnStateAck, OriginEventRejected} {
		checkOriginStep(t, &m, ev, stepCheck{to: "failed", ignored: true})
	}
	// So is a timer that fires after its state was left.
	checkOriginStep(t, &m, OriginEventTimeout, stepCheck{to: "failed", ignored: true})
}

func TestOriginTransferExhausted(t *testing.T) {
	m := NewOrigin()
	m.Handle(OriginEventStart)
	m.Handle(OriginEventTimeout) // one PREPARE retry; the transfer gets its own budget
	checkOriginStep(t, &m, OriginEventPrepareMigAck, stepCheck{to: "transferring", actions: []string{"freeze_connection", "send_conn_state"}, stopTimer: true, armAfter: transferAfter})
	if m.RetriesLeft() != transferRetries {
		t.Fatalf("entering transferring: RetriesLeft() = %d, want %d", m.RetriesLeft(), transferRetries)
	}
	for i := 1; i <= transferRetries; i++ {
		checkOriginStep(t, &m, OriginEventTimeout, stepCheck{to: "transferring", actions: []string{"send_conn_state"}, retry: i, armAfter: transferAfter})
	}
	checkOriginStep(t, &m, OriginEventTimeout, stepCheck{to: "failed", actions: []string{"abort_connection"}, stopTimer: true})
}

func checkTargetStep(t *testing.T, m *Target, ev TargetEvent, want stepCheck) {
	t.Helper()
	from := m.State()
	step, err := m.Handle(ev)
	if err != nil {
		t.Fatalf("Handle(%s) in %s = %v", ev, from, err)
	}
	got := stepCheck{step.To.String(), names(step.Actions()), step.Ignored, step.Retry, step.StopTimer, 0}
	if step.ArmTimer {
		got.armAfter = step.TimerAfter
	}
	if step.From != from || m.State() != step.To || got.to != want.to || !slices.Equal(got.actions, want.actions) ||
		got.ignored != want.ignored || got.retry != want.retry || got.stopTimer != want.stopTimer || got.armAfter != want.armAfter {
		t.Errorf("Handle(%s) in %s = %+v, want %+v", ev, from, got, want)
	}
}

func TestTargetMigration(t *testing.T) {
	m := NewTarget()
	checkTargetStep(t, &m, TargetEventPrepareMig, stepCheck{to: "buffering", actions: []string{"allocate_buffer", "send_prepare_mig_ack"}, armAfter: bufferingTimeout})
	// A retransmitted PREPARE is idempotent: ACK again, the buffer stays,
	// and re-entering the state re-arms its timer.
	checkTargetStep(t, &m, TargetEventPrepareMig, stepCheck{to: "buffering", actions: []string{"send_prepare_mig_ack"}, armAfter: bufferingTimeout})
	checkTargetStep(t, &m, TargetEventConnState, stepCheck{to: "accepted", actions: []string{"restore_connection", "replay_buffer", "send_conn_state_ack"}, stopTimer: true})
	// A retransmitted state is acknowledged again and restored once.
	checkTargetStep(t, &m, TargetEventConnState, stepCheck{to: "accepted", actions: []string{"send_conn_state_ack"}})
	checkTargetStep(t, &m, TargetEventPrepareMig, stepCheck{to: "accepted", ignored: true})
}

// bufferingTimeout is how long a target holds a client's packets for the
// state.
const bufferingTimeout = 400 * time.Millisecond

// TestTargetOutlastsOrigin: a target buffering for a migration must wait
// longer than its origin can still send the state: every CONN_STATE
// attempt of the transfer (the first and its retries), after the ACK that
// a resent PREPARE can make the target send as late as the origin's last
// PREPARE attempt.
func TestTargetOutlastsOrigin(t *testing.T) {
	if got := TargetStateBuffering.Timeout(); got != bufferingTimeout {
		t.Errorf("buffering timeout %v, want %v", got, bufferingTimeout)
	}
	transfer := time.Duration(OriginStateTransferring.Retries()+1) * OriginStateTransferring.Timeout()
	if b := TargetStateBuffering.Timeout(); b <= transfer {
		t.Errorf("the target gives up after %v, before the origin's %v of CONN_STATE attempts", b, transfer)
	}
}

// TestTargetRejected: the switch answers a target's ACK with REJECTED when
// another target holds the connection (its directory entry is a lease). The
// target frees what it buffered and is done; REJECTED is ignored when it
// arrives after that, or after the state.
func TestTargetRejected(t *testing.T) {
	m := NewTarget()
	checkTargetStep(t, &m, TargetEventPrepareMig, stepCheck{to: "buffering", actions: []string{"allocate_buffer", "send_prepare_mig_ack"}, armAfter: bufferingTimeout})
	checkTargetStep(t, &m, TargetEventRejected, stepCheck{to: "abandoned", actions: []string{"free_buffer"}, stopTimer: true})
	checkTargetStep(t, &m, TargetEventRejected, stepCheck{to: "abandoned", ignored: true})
	checkTargetStep(t, &m, TargetEventPrepareMig, stepCheck{to: "abandoned", ignored: true})
	checkTargetStep(t, &m, TargetEventConnState, stepCheck{to: "abandoned", ignored: true})
	// The timer of the buffering state it left is stale.
	checkTargetStep(t, &m, TargetEventTimeout, stepCheck{to: "abandoned", ignored: true})

	a := NewTarget()
	a.Handle(TargetEventPrepareMig)
	a.Handle(TargetEventConnState)
	checkTargetStep(t, &a, TargetEventRejected, stepCheck{to: "accepted", ignored: true})

	// An idle machine never gets one (the runtime only feeds machines a
	// PREPARE made): it is unexpected there.
	i := NewTarget()
	if _, err := i.Handle(TargetEventRejected); !errors.Is(err, ErrUnexpectedEvent) {
		t.Errorf("Handle(rejected) in idle = %v, want ErrUnexpectedEvent", err)
	}
	if e, ok := TargetEventForStage(tcpmig.StageRejected); !ok || e != TargetEventRejected {
		t.Errorf("TargetEventForStage(rejected) = %s, %v; want rejected", e, ok)
	}
}

func TestTargetAbandoned(t *testing.T) {
	m := NewTarget()
	m.Handle(TargetEventPrepareMig)
	checkTargetStep(t, &m, TargetEventTimeout, stepCheck{to: "abandoned", actions: []string{"free_buffer", "send_abandon_notice"}, stopTimer: true})
	checkTargetStep(t, &m, TargetEventConnState, stepCheck{to: "abandoned", ignored: true})
	checkTargetStep(t, &m, TargetEventPrepareMig, stepCheck{to: "abandoned", ignored: true})
}

func TestErrors(t *testing.T) {
	m := NewOrigin()
	step, err := m.Handle(OriginEventConnStateAck)
	var ee *EventError
	if !errors.Is(err, ErrUnexpectedEvent) || !errors.As(err, &ee) || ee.State != "idle" || ee.Event != "conn_state_ack" {
		t.Errorf("Handle(conn_state_ack) in idle = %v, want an *EventError naming idle and conn_state_ack", err)
	}
	if got, want := err.Error(), "migstate: origin machine in state idle does not expect event conn_state_ack"; got != want {
		t.Errorf("error text = %q, want %q", got, want)
	}
	if m.State() != OriginStateIdle || step.To != OriginStateIdle || len(step.Actions()) != 0 {
		t.Errorf("a refused event changed the machine: state %s, step %+v", m.State(), step)
	}
	for _, ev := range []OriginEvent{OriginEventInvalid, OriginEventTimeout + 1, 255} {
		if _, err := m.Handle(ev); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("Handle(%d) = %v, want ErrInvalidEvent", ev, err)
		}
	}
	var zero Target
	if _, err := zero.Handle(TargetEventPrepareMig); !errors.Is(err, ErrInvalidState) {
		t.Errorf("zero Target.Handle = %v, want ErrInvalidState", err)
	}
	if s := OriginState(200).String(); s != "200" {
		t.Errorf("OriginState(200).String() = %q, want 200", s)
	}
	if OriginStateInvalid.IsValid() || OriginStateInvalid.String() != "invalid" {
		t.Errorf("the zero state must be invalid and print as invalid")
	}
}

// TestEverySpecPair puts each machine in every state and feeds it every
// event, checking the outcome against the spec itself: each transition,
// each ignore, each retry and exhaustion, and an error for the rest.
func TestEverySpecPair(t *testing.T) {
	s, err := spec.Default()
	if err != nil {
		t.Fatal(err)
	}
	if s.Fingerprint != SpecFingerprint {
		t.Fatalf("generated from spec %s, default spec is %s: regenerate", SpecFingerprint, s.Fingerprint)
	}
	for _, sm := range s.Machines {
		h := harnessFor(sm.Name)
		if h == nil {
			t.Fatalf("no harness for machine %s", sm.Name)
		}
		for si, st := range sm.States {
			for ei, ev := range sm.Events {
				for _, retriesLeft := range retryCases(st) {
					res := h(uint8(si+1), retriesLeft, uint8(ei+1))
					want := expect(sm, st, ev, retriesLeft)
					if res != want {
						t.Errorf("%s: (%s, %s) with %d retries left = %+v, want %+v", sm.Name, st.Name, ev.Name, retriesLeft, res, want)
					}
				}
			}
		}
	}
}

func retryCases(st *spec.State) []int {
	if st.Timeout == nil || st.Timeout.Retries == 0 {
		return []int{0}
	}
	return []int{st.Timeout.Retries, 0}
}

// outcome is a step reduced to names, comparable with ==.
type outcome struct {
	err      bool
	to       string
	actions  string
	ignored  bool
	retry    int
	stop     bool
	armAfter time.Duration
}

func expect(m *spec.Machine, st *spec.State, ev *spec.Event, retriesLeft int) outcome {
	enter := func(to *spec.State, acts []*spec.Action) outcome {
		o := outcome{to: to.Name, actions: actionList(acts)}
		o.stop = st.Timeout != nil && to != st
		if to.Timeout != nil {
			o.armAfter = to.Timeout.After
		}
		return o
	}
	for _, tr := range m.Transitions {
		if tr.From == st && tr.On == ev {
			return enter(tr.To, tr.Actions)
		}
	}
	for _, ig := range m.Ignores {
		if ig.State == st && ig.On == ev {
			return outcome{to: st.Name, ignored: true}
		}
	}
	if ev.Name == spec.TimeoutEvent {
		if st.Timeout == nil {
			return outcome{to: st.Name, ignored: true}
		}
		if retriesLeft > 0 {
			var acts []*spec.Action
			if st.Timeout.Resend != nil {
				acts = append(acts, st.Timeout.Resend)
			}
			return outcome{to: st.Name, actions: actionList(acts), retry: st.Timeout.Retries - retriesLeft + 1, armAfter: st.Timeout.After}
		}
		return enter(st.Timeout.Exhausted, st.Timeout.GiveUp)
	}
	return outcome{err: true, to: st.Name}
}

func actionList(as []*spec.Action) string {
	var out string
	for _, a := range as {
		out += a.Name + ";"
	}
	return out
}

// harnessFor runs one Handle from a forced state; states and events are
// numbered in spec order from 1, as the generator numbers them.
func harnessFor(name string) func(state uint8, retries int, ev uint8) outcome {
	reduce := func(to fmt.Stringer, acts []string, ignored bool, retry int, stop, arm bool, after time.Duration, err error) outcome {
		o := outcome{err: err != nil, to: to.String(), ignored: ignored, retry: retry, stop: stop}
		for _, a := range acts {
			o.actions += a + ";"
		}
		if arm {
			o.armAfter = after
		}
		return o
	}
	switch name {
	case "origin":
		return func(state uint8, retries int, ev uint8) outcome {
			m := Origin{m: machine.At(OriginState(state), retries)}
			step, err := m.Handle(OriginEvent(ev))
			if m.State() != step.To {
				return outcome{to: "step.To disagrees with State()"}
			}
			return reduce(step.To, names(step.Actions()), step.Ignored, step.Retry, step.StopTimer, step.ArmTimer, step.TimerAfter, err)
		}
	case "target":
		return func(state uint8, retries int, ev uint8) outcome {
			m := Target{m: machine.At(TargetState(state), retries)}
			step, err := m.Handle(TargetEvent(ev))
			if m.State() != step.To {
				return outcome{to: "step.To disagrees with State()"}
			}
			return reduce(step.To, names(step.Actions()), step.Ignored, step.Retry, step.StopTimer, step.ArmTimer, step.TimerAfter, err)
		}
	}
	return nil
}

func TestEventForStage(t *testing.T) {
	s, err := spec.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Machines {
		for _, ev := range m.Events {
			if ev.Message == nil {
				continue
			}
			var got string
			var ok bool
			switch m.Name {
			case "origin":
				e, k := OriginEventForStage(tcpmig.Stage(ev.Message.Stage.Value))
				got, ok = e.String(), k
			case "target":
				e, k := TargetEventForStage(tcpmig.Stage(ev.Message.Stage.Value))
				got, ok = e.String(), k
			}
			if !ok || got != ev.Name {
				t.Errorf("%s: EventForStage(%d) = %s, %v; want %s", m.Name, ev.Message.Stage.Value, got, ok, ev.Name)
			}
		}
	}
	// The target never receives heartbeat responses; the origin never a PREPARE.
	if e, ok := TargetEventForStage(tcpmig.StageHeartbeatResponse); ok {
		t.Errorf("TargetEventForStage(heartbeat_response) = %s, true; want false", e)
	}
	if e, ok := OriginEventForStage(tcpmig.StagePrepareMig); ok {
		t.Errorf("OriginEventForStage(prepare_mig) = %s, true; want false", e)
	}
}

func TestSends(t *testing.T) {
	for _, tc := range []struct {
		a     OriginAction
		msg   string
		stage tcpmig.Stage
		ok    bool
	}{
		{OriginActionSendPrepareMig, "prepare_mig", tcpmig.StagePrepareMig, true},
		{OriginActionSendConnState, "conn_state", tcpmig.StageConnState, true},
		{OriginActionFreezeConnection, "", 0, false},
	} {
		stage, ok := tc.a.SendStage()
		if tc.a.Sends() != tc.msg || stage != tc.stage || ok != tc.ok {
			t.Errorf("%s: Sends() = %q, SendStage() = %d, %v; want %q, %d, %v", tc.a, tc.a.Sends(), stage, ok, tc.msg, tc.stage, tc.ok)
		}
	}
	if stage, ok := TargetActionSendConnStateAck.SendStage(); !ok || stage != tcpmig.StageConnStateAck {
		t.Errorf("send_conn_state_ack stage = %d, %v; want conn_state_ack", stage, ok)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		m := NewOrigin()
		m.Handle(OriginEventStart)
		m.Handle(OriginEventTimeout)
		m.Handle(OriginEventPrepareMigAck)
		m.Handle(OriginEventStart) // refused: the error is prebuilt
		m.Handle(OriginEventConnStateAck)
	})
	if allocs != 0 {
		t.Errorf("a migration through Handle allocates %v times, want 0", allocs)
	}
}

// FuzzMachines feeds random event sequences (including invalid event
// values) to both machines: Handle never panics, the state stays valid,
// a refused event changes nothing, and a final state is never left.
func FuzzMachines(f *testing.F) {
	f.Add([]byte{1, 2, 4})
	f.Add([]byte{1, 5, 5, 5, 5, 2, 3})
	f.Add([]byte{0, 255, 1, 1, 2, 2, 3})
	f.Add([]byte{2, 1, 1, 3, 3})
	f.Fuzz(func(t *testing.T, evs []byte) {
		o, tg := NewOrigin(), NewTarget()
		for _, b := range evs {
			ev := OriginEvent(b % (uint8(OriginEventTimeout) + 2))
			before := o.State()
			step, err := o.Handle(ev)
			if !o.State().IsValid() || len(step.Actions()) > MaxOriginActions {
				t.Fatalf("origin: after %s in %s: state %d, %d actions", ev, before, o.State(), len(step.Actions()))
			}
			if err != nil && o.State() != before {
				t.Fatalf("origin: refused %s moved %s -> %s", ev, before, o.State())
			}
			if before.IsFinal() && o.State() != before {
				t.Fatalf("origin: left final state %s for %s", before, o.State())
			}
			tev := TargetEvent(b % (uint8(TargetEventTimeout) + 2))
			tbefore := tg.State()
			tstep, err := tg.Handle(tev)
			if !tg.State().IsValid() || len(tstep.Actions()) > MaxTargetActions {
				t.Fatalf("target: after %s in %s: state %d", tev, tbefore, tg.State())
			}
			if err != nil && tg.State() != tbefore {
				t.Fatalf("target: refused %s moved %s -> %s", tev, tbefore, tg.State())
			}
			if tbefore.IsFinal() && tg.State() != tbefore {
				t.Fatalf("target: left final state %s for %s", tbefore, tg.State())
			}
		}
	})
}

func BenchmarkOriginMigration(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		m := NewOrigin()
		m.Handle(OriginEventStart)
		m.Handle(OriginEventPrepareMigAck)
		m.Handle(OriginEventConnStateAck)
	}
}
