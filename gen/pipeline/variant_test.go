package pipeline

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/codec"
	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

const (
	twoLevels = `    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true, init: 0x0000, xor_out: 0x0000}
    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}
`
	// Three levels, each CRC kind the table generator handles: reflected
	// with an asymmetric init and an xor_out, plain with an all-ones init,
	// and a reflected 32-bit CRC.
	threeLevels = `    - hash: {name: crc16_custom, width: 16, poly: 0x8005, reversed: true, init: 0x1234, xor_out: 0x00ff}
    - hash: {name: crc16_ccitt_false, width: 16, poly: 0x1021, reversed: false, init: 0xffff, xor_out: 0x0000}
    - hash: {name: crc32, width: 32, poly: 0x04c11db7, reversed: true, init: 0xffffffff, xor_out: 0xffffffff}
`
	oneLevel = `    - hash: {name: crc32c, width: 32, poly: 0x1edc6f41, reversed: true, init: 0xffffffff, xor_out: 0xffffffff}
`
	releaseLine = "  release: conn_closed            # and this clears the entry once the connection has finished\n"
)

// variants are specs other than the default: each is generated, built in a
// temporary module and put through the same behaviour tests as the
// committed model (generated/pipeline/*_test.go read the spec they run
// against from $CAPYGEN_PIPELINE_SPEC).
func variants(t *testing.T) map[string][]byte {
	return map[string][]byte{
		// 3 levels x 14 bits, another UDP port, an extra message with a
		// payload, and a header one byte longer (odd), which moves every
		// payload to an odd offset.
		"3x14": spectest.EditYAML(t,
			twoLevels, threeLevels,
			"index_bits: 16", "index_bits: 14",
			"udp_port: 7071", "udp_port: 9099",
			"      - {name: heartbeat_response, value: 13,", "      - {name: drain, value: 8, doc: \"A server asks for no new connections.\"}\n      - {name: heartbeat_response, value: 13,",
			"    - {name: epoch, bits: 8, doc: \"Names one migration of a connection: the origin picks it and every message of the migration carries it, so a late message of another migration of the same connection is told apart.\"}", "    - {name: epoch, bits: 8, doc: \"Names one migration of a connection: the origin picks it and every message of the migration carries it, so a late message of another migration of the same connection is told apart.\"}\n    - {name: hops, bits: 8}",
			"  - name: heartbeat_response\n", "  - name: drain\n    stage: drain\n    payload:\n      - {name: until, bits: 32}\n  - name: heartbeat_response\n",
		),
		// The switch before directory.release: RST and FIN delete, and the
		// conn_closed message is just another message, forwarded.
		"no-release": spectest.EditYAML(t, "delete_on: [rst] ", "delete_on: [rst, fin] ", releaseLine, ""),
		// One level with a 32-bit CRC and a narrow workload register, which
		// aging needs 32 bits for; RST, FIN and the release all delete.
		"1x12": spectest.EditYAML(t, twoLevels, oneLevel, "index_bits: 16", "index_bits: 12",
			"workload:\n  bits: 32", "workload:\n  bits: 20", "age_step: 1 ", "age_step: 0 ", "delete_on: [rst] ", "delete_on: [rst, fin] "),
	}
}

func TestVariantsReflectTheSpec(t *testing.T) {
	for name, y := range variants(t) {
		s, err := spec.Parse(name+".yaml", y)
		if err != nil {
			t.Fatalf("%s: spec.Parse = %v", name, err)
		}
		files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
		if err != nil {
			t.Fatalf("%s: Generate = %v", name, err)
		}
		// Collapse gofmt's alignment so the checks read naturally.
		src := strings.Join(strings.FieldsFunc(string(files["pipeline/pipeline.go"])+string(files["pipeline/hash.go"]),
			func(r rune) bool { return r == ' ' || r == '\t' }), " ")
		want := map[string][]string{
			// The TCPMig port, header length, stages and lengths are the
			// codec's (the 3x14 header is 21 bytes, port 9099, with a drain
			// stage): the model names them, never spells them.
			"3x14":       {"Levels = 3", "IndexBits = 14", "UDPPort = tcpmig.UDPPort", "migPayload = migOff + tcpmig.HeaderLen", "tcpmig.MinLen(stage)", "crc2Table = [256]uint32{", "crc := uint16(0x2c48)", "DeleteOnFIN = false", "Release = \"conn_closed\"", "case tcpmig.StageConnClosed:"},
			"no-release": {"Levels = 2", "DeleteOnRST = true", "DeleteOnFIN = true", "deleteFlags = pipe.TCPRST | pipe.TCPFIN\n", "Release = \"\"\n"},
			"1x12":       {"Levels = 1", "IndexBits = 12", "WorkloadBits = 20", "crc0Table = [256]uint32{", "DeleteOnFIN = true", "case tcpmig.StageConnClosed:"},
		}[name]
		for _, w := range want {
			if !strings.Contains(src, w) {
				t.Errorf("%s: generated code lacks %q", name, w)
			}
		}
		if strings.Contains(src, "crc1Table") && name == "1x12" {
			t.Errorf("1x12: a second level was generated")
		}
		if name == "no-release" && (strings.Contains(src, "StageConnClosed") || strings.Contains(src, "func (p *Pipeline) release(")) {
			t.Errorf("no-release: the release path was generated without directory.release")
		}
	}
}

// TestVariantsBuildAndBehave is cilium/ebpf bpf2go's TestRun pattern: the
// output goes into a temporary module that points back at this repository,
// which is vetted and runs the model's behaviour tests, for every variant.
func TestVariantsBuildAndBehave(t *testing.T) {
	gentest.NeedGo(t)
	tests, err := filepath.Glob(filepath.Join(gentest.RepoRoot(t), "generated", "pipeline", "*_test.go"))
	if err != nil || len(tests) == 0 {
		t.Fatalf("no behaviour tests in generated/pipeline: %v", err)
	}
	for name, y := range variants(t) {
		t.Run(name, func(t *testing.T) {
			dir := gentest.Module(t, nil, "example.com/variant")
			specPath := filepath.Join(dir, name+".yaml")
			gentest.WriteFiles(t, dir, genfile.Files{name + ".yaml": y})
			s, err := spec.Load(specPath)
			if err != nil {
				t.Fatal(err)
			}
			files, err := Generate(s, genfile.Options{ImportRoot: "example.com/variant"})
			if err != nil {
				t.Fatal(err)
			}
			// The model reads TCPMig through the variant's own codec.
			wire, err := codec.Generate(s, genfile.Options{ImportRoot: "example.com/variant"})
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range wire.Names() {
				if !strings.HasSuffix(n, "_test.go") {
					if err := files.Add(n, wire[n]); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, p := range tests {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				// External tests (examples) import the package by path.
				b = bytes.ReplaceAll(b, []byte(`"`+genfile.DefaultImportRoot+"/"+Dir+`"`), []byte(`"example.com/variant/`+Dir+`"`))
				if err := files.Add(Dir+"/"+filepath.Base(p), b); err != nil {
					t.Fatal(err)
				}
			}
			gentest.WriteFiles(t, dir, files)
			// The model's tests read the spec they run against from here.
			t.Setenv(specEnvVar, specPath)
			gentest.Go(t, dir, "vet", "./...")
			out := gentest.Go(t, dir, "test", "-count=1", "-v", "./...")
			// The tests that matter most must have run, not skipped:
			// every level filled before REJECTED, deletes per delete_on.
			must := []string{"--- PASS: TestFullDirectoryRejects", "--- PASS: TestDeleteOnRSTAndFIN", "--- PASS: TestCRCParity", "--- PASS: TestHeartbeat",
				// The lease: a stale ACK goes back, a resent PREPARE to the entry's target.
				"--- PASS: TestTwoTargetsOneWins", "--- PASS: TestRemigrationByTheHolder", "--- PASS: TestPrepareResendGoesToTheEntrysTarget", "--- PASS: TestPrepareFromTheHolder"}
			if len(s.Directory.Levels) > 1 {
				must = append(must, "--- PASS: TestLeaseKeepsOneCopy")
			}
			if s.Directory.Release != "" {
				must = append(must, "--- PASS: TestReleaseClearsEveryLevel", "--- PASS: TestReleaseRefused")
			} else {
				must = append(must, "--- PASS: TestNoReleaseForwards")
			}
			if !s.Directory.DeletesOn("fin") {
				must = append(must, "--- PASS: TestHalfClosedMigratedConnection")
			}
			for _, must := range must {
				if !strings.Contains(out, must) {
					t.Errorf("%s: go test output lacks %q:\n%s", name, must, out)
				}
			}
		})
	}
}

// specEnvVar is what generated/pipeline's tests read the spec path from.
const specEnvVar = "CAPYGEN_PIPELINE_SPEC"

func TestDeterministic(t *testing.T) {
	a, err := Generate(spectest.Default(t), genfile.Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		b, err := Generate(spectest.Default(t), genfile.Options{Version: "v1.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range a.Names() {
			if !bytes.Equal(a[n], b[n]) {
				t.Fatalf("%s differs between two runs", n)
			}
		}
	}
	if !bytes.HasPrefix(a["pipeline/pipeline.go"], []byte("// "+genfile.Marker+"\n// versions:\n// \tcapygen v1.2.3\n")) {
		t.Errorf("pipeline.go header:\n%s", a["pipeline/pipeline.go"][:200])
	}
}

// TestUnsupported: specs the switch semantics cannot apply to are refused
// with an error naming the spec path and what to change.
func TestUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(s *spec.Spec)
		want   string
	}{
		{"wrapping checksum", func(s *spec.Spec) { s.Transport.Checksum = "wrapping16" }, `transport.checksum: "wrapping16"`},
		{"no levels", func(s *spec.Spec) { s.Directory.Levels = nil }, "directory.levels: at least one level"},
		{"index wider than the CRC", func(s *spec.Spec) {
			s.Directory.Levels[0].Hash = &spec.CRC{Name: "crc8", Width: 8, Poly: 7}
		}, "directory.index_bits: 16 does not fit level 0's 8-bit CRC"},
		{"CRC too narrow", func(s *spec.Spec) { s.Directory.Levels[1].Hash.Width = 4 }, "directory.levels[1].hash: width 4"},
		{"other insert", func(s *spec.Spec) { s.Directory.Insert = "overwrite" }, `directory.insert: "overwrite"`},
		{"delete on SYN", func(s *spec.Spec) { s.Directory.DeleteOn = []string{"syn"} }, `directory.delete_on: "syn"`},
		{"no rejected message", func(s *spec.Spec) { s.Messages = without(s.Messages, "rejected") }, `no message "rejected"`},
		{"no heartbeat response", func(s *spec.Spec) { s.Messages = without(s.Messages, "heartbeat_response") }, `no message "heartbeat_response"`},
		{"no load flag", func(s *spec.Spec) { s.HeaderField("load").Name = "install" }, `no field "load"`},
		{"key port too wide", func(s *spec.Spec) { s.HeaderField("client_port").Bits = 32 }, "header.fields.client_port"},
		{"workload too wide", func(s *spec.Spec) { s.Workload.Bits = 64 }, "workload.bits: 64"},
		{"no metric in the response", func(s *spec.Spec) { s.MessageByName("heartbeat_response").Payload[0].Name = "w" }, `messages.heartbeat_response.payload: no field "workload"`},
		{"response larger than the update", func(s *spec.Spec) { s.MessageByName("heartbeat_response").PayloadBytes = 8 }, "fixed payload is 8 bytes, more than the 4 bytes of heartbeat_update"},
		{"shared stage", func(s *spec.Spec) { s.MessageByName("prepare_mig").Stage = s.MessageByName("rejected").Stage }, "shares stage 1"},
		{"no target", func(s *spec.Spec) { s.Target = nil }, "target: no target profile"},
		{"empty host table", func(s *spec.Spec) { s.Tables.Hosts = 0 }, "tables.hosts: size 0"},
		{"release is a message the switch acts on", func(s *spec.Spec) { s.Directory.Release = "prepare_mig_ack" }, "directory.release: prepare_mig_ack is a message the switch already acts on"},
		{"release is no message", func(s *spec.Spec) { s.Directory.Release = "bye" }, `directory.release: messages: no message "bye"`},
		{"release with a payload", func(s *spec.Spec) { s.Directory.Release = "conn_state" }, "directory.release: conn_state must be a header-only message from: server"},
		{"release from the switch", func(s *spec.Spec) { s.MessageByName("conn_closed").From = "switch" }, "directory.release: conn_closed must be a header-only message from: server"},
	} {
		s := spectest.Default(t)
		tc.change(s)
		_, err := Generate(s, genfile.Options{})
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Generate = %v, want ErrUnsupported containing %q", tc.name, err, tc.want)
		}
	}
}

func without(ms []*spec.Message, name string) []*spec.Message {
	var out []*spec.Message
	for _, m := range ms {
		if m.Name != name {
			out = append(out, m)
		}
	}
	return out
}
