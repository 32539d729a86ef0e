package testbed

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunDirTraversal: a tag is one path element of RunDir, and nothing
// is made for a tag CheckTag refuses.
func TestRunDirTraversal(t *testing.T) {
	target := filepath.Join(t.TempDir(), "x")
	tag := "a/../../.." + target
	if dir := RunDir(tag); filepath.Dir(dir) != filepath.Clean(os.TempDir()) {
		t.Errorf("RunDir(%q) = %s, outside %s", tag, dir, os.TempDir())
	}
	if dir, err := makeRunDir(tag); !errors.Is(err, ErrTopology) {
		t.Errorf("makeRunDir(%q) = %s, %v; want ErrTopology", tag, dir, err)
	}
	if _, err := os.Lstat(target); err == nil {
		t.Errorf("makeRunDir(%q) made %s", tag, target)
	}
}

// TestCapyrunUpTraversalTag: capyrun testbed up made the log directory of
// a topology with processes before the tag was checked, wherever the tag
// led.
func TestCapyrunUpTraversalTag(t *testing.T) {
	bin := capyrun(t)
	target := filepath.Join(t.TempDir(), "x")
	tag := "a/../../.." + target
	out, err := exec.Command(bin, "testbed", "up", "-topology", "migration.yaml", "-name", tag, "-detach").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "must be 1-12 lower-case letters and digits") {
		t.Errorf("capyrun testbed up -name %s = %v, want the tag refused:\n%s", tag, err, out)
	}
	for _, dir := range []string{target, RunDir(tag)} {
		if _, err := os.Lstat(dir); err == nil {
			os.RemoveAll(dir)
			t.Errorf("capyrun testbed up -name %s made %s", tag, dir)
		}
	}
}

// plantRunDir makes tag's RunDir as another user (uid 65534) would, with
// a symlink as a host's log pointing at a file of root's. It returns the
// victim file.
func plantRunDir(t *testing.T, tag, host string) (dir, victim string) {
	t.Helper()
	dir = RunDir(tag)
	victim = filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	log := filepath.Join(dir, host+".log")
	if err := os.Symlink(victim, log); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(log, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return dir, victim
}

func assertIntact(t *testing.T, victim string) {
	t.Helper()
	if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
		t.Errorf("%s, a symlink's target, now holds %q (%v)", victim, b, err)
	}
}

// TestRunDirOfAnotherUser: RunDir's name is predictable, so another user
// can make it first and plant symlinks for root's processes to write
// through. It is refused, with what to do, and nothing is written.
func TestRunDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a directory of another user")
	}
	tag := "rd" + strconv.Itoa(os.Getpid()%1000000)
	dir, victim := plantRunDir(t, tag, "srv")
	if _, err := makeRunDir(tag); err == nil || !strings.Contains(err.Error(), dir+" belongs to uid 65534") || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("makeRunDir over another user's %s = %v, want it refused, saying to remove it", dir, err)
	}

	// Through a bring-up whose host logs there, as capyrun testbed up has.
	needNetns(t)
	bin, started := hungServe(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bed, err := pairTopology(t, 2, true).UpWith(ctx, Options{Tag: tag, Binary: bin, LogDir: dir, ReadyTimeout: 10 * time.Second})
	if err == nil {
		bed.Down()
		t.Fatalf("UpWith with %s another user's = nil error", dir)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("UpWith error %v does not name %s", err, dir)
	}
	if _, err := os.Stat(started); err == nil {
		t.Errorf("the host's process started in another user's run directory")
	}
	assertIntact(t, victim)
	assertGone(t, tag)

	// Its own directory, but writable by others, or a symlink, is
	// refused too.
	os.RemoveAll(dir)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if _, err := makeRunDir(tag); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("makeRunDir over a mode 0777 %s = %v, want it refused", dir, err)
	}
	os.Remove(dir)
	if err := os.Symlink(t.TempDir(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := makeRunDir(tag); err == nil || !strings.Contains(err.Error(), "is a symlink") {
		t.Errorf("makeRunDir over a symlink %s = %v, want it refused", dir, err)
	}
	os.Remove(dir)
	if got, err := makeRunDir(tag); err != nil || got != dir {
		t.Errorf("makeRunDir(%s) with nothing there = %s, %v", tag, got, err)
	}
	if st, err := os.Lstat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("the run directory's mode is %v (%v), want 0700", st.Mode(), err)
	}
}

// TestStartLogSymlink: a process's log is not opened through a symlink
// (O_TRUNC would empty its target), wherever Options.LogDir is.
func TestStartLogSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "client.log")
	if err := os.Symlink(victim, log); err != nil {
		t.Fatal(err)
	}
	bed := &Testbed{Topology: Default(), Tag: "x", byHost: map[string]*Proc{}}
	p, err := bed.start("client", log, true, []string{"true"})
	if err == nil {
		<-p.Done()
		t.Errorf("start with its log a symlink to %s = nil error", victim)
	} else if !strings.Contains(err.Error(), "is a symlink") {
		t.Errorf("start with its log a symlink = %v, want it to say so", err)
	}
	assertIntact(t, victim)
}
