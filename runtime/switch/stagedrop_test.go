package softswitch

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
)

// migMsg is an encodable TCPMig message.
type migMsg interface {
	EncodedLen() int
	Encode([]byte) (int, error)
}

// s1ToS2 frames a TCPMig message from s1 to s2 (stages the pipeline
// forwards by ipv4_host unchanged: conn_state, conn_state_ack).
func s1ToS2(t testing.TB, m migMsg) []byte {
	t.Helper()
	b := make([]byte, m.EncodedLen())
	if _, err := m.Encode(b); err != nil {
		t.Fatal(err)
	}
	return udpFrame(t, macS1, macS2, netip.AddrPortFrom(ipS1, tcpmig.UDPPort), netip.AddrPortFrom(ipS2, tcpmig.UDPPort), b)
}

var migFields = tcpmig.TCPMigFields{OriginIP: ipS1.As4(), OriginPort: 80, ClientIP: ipClient.As4(), ClientPort: 40000, Epoch: 3}

// fragments returns the CONN_STATE fragments of an n-byte state.
func fragments(t testing.TB, n int) [][]byte {
	t.Helper()
	m := tcpmig.ConnState{TCPMigFields: migFields}
	var out [][]byte
	if err := tcpmig.FragmentConnState(&m, make([]byte, n), func(f *tcpmig.ConnState) error {
		out = append(out, s1ToS2(t, f))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// stageOf is the stage and fragment index of a frame the switch sent.
func stageOf(t testing.TB, f []byte) (tcpmig.Stage, uint16) {
	t.Helper()
	st, frag, ok := tcpmigStage(f)
	if !ok {
		t.Fatalf("frame %x is not TCPMig", f)
	}
	return st, frag
}

func TestStageDrop(t *testing.T) {
	ack := s1ToS2(t, &tcpmig.ConnStateAck{TCPMigFields: migFields})
	frags := fragments(t, 4000) // 3 fragments
	if len(frags) != 3 {
		t.Fatalf("a 4000-byte state is %d fragments, want 3", len(frags))
	}
	cases := []struct {
		rule string
		send [][]byte
		// want is the fragment indexes (conn_state) or -1 (conn_state_ack)
		// s2 receives, in order.
		want          []int
		seen, dropped uint64
	}{
		{"conn_state:1", slices.Concat(frags, frags), []int{1, 2, 0, 1, 2}, 6, 1},
		{"conn_state:2", slices.Concat(frags, frags), []int{2, 0, 1, 2}, 6, 2},
		{"conn_state:all", slices.Concat(frags, [][]byte{ack}), []int{-1}, 3, 3},
		{"conn_state:1@1", slices.Concat(frags, frags), []int{0, 2, 0, 1, 2}, 2, 1},
		{"conn_state:all@2", slices.Concat(frags, frags), []int{0, 1, 0, 1}, 2, 2},
		{"conn_state_ack:all", slices.Concat([][]byte{ack, ack}, frags), []int{0, 1, 2}, 2, 2},
		{"conn_state_ack:1", [][]byte{ack, ack, ack}, []int{-1, -1}, 3, 1},
		{"conn_state_ack:1/egress", [][]byte{ack, ack}, []int{-1}, 2, 1},
		{"conn_state_ack:all+1", [][]byte{ack, ack, ack}, []int{-1}, 3, 2},
		{"conn_state:1@1+1", slices.Concat(frags, frags), []int{0, 1, 2, 0, 2}, 2, 1},
		{"conn_state_ack:1+5", [][]byte{ack, ack}, []int{-1, -1}, 2, 0},
		{"prepare_mig:all", slices.Concat(frags, [][]byte{ack}), []int{0, 1, 2, -1}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			d, err := ParseStageDrop(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			n := newTestNet(t, func(c *Config) { c.StageDrops = []StageDrop{d} })
			for _, f := range tc.send {
				n.sw.Deliver(0, pS1, f)
			}
			var got []int
			for _, f := range n.s2.take() {
				st, frag := stageOf(t, f)
				if st == tcpmig.StageConnStateAck {
					got = append(got, -1)
				} else {
					got = append(got, int(frag))
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("s2 received %v, want %v", got, tc.want)
			}
			r := n.sw.Report()
			want := []StageDropReport{{Rule: tc.rule, Stage: d.Stage.String(), Seen: tc.seen, Dropped: tc.dropped}}
			if !reflect.DeepEqual(r.StageDrops, want) {
				t.Errorf("report stage drops = %+v, want %+v", r.StageDrops, want)
			}
			if r.FaultDrops() != tc.dropped || r.StageDropped() != tc.dropped {
				t.Errorf("FaultDrops() = %d, StageDropped() = %d, want %d", r.FaultDrops(), r.StageDropped(), tc.dropped)
			}
			// Ingress drops happen before the pipeline; egress ones after.
			processed := uint64(len(tc.send))
			if !d.Egress {
				processed -= tc.dropped
			}
			if r.Verdicts.Processed != processed {
				t.Errorf("the pipeline processed %d frames, want %d", r.Verdicts.Processed, processed)
			}
			if !strings.Contains(r.String(), "stage drop "+tc.rule+": dropped") {
				t.Errorf("report text lacks the stage drop:\n%s", r)
			}
		})
	}
}

// Stage drops count datagrams in the order the switch receives them, so
// the same frames give the same drops; other traffic passes untouched.
func TestStageDropIsDeterministicAndTargeted(t *testing.T) {
	run := func() ([][]byte, Report) {
		n := newTestNet(t, func(c *Config) {
			c.StageDrops = []StageDrop{{Stage: tcpmig.StageConnState, Count: 2}, {Stage: tcpmig.StageConnState, Count: 1, OnlyFragment: true, Fragment: 2}}
		})
		for _, f := range fragments(t, 6000) {
			n.sw.Deliver(0, pS1, f)
		}
		n.sw.Deliver(0, pClient, toS1(t, 9))
		n.sw.Deliver(0, pS1, heartbeat(t, macS1, n.sw.ControlMAC(), ipS1, ipControl, 1))
		return append(n.s2.take(), n.s1.take()...), n.sw.Report()
	}
	a, ra := run()
	b, rb := run()
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(ra.StageDrops, rb.StageDrops) {
		t.Fatal("two runs of the same frames dropped differently")
	}
	// Fragments 0 and 1 go to the first rule, 2 to the second; 3 and 4
	// pass. The TCP segment and the heartbeat reply reach s1.
	if len(a) != 4 {
		t.Fatalf("%d frames went out, want fragments 3 and 4, the segment and the heartbeat reply", len(a))
	}
	for i, want := range []uint16{3, 4} {
		if st, frag := stageOf(t, a[i]); st != tcpmig.StageConnState || frag != want {
			t.Errorf("frame %d is %v fragment %d, want conn_state %d", i, st, frag, want)
		}
	}
	if st, _ := stageOf(t, a[3]); st != tcpmig.StageHeartbeatResponse {
		t.Errorf("last frame is %v, want the heartbeat reply", st)
	}
	if got := ra.StageDrops; got[0].Dropped != 2 || got[0].Seen != 5 || got[1].Dropped != 1 || got[1].Seen != 1 || got[1].Rule != "conn_state:1@2" {
		t.Errorf("stage drops = %+v", got)
	}
}

func TestParseStageDrop(t *testing.T) {
	good := map[string]StageDrop{
		"prepare_mig:1":           {Stage: tcpmig.StagePrepareMig, Count: 1},
		"2:3":                     {Stage: tcpmig.StagePrepareMig, Count: 3},
		"prepare_mig_ack:all":     {Stage: tcpmig.StagePrepareMigAck, Count: DropAll},
		"conn_state:-1@0":         {Stage: tcpmig.StageConnState, Count: DropAll, OnlyFragment: true},
		"conn_state:1@2":          {Stage: tcpmig.StageConnState, Count: 1, OnlyFragment: true, Fragment: 2},
		"conn_state_ack:5/egress": {Stage: tcpmig.StageConnStateAck, Count: 5, Egress: true},
		"conn_closed:1/ingress":   {Stage: tcpmig.StageConnClosed, Count: 1},
		"conn_state_ack:all+1":    {Stage: tcpmig.StageConnStateAck, Count: DropAll, Pass: 1},
		"conn_state:2@3+4/egress": {Stage: tcpmig.StageConnState, Count: 2, OnlyFragment: true, Fragment: 3, Pass: 4, Egress: true},
	}
	for in, want := range good {
		got, err := ParseStageDrop(in)
		if err != nil || got != want {
			t.Errorf("ParseStageDrop(%q) = %+v, %v, want %+v", in, got, err, want)
			continue
		}
		if back, err := ParseStageDrop(got.String()); err != nil || back != got {
			t.Errorf("%q: String %q reads back as %+v, %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"", "prepare_mig", "prepare:1", "prepare_mig:0", "prepare_mig:-2", "prepare_mig:x", "conn_state:1@x", "conn_state:1@70000", "8:1", "conn_state:1/sideways", "conn_state_ack:all+x", "conn_state_ack:all+-1", "conn_state_ack:all+"} {
		if d, err := ParseStageDrop(in); err == nil {
			t.Errorf("ParseStageDrop(%q) = %+v, want an error", in, d)
		} else if !strings.Contains(err.Error(), "STAGE:COUNT") {
			t.Errorf("ParseStageDrop(%q) error %q does not say what to write", in, err)
		}
	}
	for _, d := range []StageDrop{{Stage: tcpmig.StagePrepareMig}, {Stage: 8, Count: 1}, {Stage: tcpmig.StageConnState, Count: -3}, {Stage: tcpmig.StageConnStateAck, Count: 1, Pass: -1}} {
		cfg := Config{Ports: []PortConfig{{ID: 1, Role: pipeline.RoleClient, Endpoint: &recorder{}}}, StageDrops: []StageDrop{d}}
		if _, err := New(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "StageDrops[0]") {
			t.Errorf("New with %+v = %v, want ErrConfig naming StageDrops[0]", d, err)
		}
	}
}
