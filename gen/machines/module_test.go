package machines

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/codec"
	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// verifyingSpec adds a state, an event and an action to the origin
// machine, and changes the switch budget and port (which the machines
// must not care about).
func verifyingSpec(t *testing.T) *spec.Spec {
	return spectest.Edit(t,
		"index_bits: 16", "index_bits: 14",
		"    - hash: {name: crc16_xmodem", "    - hash: {name: crc16_dnp, width: 16, poly: 0x3D65, reversed: true, xor_out: 0xFFFF}\n    - hash: {name: crc16_xmodem",
		"udp_port: 7071", "udp_port: 7171",
		"      - {name: failed, final: true}\n", "      - {name: failed, final: true}\n      - name: verifying\n        doc: The target is checking the restored state.\n        timeout: {after: 20ms, retries: 1, resend: send_conn_state, exhausted: failed, give_up: [abort_connection]}\n",
		"      - {name: conn_state_ack, message: conn_state_ack}\n", "      - {name: conn_state_ack, message: conn_state_ack}\n      - {name: verified, doc: \"The target confirmed the state.\"}\n",
		"      - {name: abort_connection,", "      - {name: log_verified}\n      - {name: abort_connection,",
		"{from: transferring, on: conn_state_ack, to: done, do: [release_connection]}", "{from: transferring, on: conn_state_ack, to: verifying}\n      - {from: verifying, on: verified, to: done, do: [log_verified, release_connection]}",
		// A machine whose initial state is timed and whose events are not
		// messages, and one with no timeout at all.
		"      - {in: abandoned, on: rejected}             # REJECTED of a repeated ACK\n", "      - {in: abandoned, on: rejected}\n"+`
  - name: probe
    initial: waiting
    states:
      - {name: waiting, timeout: {after: 1s, retries: 0, exhausted: gone}}
      - {name: gone, final: true}
    events:
      - {name: poke}
    actions:
      - {name: note}
    transitions:
      - {from: waiting, on: poke, to: gone, do: [note]}
  - name: plain
    initial: first
    states:
      - {name: first}
      - {name: second, final: true}
    events:
      - {name: go_on}
    actions:
      - {name: say}
    transitions:
      - {from: first, on: go_on, to: second, do: [say]}
`,
	)
}

func TestEditedSpecShowsUp(t *testing.T) {
	s := verifyingSpec(t)
	files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatal(err)
	}
	src, dot := string(files["migstate/origin.go"]), string(files["migstate/origin.dot"])
	for _, want := range []string{"OriginStateVerifying", "OriginEventVerified", "OriginActionLogVerified", "20 * time.Millisecond",
		"{From: OriginStateTransferring, On: OriginEventConnStateAck, To: OriginStateVerifying}", "spec fingerprint: " + s.Fingerprint} {
		if !strings.Contains(src, want) {
			t.Errorf("origin.go lacks %q", want)
		}
	}
	for _, want := range []string{`"transferring" -> "verifying" [label="conn_state_ack"]`, `"verifying" -> "done" [label="verified / log_verified, release_connection"]`,
		`"verifying" -> "failed" [label="timeout (exhausted) / abort_connection", style=dashed]`} {
		if !strings.Contains(dot, want) {
			t.Errorf("origin.dot lacks %s", want)
		}
	}
}

// TestBuildsInModule writes the edited spec's package into a temporary
// module, beside the codec package whose stages it names, and builds,
// vets and runs a test of the new path there (cilium bpf2go's TestRun
// pattern).
func TestBuildsInModule(t *testing.T) {
	gentest.NeedGo(t)
	s, opt := verifyingSpec(t), genfile.Options{ImportRoot: "example.com/capytest"}
	files, err := Generate(s, opt)
	if err != nil {
		t.Fatal(err)
	}
	codecFiles, err := codec.Generate(s, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range codecFiles.Names() {
		if !strings.HasSuffix(name, "_test.go") { // the codec's own tests are not this test's
			if err := files.Add(name, codecFiles[name]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := files.Add("migstate/verify_test.go", []byte(verifyTest)); err != nil {
		t.Fatal(err)
	}
	dir := gentest.Module(t, files, "example.com/capytest")
	for _, args := range [][]string{{"build", "./..."}, {"vet", "./..."}, {"test", "-count=1", "./..."}} {
		gentest.Go(t, dir, args...)
	}
}

// verifyTest runs the verifying state and the two extra machines of
// verifyingSpec in the temporary module.
const verifyTest = `package migstate

import (
	"testing"

	"example.com/capytest/tcpmig"
)

func TestVerifying(t *testing.T) {
	m := NewOrigin()
	for _, ev := range []OriginEvent{OriginEventStart, OriginEventPrepareMigAck, OriginEventConnStateAck} {
		if _, err := m.Handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	step, err := m.Handle(OriginEventTimeout)
	if err != nil || m.State() != OriginStateVerifying || step.Retry != 1 || step.Actions()[0] != OriginActionSendConnState {
		t.Fatalf("retry in verifying = %+v, %v", step, err)
	}
	step, err = m.Handle(OriginEventVerified)
	if err != nil || m.State() != OriginStateDone || !step.StopTimer || len(step.Actions()) != 2 {
		t.Fatalf("verified = %+v, %v", step, err)
	}
}

func TestProbe(t *testing.T) {
	p := NewProbe()
	if p.StartTimer() != 1e9 || p.RetriesLeft() != 0 {
		t.Fatalf("probe starts with timer %v, %d retries", p.StartTimer(), p.RetriesLeft())
	}
	if _, ok := ProbeEventForStage(tcpmig.StagePrepareMig); ok {
		t.Fatal("probe has no message events")
	}
	step, err := p.Handle(ProbeEventTimeout)
	if err != nil || p.State() != ProbeStateGone || !step.StopTimer || step.ArmTimer {
		t.Fatalf("probe timeout = %+v, %v", step, err)
	}
	q := NewPlain()
	if _, err := q.Handle(PlainEventGoOn); err != nil || q.State() != PlainStateSecond || !q.State().IsFinal() {
		t.Fatalf("plain = %s, %v", q.State(), err)
	}
	if _, err := q.Handle(PlainEventGoOn); err == nil {
		t.Fatal("plain: second go_on accepted in a final state with no transition")
	}
}
`

func TestRefusesWhatGoCannotHold(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pairs []string
		want  string
	}{
		{"doc machine", []string{"  - name: target\n", "  - name: doc\n"}, `machine "doc" would overwrite migstate/doc.go; rename it`},
		{"shared name", []string{"  - name: target\n", "  - name: event_error\n"}, "the package's own EventError and machine event_error both become the Go identifier EventError; rename one"},
		// The loader sees distinct names; only the emitter knows the zero value is TargetActionInvalid.
		{"derived name", []string{"      - {name: free_buffer, doc: \"Drop the held packets.\"}\n", "      - {name: free_buffer, doc: \"Drop the held packets.\"}\n      - {name: invalid}\n"},
			"machine target's invalid action and action target.invalid both become the Go identifier TargetActionInvalid; rename one"},
		{"long step", []string{"to: abandoned, do: [free_buffer]}", "to: abandoned, do: [free_buffer" + strings.Repeat(", free_buffer", 8) + "]}"},
			"machine target does 9 actions in one step, more than the 8 runtime/genrt/machine carries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(spectest.Edit(t, tc.pairs...), genfile.Options{})
			if err == nil || !errors.Is(err, ErrBadMachine) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Generate = %v, want an ErrBadMachine error containing %q", err, tc.want)
			}
		})
	}
}

// TestDOTRenders runs Graphviz on every drawing when it is installed.
func TestDOTRenders(t *testing.T) {
	dotBin, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("graphviz dot is not installed")
	}
	files, err := Generate(verifyingSpec(t), genfile.Options{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files.Names() {
		if !strings.HasSuffix(name, ".dot") {
			continue
		}
		cmd := exec.Command(dotBin, "-Tsvg")
		cmd.Stdin = strings.NewReader(string(files[name]))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "<svg") {
			t.Errorf("dot -Tsvg %s: %v\n%s", name, err, out)
		}
	}
}
