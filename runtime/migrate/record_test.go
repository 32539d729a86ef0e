package migrate

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

func TestRecordJSONRoundTrip(t *testing.T) {
	k := key{[4]byte{10, 77, 0, 11}, 80, [4]byte{10, 77, 0, 1}, 40000, 7}
	r := newRecord(RoleOrigin, k, 1_000_000)
	r.Peer = netip.MustParseAddr("10.77.0.12")
	r.Result = "moved"
	r.Work = 4200 * time.Nanosecond
	r.Retries, r.StateBytes, r.Fragments = 1, 3000, 3
	for p, at := range []int64{1_000_100, 1_050_000, 1_050_500, 1_051_000, 1_052_000, 1_090_000} {
		r.mark(Phase(p), at)
	}
	r.mark(PhasePrepareSent, 9) // a resend keeps the first time
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"role":"origin"`, `"epoch":7`, `"prepare_sent":100`, `"state_acked":90000`, `"work_ns":4200`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Marshal = %s, want it to contain %s", b, want)
		}
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip = %+v, want %+v", back, r)
	}
	if d, ok := r.Latency(); !ok || d != 89900*time.Nanosecond {
		t.Fatalf("Latency() = %v, %v; want 89.9µs", d, ok)
	}
}

func TestRecordUnmarshalRefusals(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"role":"origin","origin":"x","client":"10.0.0.1:1","phases_ns":{}}`, `record origin "x"`},
		{`{"role":"origin","origin":"10.0.0.2:80","client":"10.0.0.1","phases_ns":{}}`, `record client "10.0.0.1"`},
		{`{"role":"origin","origin":"10.0.0.2:80","client":"10.0.0.1:1","peer":"nope","phases_ns":{}}`, `record peer "nope"`},
		{`{"role":"origin","origin":"10.0.0.2:80","client":"10.0.0.1:1","phases_ns":{"warp":1}}`, `record phase "warp"`},
		{`[1,2]`, `cannot unmarshal`},
	} {
		var r Record
		err := json.Unmarshal([]byte(tc.in), &r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Unmarshal(%s) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestPairAndSummarize(t *testing.T) {
	k := key{[4]byte{10, 77, 0, 11}, 80, [4]byte{10, 77, 0, 1}, 40000, 1}
	mk := func(epoch uint8, start int64) (Record, Record) {
		k.epoch = epoch
		o, tg := newRecord(RoleOrigin, k, start), newRecord(RoleTarget, k, start+10)
		o.Result, tg.Result = "moved", "accepted"
		o.Work, tg.Work = 3*time.Microsecond, 2*time.Microsecond
		o.mark(PhasePrepareSent, start)
		tg.mark(PhasePrepareReceived, start+10)
		o.mark(PhaseFrozen, start+30)
		tg.mark(PhaseReplayed, start+50)
		o.mark(PhaseStateAcked, start+70)
		o.step("dump", time.Duration(start/100))
		tg.step("restore", time.Duration(start/50))
		return o, tg
	}
	o1, t1 := mk(1, 1000)
	o2, t2 := mk(2, 2000)
	_, t3 := mk(3, 3000) // no origin record: left out
	stayed := newRecord(RoleOrigin, k, 5000)
	stayed.Result = "stayed"
	ms := Pair([]Record{t2, o1, stayed, t3, o2, t1})
	if len(ms) != 2 || ms[0].Origin.Epoch != 1 || ms[0].Target.Epoch != 1 || ms[1].Target.Epoch != 2 {
		t.Fatalf("Pair = %+v, want the two migrations matched by epoch", ms)
	}
	s := SummarizeMigrations(ms)
	if s.Migrations != 2 || s.HostOverhead.P50 != 5*time.Microsecond || s.EndToEnd.Max != 70 || s.Blackout.P50 != 20 {
		t.Fatalf("SummarizeMigrations = %+v", s)
	}
	wantSteps := []StepDist{
		{RoleOrigin, "dump", Dist{N: 2, Mean: 15, P50: 10, P99: 20, Max: 20}},
		{RoleTarget, "restore", Dist{N: 2, Mean: 30, P50: 20, P99: 40, Max: 40}},
	}
	if len(s.Steps) != 2 || s.Steps[0].Role != RoleOrigin || s.Steps[0].Name != "dump" || s.Steps[0].Dist.N != 2 ||
		s.Steps[0].Dist.Max != 20 || s.Steps[1].Name != "restore" || s.Steps[1].Dist.Max != 40 {
		t.Fatalf("SummarizeMigrations steps = %+v, want %+v", s.Steps, wantSteps)
	}
	// Steps survive the JSON lines.
	b, err := json.Marshal(o1)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || len(back.Steps) != 1 || back.Steps[0] != o1.Steps[0] {
		t.Fatalf("round trip of %s: %+v, %v", b, back.Steps, err)
	}
	if got := Summarize(nil); got != (Dist{}) {
		t.Fatalf("Summarize(nil) = %+v, want zero", got)
	}
	// A target that received the PREPARE before the origin marked it sent
	// (the kernel host transmits inside the send) is still its pair.
	o4, t4 := mk(4, 4000)
	o4.At[PhasePrepareSent] = t4.At[PhasePrepareReceived] + 1
	if ms := Pair([]Record{o4, t4}); len(ms) != 1 {
		t.Errorf("a PREPARE received before its send was marked: %d pairs, want 1", len(ms))
	}
}

func TestConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no switch", Config{}, "Switch invalid IP must be the switch's IPv4 control address"},
		{"jitter", Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: time.Millisecond, HeartbeatJitter: time.Second}, "HeartbeatJitter 1s must be in [0, HeartbeatPeriod 1ms)"},
		{"negative", Config{Switch: netip.MustParseAddr("10.0.0.254"), HoldFrames: -1}, "must not be negative"},
	} {
		_, err := tc.cfg.withDefaults()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: withDefaults() = %v, want ErrConfig containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(nil, Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("New(nil stack) = %v, want ErrConfig", err)
	}

	// A stack whose buffers can grow past the restore cap: its busy
	// connections would be refused by every target after their freeze,
	// and reset. Refused up front, naming both settings.
	a, _ := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, 1500)
	st, err := stack.New(stack.Config{Addr: netip.MustParsePrefix("10.0.0.1/24"), Seed: 1,
		TCP: tcp.Config{SendBufferMax: 8 << 20, RecvBufferMax: 8 << 20}}, a)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = New(st, Config{Switch: netip.MustParseAddr("10.0.0.254")})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "beyond MaxRestoreBuffer 4194304") || !strings.Contains(err.Error(), "SendBufferMax") {
		t.Errorf("New with 8 MiB buffers and the 4 MiB restore cap = %v, want ErrConfig naming both", err)
	}
	if e, err := New(st, Config{Switch: netip.MustParseAddr("10.0.0.254"), MaxRestoreBuffer: 8 << 20}); err != nil {
		t.Errorf("New with the cap raised to the buffers = %v", err)
	} else {
		e.Close()
	}
}

// marshalReflect is the record's JSON as encoding/json writes recordJSON,
// with a map for the phases: what AppendJSON must write, byte for byte.
func marshalReflect(t *testing.T, r Record) []byte {
	t.Helper()
	j := recordJSON{
		Role: r.Role, Origin: r.Origin.String(), Client: r.Client.String(), Epoch: r.Epoch, Result: r.Result, Err: r.Err,
		Start: r.Start, Phases: map[string]int64{}, WorkNS: int64(r.Work), Retries: r.Retries,
		StateBytes: r.StateBytes, Fragments: r.Fragments, Held: r.Held, HeldOverflow: r.HeldOverflow,
	}
	if r.Peer.IsValid() {
		j.Peer = r.Peer.String()
	}
	for _, st := range r.Steps {
		j.Steps = append(j.Steps, stepJSON{st.Name, int64(st.Dur)})
	}
	for p, at := range r.At {
		if at != 0 {
			j.Phases[Phase(p).String()] = at - r.Start
		}
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRecordAppendJSONIsEncodingJSONs(t *testing.T) {
	k := key{clientIP: [4]byte{10, 77, 0, 1}, clientPort: 40000, originIP: [4]byte{10, 77, 0, 11}, originPort: 80, epoch: 255}
	full := newRecord(RoleTarget, k, 5_000)
	full.Peer = netip.MustParseAddr("10.77.0.13")
	full.Result, full.Err = "refused", `restore: "state" <bad> & \ tab	newline
é`
	full.Work, full.Retries, full.StateBytes, full.Fragments, full.Held, full.HeldOverflow = 7*time.Microsecond, 2, 130_000, 90, 12, 3
	full.Steps = []Step{{"repair_on", time.Microsecond}, {"queue \"dump\"", 2 * time.Microsecond}}
	for p := range NumPhases {
		full.At[p] = 5_000 + int64(p)*1_000 - 2_000 // one phase before the start, one at 0
	}
	cases := map[string]Record{
		"empty":   {},
		"started": newRecord(RoleOrigin, k, 1),
		"full":    full,
	}
	for name, r := range cases {
		got, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalReflect(t, r); string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// Quantile is the nearest rank, ceil(p*n), computed exactly: p*n in
// floating point lands above a whole rank for some p (0.55*100).
func TestQuantileIsTheNearestRank(t *testing.T) {
	for n := 1; n <= 300; n++ {
		sorted := make([]time.Duration, n)
		for i := range sorted {
			sorted[i] = time.Duration(i + 1)
		}
		for k := 1; k <= 1000; k++ {
			// ceil(k*n/1000) in integers.
			want := time.Duration((k*n + 999) / 1000)
			if got := Quantile(sorted, float64(k)/1000); got != want {
				t.Fatalf("Quantile(1..%d, %v) = %d, want rank %d", n, float64(k)/1000, got, want)
			}
		}
	}
}
