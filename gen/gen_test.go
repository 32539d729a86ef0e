package gen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// TestCommittedMatchesSpec is the drift check `make test` also runs
// through `capygen diff`: generated/ must be exactly what the spec gives.
func TestCommittedMatchesSpec(t *testing.T) {
	root := gentest.RepoRoot(t)
	s, err := spec.Load("spec/capybara.yaml")
	if err != nil {
		// Tests run in gen/; load with the path the Makefile uses.
		b, rerr := os.ReadFile(filepath.Join(root, "spec", "capybara.yaml"))
		if rerr != nil {
			t.Fatal(rerr)
		}
		if s, err = spec.Parse("spec/capybara.yaml", b); err != nil {
			t.Fatal(err)
		}
	}
	files, err := Generate(s, genfile.Options{Version: Version})
	if err != nil {
		t.Fatal(err)
	}
	d, changes, err := Diff(filepath.Join(root, "generated"), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) > 0 {
		t.Errorf("generated/ drifted from spec/capybara.yaml (%d files); run make generate:\n%s", len(changes), d)
	}
}

// TestDeterministic generates twice and compares every byte.
func TestDeterministic(t *testing.T) {
	s := spectest.Default(t)
	a, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2 := spectest.Default(t)
	b, err := Generate(s2, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("two runs gave %d and %d files", len(a), len(b))
	}
	for _, n := range a.Names() {
		if !bytes.Equal(a[n], b[n]) {
			t.Errorf("%s differs between two runs", n)
		}
	}
}

// TestWriteRemovesStale checks that regenerating removes generated files a
// spec no longer produces, and keeps hand-written ones.
func TestWriteRemovesStale(t *testing.T) {
	s := spectest.Default(t)
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "tcpmig", "old_message.go")
	hand := filepath.Join(dir, "tcpmig", "hand_test.go")
	os.WriteFile(stale, []byte("// "+genfile.Marker+"\npackage tcpmig\n"), 0o644)
	os.WriteFile(hand, []byte("package tcpmig\n"), 0o644)
	changes, err := Write(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0] != (Change{"tcpmig/old_message.go", "delete"}) {
		t.Errorf("Write changes = %v, want only the stale file deleted", changes)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale generated file still there: %v", err)
	}
	if _, err := os.Stat(hand); err != nil {
		t.Errorf("hand-written file removed: %v", err)
	}
	if d, changes, _ := Diff(dir, files); len(changes) != 0 {
		t.Errorf("Diff after Write = %v\n%s", changes, d)
	}

	// A renamed header: the old codec package's generated files go, its
	// hand-written ones stay, and other directories are not touched.
	renamed, err := Generate(spectest.Edit(t, "  name: tcpmig\n", "  name: wire2\n"), genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "notes", "codec_notes.go")
	os.MkdirAll(filepath.Dir(other), 0o755)
	os.WriteFile(other, []byte("// "+genfile.Marker+"\npackage notes\n"), 0o644)
	if _, err := Write(dir, renamed); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tcpmig", "codec.go")); !os.IsNotExist(err) {
		t.Errorf("after renaming the header, the old tcpmig/codec.go is still there: %v", err)
	}
	if _, err := os.Stat(hand); err != nil {
		t.Errorf("hand-written file in the old package removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a generated file outside any codec package removed: %v", err)
	}
	if d, changes, _ := Diff(dir, renamed); len(changes) != 0 {
		t.Errorf("Diff after the renamed Write = %v\n%s", changes, d)
	}
}

// threeLevels14 is the default spec with a 3-level, 14-bit directory.
func threeLevels14(t *testing.T) *spec.Spec {
	// Three levels need 15 stages (bf-p4c, measured): a Tofino-2's.
	return spectest.Edit(t,
		"target: tofino1", "target: tofino2",
		"stages: 12 ", "stages: 20 ",
		"index_bits: 16", "index_bits: 14",
		"    - hash: {name: crc16_xmodem", "    - hash: {name: crc16_dnp, width: 16, poly: 0x3D65, reversed: true, init: 0x0000, xor_out: 0xFFFF}\n    - hash: {name: crc16_xmodem",
	)
}

// TestThreeLevels14Bits regenerates for 3 levels x 14 bits and checks that
// the P4, the p4info and the pipeline model all show it.
func TestThreeLevels14Bits(t *testing.T) {
	s := threeLevels14(t)
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var p4, p4info, model string
	for _, n := range files.Names() {
		switch {
		case strings.HasSuffix(n, ".p4info.txtpb"):
			p4info = string(files[n])
		case strings.HasPrefix(n, "p4/") && strings.HasSuffix(n, ".p4") && !strings.HasSuffix(n, "headers.p4"):
			p4 = string(files[n])
		case strings.HasPrefix(n, "pipeline/") && strings.HasSuffix(n, ".go"):
			model += string(files[n])
		}
	}
	for i := 0; i < 3; i++ {
		for _, reg := range []string{fmt.Sprintf("dir%d_key", i), fmt.Sprintf("dir%d_target", i), fmt.Sprintf("dir%d_origin", i), fmt.Sprintf("dir%d_port", i)} {
			if !strings.Contains(p4, reg) {
				t.Errorf("P4 lacks register %s", reg)
			}
			if !strings.Contains(p4info, reg) {
				t.Errorf("p4info lacks register %s", reg)
			}
		}
	}
	if strings.Contains(p4, "dir3_key") || strings.Contains(p4info, "dir3_key") {
		t.Errorf("P4 or p4info has a fourth level")
	}
	if got := len(regexp.MustCompile(`Register<(dir_key_t|bit<\d+>), bit<14>>\(16384[,)]`).FindAllString(p4, -1)); got != 12 {
		t.Errorf("P4 has %d registers of 2^14 cells indexed by bit<14>, want 12 (key, target, origin and port for 3 levels)", got)
	}
	if !strings.Contains(p4info, "size: 16384") {
		t.Errorf("p4info shows no register of 16384 cells")
	}
	if !strings.Contains(p4, "0x3D65") && !strings.Contains(p4, "0x3d65") {
		t.Errorf("P4 lacks the third level's CRC polynomial 0x3D65")
	}
	if !regexp.MustCompile(`IndexBits\s*=\s*14\b`).MatchString(model) || !regexp.MustCompile(`Levels\s*=\s*3\b`).MatchString(model) {
		t.Errorf("pipeline model does not declare 3 levels of 14 index bits")
	}
	if !strings.Contains(model, "0x3d65") && !strings.Contains(model, "0x3D65") && !strings.Contains(model, "15717") {
		t.Errorf("pipeline model lacks the third level's CRC polynomial 0x3D65")
	}
}

// TestBuildsInTempModule generates the default spec and an edited one into a
// temporary module that points back at this repository, and builds and
// vets it (cilium/ebpf bpf2go's TestRun pattern).
func TestBuildsInTempModule(t *testing.T) {
	gentest.NeedGo(t)
	for name, s := range map[string]*spec.Spec{"default": spectest.Default(t), "three-levels-14": threeLevels14(t)} {
		t.Run(name, func(t *testing.T) {
			const mod = "example.com/capyuser"
			files, err := Generate(s, genfile.Options{ImportRoot: mod + "/generated"})
			if err != nil {
				t.Fatal(err)
			}
			dir := gentest.Module(t, nil, mod)
			if _, err := Write(filepath.Join(dir, "generated"), files); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"mod", "tidy"}, {"build", "./..."}, {"vet", "./..."}} {
				gentest.Go(t, dir, args...)
			}
		})
	}
}

// TestDiffIsAPatch checks that Diff's output is a unified diff patch(1)
// and git apply accept: /dev/null for created and deleted files, and hunks
// without a phantom empty last line.
func TestDiffIsAPatch(t *testing.T) {
	files := genfile.Files{
		"tcpmig/kept.go":    []byte("// " + genfile.Marker + "\npackage tcpmig\n\nconst A = 1\n"),
		"tcpmig/created.go": []byte("// " + genfile.Marker + "\npackage tcpmig\n"),
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "tcpmig"), 0o755)
	os.WriteFile(filepath.Join(dir, "tcpmig", "kept.go"), []byte("// "+genfile.Marker+"\npackage tcpmig\n\nconst A = 2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "tcpmig", "stale.go"), []byte("// "+genfile.Marker+"\npackage tcpmig\n"), 0o644)
	d, changes, err := Diff(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 3 {
		t.Fatalf("Diff changes = %v, want create, update and delete", changes)
	}
	name := strings.TrimPrefix(filepath.ToSlash(dir), "/")
	for _, want := range []string{
		"--- /dev/null\n+++ b/" + name + "/tcpmig/created.go\n@@ -0,0 +1,2 @@\n",
		"--- a/" + name + "/tcpmig/kept.go\n+++ b/" + name + "/tcpmig/kept.go\n@@ -1,4 +1,4 @@\n",
		"-const A = 2\n+const A = 1\n",
		"--- a/" + name + "/tcpmig/stale.go\n+++ /dev/null\n@@ -1,2 +0,0 @@\n",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Diff output lacks %q:\n%s", want, d)
		}
	}
}

// A spec name that becomes an identifier the generated Go has already, or
// a codec package name that a generated local name hides, is refused with
// the name to change, not left to the compiler.
func TestGeneratedGoClashes(t *testing.T) {
	stage := func(name string) []string {
		return []string{
			"  - name: conn_state_ack\n    stage: conn_state_ack\n", "  - name: conn_state_ack\n    stage: conn_state_ack\n  - name: " + name + "\n    stage: " + name + "\n",
			"      - {name: heartbeat_update, value: 12,", "      - {name: " + name + ", value: 8}\n      - {name: heartbeat_update, value: 12,",
		}
	}
	for _, tc := range []struct {
		edits []string
		want  string
	}{
		{[]string{"  name: tcpmig\n", "  name: drop\n"}, "pipeline/pipeline.go declares drop, which hides the imported package drop; give header.name another name"},
		{[]string{"  name: tcpmig\n", "  name: x\n"}, "migstate/origin.go declares x"},
		{stage("err_bad_magic"), "tcpmig/codec.go and tcpmig/messages.go both declare ErrBadMagic"},
		{stage("magic_value"), "both declare MagicValue"},
		{stage("layer"), "both declare FuzzDecodeLayer"},
	} {
		s, err := spec.Parse(spectest.EditedName, spectest.EditYAML(t, tc.edits...))
		if err != nil {
			t.Fatalf("%q: %v", tc.edits[1], err)
		}
		if _, err := Generate(s, genfile.Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: Generate = %v, want an error saying %q", tc.edits[1], err, tc.want)
		}
	}
}

// An enum whose P4 typedef or constants the program declares already is
// refused, naming both declarations.
func TestGeneratedP4Clashes(t *testing.T) {
	s, err := spec.Parse(spectest.EditedName, spectest.EditYAML(t, "enums:\n", "enums:\n  - name: role\n    bits: 2\n    values:\n      - {name: client, value: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Generate(s, genfile.Options{})
	for _, want := range []string{"both declare role_t", "both declare ROLE_CLIENT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Generate = %v, want an error saying %q", err, want)
		}
	}
}
