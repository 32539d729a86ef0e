package pipeline

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/trace.golden")

// TestTraceGolden runs one migration end to end (heartbeats, PREPARE
// steering, the ACK that installs the entry, request and response rewrite,
// a stale ACK, a resent PREPARE, a full-directory REJECTED, a half-close,
// the release, a re-migration by the holder) and compares every frame in and out with
// testdata/trace.golden: a byte-exact record of the switch semantics that
// other implementations (the P4 program on a model, the simulator) can be
// checked against.
func TestTraceGolden(t *testing.T) {
	e := newEnv(t)
	if os.Getenv(specEnv) != "" {
		t.Skip("the golden trace is of the default spec")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# spec fingerprint %s\n", Fingerprint)
	step := func(name string, frame []byte, in Port) {
		r, out := e.run(frame, in)
		fmt.Fprintf(&b, "\n# %s\nin  port %d: %s\n", name, in, hex.EncodeToString(frame))
		switch r.Verdict {
		case Drop:
			fmt.Fprintf(&b, "out drop %v\n", r.Drop)
		default:
			fmt.Fprintf(&b, "out %v port %d: %s\n", r.Verdict, r.Egress, hex.EncodeToString(out))
		}
	}
	step("heartbeat from A (load 50): takes the empty register", e.heartbeat(ipA, 50), portA)
	step("heartbeat from B (load 20): smaller, takes over", e.heartbeat(ipB, 20), portB)
	step("PREPARE_MIG from A: steered to B", e.prepare(ipA), portA)
	step("PREPARE_MIG from B: B is the least loaded, REJECTED", e.prepare(ipB), portB)
	step("PREPARE_MIG_ACK with LOAD from B: installs client -> B", e.ack(ipB, ipA, ipClient, cport, true), portB)
	step("request client -> A: rewritten to B", tcpFrame(t, ipClient, ipA, cport, svport, "PA", []byte("GET /")), portClient)
	step("response B -> client: source rewritten to A", tcpFrame(t, ipB, ipClient, svport, cport, "PA", []byte("200 OK")), portB)
	step("heartbeat from C (load 5): takes over", e.heartbeat(ipC, 5), portC)
	step("PREPARE_MIG_ACK with LOAD from C, which got an earlier copy of A's PREPARE: stale, REJECTED back to C", e.ack(ipC, ipA, ipClient, cport, true), portC)
	step("PREPARE_MIG resent by A: the entry names B, so to B, not to the least loaded C", e.prepare(ipA), portA)
	step("PREPARE_MIG_ACK with LOAD from B again: a repeat, on to A", e.ack(ipB, ipA, ipClient, cport, true), portB)
	if keys := collidingKeys(e.s, allLevels(), 0x0a4d_0002_0050, Levels+1); keys != nil {
		for i, k := range keys {
			ip, port := keyOf(k)
			step(fmt.Sprintf("PREPARE_MIG_ACK for colliding key %d", i), e.ack(ipC, ipA, ip, port, true), portC)
		}
	}
	step("client FIN (half-close): rewritten, the entry stays", tcpFrame(t, ipClient, ipA, cport, svport, "FA", nil), portClient)
	step("response B -> client after the client's FIN: still rewritten to A", tcpFrame(t, ipB, ipClient, svport, cport, "PA", []byte("bye")), portB)
	step("server FIN B -> client: rewritten to A, the entry stays", tcpFrame(t, ipB, ipClient, svport, cport, "FA", nil), portB)
	step("conn_closed from the client port: spoofed", e.connClosed(ipClient, ipA, ipClient, cport), portClient)
	step("conn_closed from B: the key leaves every level, echoed to B", e.connClosed(ipB, ipA, ipClient, cport), portB)
	step("request after the release: to A again", tcpFrame(t, ipClient, ipA, cport, svport, "A", nil), portClient)
	step("PREPARE_MIG_ACK with LOAD from B: installs client -> B again", e.ack(ipB, ipA, ipClient, cport, true), portB)
	step("PREPARE_MIG from B, which holds the client: steered by min_workload to C", e.prepareFrom(ipB, ipA, ipClient, cport), portB)
	step("PREPARE_MIG_ACK with LOAD from C to B: the holder hands over, client -> C", e.ackTo(ipC, ipB, ipA, ipClient, cport, true), portC)
	step("request client -> A: rewritten to C", tcpFrame(t, ipClient, ipA, cport, svport, "A", nil), portClient)
	step("spoofed heartbeat from the client port", e.heartbeat(ipClient, 0), portClient)

	path := filepath.Join("testdata", "trace.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./generated/pipeline -run TraceGolden -update)", err)
	}
	if d := cmp.Diff(string(want), b.String()); d != "" {
		t.Errorf("trace differs from %s (-want +got); if the change is intended, run go test ./generated/pipeline -run TraceGolden -update:\n%s", path, d)
	}
}
