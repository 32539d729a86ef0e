package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NamespacePrefix starts every namespace the testbed creates:
// <NamespacePrefix><tag>-<host>.
const NamespacePrefix = "capy-"

var tagRE = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// CheckTag reports a tag that cannot name a testbed: it must be 1-12
// lower-case letters and digits, so that it stays one path element of
// RunDir and one tag's namespace prefix never matches another's.
func CheckTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("%w: tag %q must be 1-12 lower-case letters and digits", ErrTopology, tag)
	}
	return nil
}

// Testbed is a topology brought up. Methods are safe for concurrent use.
type Testbed struct {
	Topology *Topology
	// Tag names this instance: namespaces are capy-<Tag>-<host>.
	Tag string

	mu     sync.Mutex
	nss    []string // namespaces created, in creation order
	procs  []*Proc
	byHost map[string]*Proc // the run process of each host
	down   bool

	upCancel context.CancelFunc // cancels UpWith's bring-up
	upDone   chan struct{}      // closed as UpWith returns
	downDone chan struct{}      // closed when the first Down has finished
	lock     *os.File           // the tag's lock (lockTag), held until Down
}

// Options tunes UpWith. The zero value is Up's behaviour.
type Options struct {
	// Tag names the testbed (1-12 lower-case letters and digits; no '-'
	// so one tag's prefix never matches another's namespaces). Empty
	// picks a fresh one: the PID plus random digits.
	Tag string
	// Binary is the capyrun executable that runs the hosts' run
	// processes (capyrun switch, capyrun serve). Empty means this
	// executable, which is right for capyrun; a test binary passes a
	// built capyrun instead.
	Binary string
	// Args are appended to the command line of the process each host
	// runs, after the topology's own args: Args[role] for every host of
	// that role ("server", "switch", "client"), then Args[host name].
	// This is where a test adds fault flags to the switch, or migration
	// flags to every server.
	Args map[string][]string
	// HostArgs, when set, is called for each host with a run key as its
	// process starts (the testbed's Tag is known by then) and its result
	// appended last: per-host arguments such as
	// -control ControlSocket(tb.Tag, h.Name).
	HostArgs func(tb *Testbed, h Host) []string
	// LogDir, when set, sends each started process's output to
	// LogDir/<host>.log instead of memory, so the processes can outlive
	// this one (capyrun testbed up -detach; down stops them by PID).
	// capyrun testbed up uses RunDir(tag).
	LogDir string
	// ReadyTimeout bounds the wait for each process to print "ready"
	// (default 30s).
	ReadyTimeout time.Duration
}

// NewTag returns a fresh testbed tag: this process's PID and random digits.
func NewTag() string { return fmt.Sprintf("%d%03d", os.Getpid(), rand.IntN(1000)) }

// RunDir is where the processes of the testbed tagged tag keep their
// files: their control sockets (ControlSocket) and, when capyrun testbed
// up started them, their output (Options.LogDir), one <host>.log each.
// UpWith creates it when a host runs a process; Down removes the sockets
// and the directory, unless logs are left in it. The tag must pass
// CheckTag; UpWith and DownTag refuse any other.
func RunDir(tag string) string {
	// Even an unchecked tag such as a/../../x stays one path element.
	return filepath.Join(os.TempDir(), "capygen-testbed-"+strings.ReplaceAll(tag, "/", "_"))
}

// makeRunDir creates tag's RunDir, mode 0700: the processes in it run as
// root, and nobody else may plant a file or symlink there for them to
// write through. Its name is predictable, so one already there is used
// only if it passes checkOwnDir.
func makeRunDir(tag string) (string, error) {
	if err := CheckTag(tag); err != nil {
		return "", err
	}
	dir := RunDir(tag)
	if err := os.Mkdir(dir, 0o700); err == nil {
		return dir, nil
	} else if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("testbed run directory: %w", err)
	}
	return dir, checkOwnDir("testbed run directory", dir)
}

// checkOwnDir reports why the existing dir is not safe to keep this
// process's files in: not a real directory (a symlink), another user's,
// or writable by others.
func checkOwnDir(what, dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	uid := os.Geteuid()
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s %s is a symlink, not a directory; remove it (rm %s) and run again", what, dir, dir)
	case !st.IsDir():
		return fmt.Errorf("%s %s is not a directory; remove it (rm %s) and run again", what, dir, dir)
	case sys == nil || int(sys.Uid) != uid:
		owner := -1
		if sys != nil {
			owner = int(sys.Uid)
		}
		return fmt.Errorf("%s %s belongs to uid %d, not to this user (uid %d), and may hold files planted for this one to write through; remove it (rm -r %s) and run again", what, dir, owner, uid, dir)
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s %s is writable by others (mode %#o), who could plant files in it; remove it (rm -r %s) and run again", what, dir, st.Mode().Perm(), dir)
	}
	return nil
}

// lockDir holds the tags' lock files. It is root's (UpWith needs root),
// and not RunDir, which Down removes.
const lockDir = "/run/capygen-testbed"

// lockTag takes an exclusive flock on tag's lock file, so only one
// process at a time brings up, holds and tears down a testbed of that
// tag: a second bring-up would otherwise clash with the first's
// namespaces and, failing, sweep them away with its own. The lock goes
// with the file (unlockTag) or with the process.
func lockTag(tag string) (*os.File, error) {
	if err := os.Mkdir(lockDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("testbed lock directory: %w", err)
	} else if err != nil {
		if err := checkOwnDir("testbed lock directory", lockDir); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(lockDir, tag+".lock")
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("testbed %s: lock: %w", tag, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			b, _ := io.ReadAll(io.LimitReader(f, 32))
			f.Close()
			if !errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("testbed %s: lock %s: %w", tag, path, err)
			}
			holder := "another process"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = "process " + strconv.Itoa(pid)
				if pid == os.Getpid() {
					holder += " (this one)"
				}
			}
			return nil, fmt.Errorf("testbed %q is already up, or being brought up, in %s; pick another -name, or run 'capyrun testbed down -name %s' first", tag, holder, tag)
		}
		// The holder before us removes the file, then unlocks: a lock
		// won on a removed file guards nothing, so open the path anew.
		var fst, pst unix.Stat_t
		if unix.Fstat(int(f.Fd()), &fst) == nil && unix.Stat(path, &pst) == nil && fst.Dev == pst.Dev && fst.Ino == pst.Ino {
			f.Truncate(0)
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("testbed %s: lock %s keeps being replaced; is another bring-up of this tag looping?", tag, path)
}

// unlockTag removes the lock file, then drops the lock (see lockTag).
func unlockTag(f *os.File) {
	os.Remove(f.Name())
	f.Close()
}

// removeStaleLock removes tag's lock file when no process holds it (left
// by an up -detach that exited).
func removeStaleLock(tag string) {
	f, err := os.OpenFile(filepath.Join(lockDir, tag+".lock"), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		os.Remove(f.Name())
	}
	f.Close()
}

// ControlSocket is the unix socket path of host's control socket in the
// testbed tagged tag (capyrun serve's migration control, which capyrun
// migrate -testbed tag -host host dials). Pass it to the host's process
// with Options.HostArgs.
func ControlSocket(tag, host string) string { return filepath.Join(RunDir(tag), host+".sock") }

// DialControl connects to host's control socket in the testbed tagged tag
// (ControlSocket). Requests go on it with migrate.Control, one at a time;
// the connection is the caller's to close.
func DialControl(tag, host string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", ControlSocket(tag, host), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s's control socket: %w", host, err)
	}
	return c, nil
}

// RecordsFile is where host's capyrun serve appends its migration records
// (JSON lines) in the testbed tagged tag.
func RecordsFile(tag, host string) string { return filepath.Join(RunDir(tag), host+".records.jsonl") }

// Up brings the topology up under a fresh tag, and starts the hosts' run
// processes from this executable (see UpWith). On failure everything
// already created is torn down before it returns.
func (t *Topology) Up(ctx context.Context) (*Testbed, error) {
	return t.UpWith(ctx, Options{})
}

// UpTagged is Up with a chosen tag.
func (t *Topology) UpTagged(ctx context.Context, tag string) (tb *Testbed, err error) {
	return t.UpWith(ctx, Options{Tag: tag})
}

// UpWith brings the topology up: namespaces, veths with offloads off,
// addresses of kernel hosts, the kernel-stack servers' neighbour entries
// for each other (introduceServers), then the processes of hosts with a
// run key, each in its namespace: every capyrun switch first (its ports
// and the host table come from the links), then every capyrun serve, each
// waited for until it prints "ready". On failure, a cancelled ctx or a panic,
// everything already created is removed and every process started is
// stopped (by PID) before it returns; a Down during the bring-up stops it
// the same way, and UpWith returns ErrDown. The tag is this process's
// (lockTag) until Down: another bring-up of it fails.
func (t *Topology) UpWith(ctx context.Context, opts Options) (tb *Testbed, err error) {
	tag := opts.Tag
	if tag == "" {
		tag = NewTag()
	}
	if err := CheckTag(tag); err != nil {
		return nil, err
	}
	if err := CheckTools("ip"); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if needsEthtool(t) {
		if err := CheckTools("ethtool"); err != nil {
			return nil, err
		}
	}
	lock, err := lockTag(tag)
	if err != nil {
		return nil, err
	}
	existing, err := listNamespaces()
	if err != nil {
		unlockTag(lock)
		return nil, err
	}
	prefix := NamespacePrefix + tag + "-"
	for _, ns := range existing {
		if strings.HasPrefix(ns, prefix) {
			unlockTag(lock)
			return nil, fmt.Errorf("testbed %q is already up (namespace %s); run 'capyrun testbed down -name %s' first", tag, ns, tag)
		}
	}
	for _, h := range t.Hosts {
		if h.Run != "" {
			// Before anything is made: it may be refused.
			if _, err := makeRunDir(tag); err != nil {
				unlockTag(lock)
				return nil, err
			}
			break
		}
	}
	// Down (DownAll from a signal handler) cancels the bring-up and waits
	// for it to return before it lists what to delete.
	ctx, cancelUp := context.WithCancel(ctx)
	tb = &Testbed{Topology: t, Tag: tag, byHost: map[string]*Proc{}, upCancel: cancelUp, upDone: make(chan struct{}), lock: lock}
	live.add(tb)
	defer func() {
		cancelUp()
		tb.mu.Lock()
		// Read as upDone closes, under tb.mu: a Down either saw the
		// bring-up running (and it fails here) or comes after it.
		downed := tb.down
		close(tb.upDone)
		tb.mu.Unlock()
		// Tear down on error and on panic, so a failed bring-up leaves
		// nothing behind.
		if p := recover(); p != nil {
			tb.Down()
			panic(p)
		}
		if downed {
			// Whatever the bring-up got to, the testbed is gone.
			if err == nil {
				err = fmt.Errorf("%w: testbed %s was taken down (Down or DownAll) while it was being brought up", ErrDown, tag)
			} else {
				err = fmt.Errorf("%w: testbed %s was taken down (Down or DownAll) while it was being brought up: %w", ErrDown, tag, err)
			}
		}
		if err != nil {
			// After a concurrent Down this waits for it to finish.
			if derr := tb.Down(); derr != nil {
				err = errors.Join(err, derr)
			}
			tb = nil
		}
	}()
	for _, h := range t.Hosts {
		if err := ctx.Err(); err != nil {
			return tb, err
		}
		ns := tb.Namespace(h.Name)
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return tb, err
		}
		tb.mu.Lock()
		tb.nss = append(tb.nss, ns)
		tb.mu.Unlock()
		if err := ip(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return tb, err
		}
		// No IPv6: router solicitations and MLD reports would only be
		// noise on links where the bypass stack speaks IPv4.
		if _, err := tb.ExecContext(ctx, h.Name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return tb, err
		}
	}
	for i, l := range t.Links {
		if err := ctx.Err(); err != nil {
			return tb, err
		}
		if err := tb.addLink(ctx, l); err != nil {
			return tb, fmt.Errorf("links[%d] %s/%s-%s/%s: %w", i, l.A.Host, l.A.Iface, l.B.Host, l.B.Iface, err)
		}
	}
	if err := tb.introduceServers(ctx); err != nil {
		return tb, err
	}
	if err := tb.startProcesses(ctx, opts); err != nil {
		return tb, err
	}
	return tb, nil
}

func needsEthtool(t *Topology) bool {
	for _, l := range t.Links {
		if !l.Offloads {
			return true
		}
	}
	return false
}

func (tb *Testbed) addLink(ctx context.Context, l Link) error {
	nsA, nsB := tb.Namespace(l.A.Host), tb.Namespace(l.B.Host)
	// Created straight into the two namespaces: the root namespace never
	// sees the names, so concurrent testbeds cannot collide.
	args := []string{"-n", nsA, "link", "add", l.A.Iface}
	if mac := tb.Topology.mac(l.A); mac != nil {
		args = append(args, "address", mac.String())
	}
	args = append(args, "mtu", strconv.Itoa(l.MTU), "type", "veth", "peer", "name", l.B.Iface)
	if mac := tb.Topology.mac(l.B); mac != nil {
		args = append(args, "address", mac.String())
	}
	args = append(args, "mtu", strconv.Itoa(l.MTU), "netns", nsB)
	if err := ip(ctx, args...); err != nil {
		return err
	}
	for _, e := range []End{l.A, l.B} {
		h, _ := tb.Topology.Host(e.Host)
		ns := tb.Namespace(e.Host)
		if !l.Offloads {
			if _, err := tb.ExecContext(ctx, e.Host, "ethtool", "-K", e.Iface, "tx", "off", "tso", "off", "gso", "off", "gro", "off"); err != nil {
				return err
			}
		}
		if e.Addr != "" && h.Stack == StackKernel {
			if err := ip(ctx, "-n", ns, "addr", "add", e.Addr, "dev", e.Iface); err != nil {
				return err
			}
		}
		if err := ip(ctx, "-n", ns, "link", "set", e.Iface, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Namespace is the network namespace of host.
func (tb *Testbed) Namespace(host string) string {
	return NamespacePrefix + tb.Tag + "-" + host
}

// introduceServers gives each kernel-stack server a permanent neighbour
// entry for every other server's address, as the switch's L2 table has
// them. Servers send TCPMig to each other directly (PREPARE_MIG_ACK,
// CONN_STATE), and the first datagram to a new peer waits for ARP. One
// ARP request lost to the switch's fault injector costs Linux's
// retrans_time, a second, in which that server's PREPARE_MIG_ACKs all
// wait and their origin gives up: measured, ten moves in a row stayed.
// A rack's servers talk to each other all the time, so their caches are
// warm; the testbed's are new. capygen's stack learns a peer from its
// first frame and needs none of this.
func (tb *Testbed) introduceServers(ctx context.Context) error {
	var servers []Interface // every addressed server interface
	for _, h := range tb.Topology.Hosts {
		if h.Role != RoleServer {
			continue
		}
		ifs, err := tb.interfaces(ctx, h.Name)
		if err != nil {
			return err
		}
		for _, i := range ifs {
			if i.Prefix.IsValid() {
				servers = append(servers, i)
			}
		}
	}
	for _, s := range servers {
		if h, _ := tb.Topology.Host(s.Host); h.Stack != StackKernel {
			continue
		}
		for _, peer := range servers {
			if peer.Host == s.Host {
				continue
			}
			if err := ip(ctx, "-n", tb.Namespace(s.Host), "neigh", "replace", peer.Prefix.Addr().String(),
				"lladdr", peer.MAC.String(), "dev", s.Name, "nud", "permanent"); err != nil {
				return fmt.Errorf("%s's neighbour entry for %s (%s): %w", s.Host, peer.Host, peer.Prefix.Addr(), err)
			}
		}
	}
	return nil
}

// Interfaces lists host's interfaces with their MACs as the kernel
// reports them (also when the kernel picked them).
func (tb *Testbed) Interfaces(host string) ([]Interface, error) {
	return tb.interfaces(context.Background(), host)
}

// interfaces is Interfaces bounded by ctx.
func (tb *Testbed) interfaces(ctx context.Context, host string) ([]Interface, error) {
	if _, ok := tb.Topology.Host(host); !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoHost, host)
	}
	ifs := tb.Topology.Interfaces(host)
	for i := range ifs {
		out, err := tb.ExecContext(ctx, host, "cat", "/sys/class/net/"+ifs[i].Name+"/address")
		if err != nil {
			return nil, err
		}
		mac, err := net.ParseMAC(strings.TrimSpace(string(out)))
		if err != nil {
			return nil, fmt.Errorf("interface %s on %s: mac %q: %v", ifs[i].Name, host, out, err)
		}
		ifs[i].MAC = mac
	}
	return ifs, nil
}

// Command returns an unstarted command running argv inside host's
// namespace (through 'ip netns exec', which execs argv in place: the
// process's PID is argv's).
func (tb *Testbed) Command(ctx context.Context, host string, argv ...string) (*exec.Cmd, error) {
	if _, ok := tb.Topology.Host(host); !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoHost, host)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("testbed: command for %s: empty argv", host)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", tb.Namespace(host)}, argv...)...)
	// A grandchild that inherited the output pipe would keep Wait (and so
	// Stop and Down) waiting after the process itself has exited.
	cmd.WaitDelay = cmdWaitDelay
	return cmd, nil
}

// cmdWaitDelay bounds how long Wait waits for a process's output after
// it exited, or after ctx killed it (a variable for tests).
var cmdWaitDelay = 5 * time.Second

// Exec runs argv inside host's namespace and returns its combined output;
// the error includes the output.
func (tb *Testbed) Exec(host string, argv ...string) ([]byte, error) {
	return tb.ExecContext(context.Background(), host, argv...)
}

// ExecContext is Exec bounded by ctx.
func (tb *Testbed) ExecContext(ctx context.Context, host string, argv ...string) ([]byte, error) {
	cmd, err := tb.Command(ctx, host, argv...)
	if err != nil {
		return nil, err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("on %s: %s: %w\n%s", host, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Proc is a background process started by Start (or by Up for a host's
// run key).
type Proc struct {
	Host string
	Argv []string
	Cmd  *exec.Cmd

	out  lockedBuffer
	log  string // when set, the output goes to this file instead of out
	done chan struct{}
	err  error
}

// PID is the process ID.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Output is everything the process wrote to stdout and stderr so far.
func (p *Proc) Output() string {
	if p.log != "" {
		b, _ := os.ReadFile(p.log)
		return string(b)
	}
	return p.out.String()
}

// LogPath is the file the output goes to, or "" when it is kept in memory.
func (p *Proc) LogPath() string { return p.log }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, valid after Done.
func (p *Proc) Err() error { <-p.done; return p.err }

// WaitOutput waits up to timeout for the output to match re and returns
// the submatches.
func (p *Proc) WaitOutput(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			return m, nil
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(p.Output()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s on %s exited (%v) before printing %q:\n%s", p.Argv[0], p.Host, p.err, re, p.Output())
		case <-deadline:
			return nil, fmt.Errorf("%s on %s did not print %q within %v:\n%s", p.Argv[0], p.Host, re, timeout, p.Output())
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM, waits up to grace for the exit, then SIGKILLs. It
// returns the process's output.
func (p *Proc) Stop(grace time.Duration) string {
	select {
	case <-p.done:
		return p.Output()
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Cmd.Process.Kill()
		<-p.done
	}
	return p.Output()
}

// Start runs argv in the background inside host's namespace. Down stops
// it by PID.
func (tb *Testbed) Start(host string, argv ...string) (*Proc, error) {
	return tb.start(host, "", false, argv)
}

// start is Start with the output sent to the file log when it is set,
// and with the process in its own process group when group is set: then
// the Ctrl-C that ends a foreground capyrun testbed up reaches only
// capyrun, which stops the process by PID after it has had its say (the
// switch's report).
func (tb *Testbed) start(host, log string, group bool, argv []string) (*Proc, error) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.down {
		return nil, ErrDown
	}
	cmd, err := tb.Command(context.Background(), host, argv...)
	if err != nil {
		return nil, err
	}
	p := &Proc{Host: host, Argv: argv, Cmd: cmd, done: make(chan struct{}), log: log}
	if log != "" {
		// No symlink is followed: root would truncate whatever it points to.
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("start %s on %s: its log %s is a symlink, which would have it write elsewhere; remove it (rm %s)", argv[0], host, log, log)
		} else if err != nil {
			return nil, fmt.Errorf("start %s on %s: %w", argv[0], host, err)
		}
		// The child writes the file itself, not through a pipe to us, so
		// it can outlive this process.
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		cmd.Stdout, cmd.Stderr = &p.out, &p.out
	}
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", argv[0], host, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.procs = append(tb.procs, p)
	return p, nil
}

// Discard is Down, and then, if that succeeded, removes the run directory
// with what the processes left in it (migration records, logs): for a
// testbed whose records were read already or are not wanted, which would
// otherwise pile up in /tmp.
func (tb *Testbed) Discard() error {
	if err := tb.Down(); err != nil {
		return err
	}
	return os.RemoveAll(RunDir(tb.Tag))
}

// Down stops every process Start started, then deletes every namespace of
// this testbed (which deletes the veths in them). It also works on a
// testbed that is only half up or still being brought up (UpWith then
// stops and fails), and a second call waits for the first and returns nil.
func (tb *Testbed) Down() error {
	tb.mu.Lock()
	if tb.down {
		done := tb.downDone
		tb.mu.Unlock()
		if done != nil {
			<-done
		}
		return nil
	}
	tb.down = true
	tb.downDone = make(chan struct{})
	defer close(tb.downDone)
	upDone := tb.upDone
	live.remove(tb)
	tb.mu.Unlock()
	var errs []error
	stopped := true
	if upDone != nil {
		// A bring-up still running creates namespaces after any list
		// taken now: stop it first. Bounded, as a Down called from
		// inside the bring-up (a HostArgs callback) would wait forever.
		tb.upCancel()
		select {
		case <-upDone:
		case <-time.After(upStopTimeout):
			stopped = false
			errs = append(errs, fmt.Errorf("testbed %s: its bring-up did not stop within %v, and what it makes from now on is left; run 'capyrun testbed down -name %s' once it has", tb.Tag, upStopTimeout, tb.Tag))
		}
	}
	tb.mu.Lock()
	procs, nss := tb.procs, tb.nss
	tb.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(3 * time.Second) }()
	}
	wg.Wait()
	errs = append(errs, DownTag(tb.Tag, nss...))
	if tb.lock != nil && stopped {
		// Kept while a bring-up may still be running: no other may start.
		unlockTag(tb.lock)
	}
	return errors.Join(errs...)
}

// upStopTimeout bounds Down's wait for a cancelled bring-up to return:
// its commands are killed with its context, and reaped within
// cmdWaitDelay.
var upStopTimeout = 15 * time.Second

// live are the testbeds this process brought up and has not taken down,
// for DownAll.
var live = liveSet{m: map[*Testbed]struct{}{}}

type liveSet struct {
	mu sync.Mutex
	m  map[*Testbed]struct{}
}

func (l *liveSet) add(tb *Testbed) { l.mu.Lock(); l.m[tb] = struct{}{}; l.mu.Unlock() }

func (l *liveSet) remove(tb *Testbed) { l.mu.Lock(); delete(l.m, tb); l.mu.Unlock() }

// DownAll takes down every testbed this process brought up and has not
// taken down yet: what a signal handler calls before exiting, since the
// testbeds' processes run in process groups of their own (a terminal's
// SIGINT does not reach them) and their namespaces outlive the process.
func DownAll() error {
	live.mu.Lock()
	tbs := make([]*Testbed, 0, len(live.m))
	for tb := range live.m {
		tbs = append(tbs, tb)
	}
	live.mu.Unlock()
	var errs []error
	for _, tb := range tbs {
		errs = append(errs, tb.Down())
	}
	return errors.Join(errs...)
}

// DownTag deletes the namespaces of the testbed tagged tag: the ones
// listed and any other whose name starts with capy-<tag>-. Processes still
// inside them get SIGTERM (then SIGKILL), by PID, since they would keep
// the namespace and its veths alive.
func DownTag(tag string, known ...string) error {
	if err := CheckTag(tag); err != nil {
		return err
	}
	all, err := listNamespaces()
	if err != nil {
		return err
	}
	prefix := NamespacePrefix + tag + "-"
	for _, ns := range all {
		if strings.HasPrefix(ns, prefix) && !slices.Contains(known, ns) {
			known = append(known, ns)
		}
	}
	var errs []error
	for _, ns := range slices.Backward(known) {
		if !slices.Contains(all, ns) {
			continue
		}
		killNamespacePIDs(ns)
		if err := ip(context.Background(), "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	cleanRunDir(tag)
	removeStaleLock(tag)
	return errors.Join(errs...)
}

// cleanRunDir removes the sockets left in the tag's RunDir, and the
// directory itself unless logs remain there to read. A run directory that
// is not safely this user's (a symlink to elsewhere) is left alone.
func cleanRunDir(tag string) {
	dir := RunDir(tag)
	if checkOwnDir("", dir) != nil {
		return
	}
	socks, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	for _, s := range socks {
		os.Remove(s)
	}
	os.Remove(dir) // only succeeds when empty
}

func killNamespacePIDs(ns string) {
	pids := func() []int {
		out, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			return nil
		}
		var ps []int
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				ps = append(ps, pid)
			}
		}
		return ps
	}
	ps := pids()
	if len(ps) == 0 {
		return
	}
	for _, pid := range ps {
		unix.Kill(pid, unix.SIGTERM)
	}
	for range 30 {
		time.Sleep(100 * time.Millisecond)
		if ps = pids(); len(ps) == 0 {
			return
		}
	}
	for _, pid := range ps {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// Namespaces lists the namespaces of the testbed tagged tag that exist.
func Namespaces(tag string) ([]string, error) {
	all, err := listNamespaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ns := range all {
		if strings.HasPrefix(ns, NamespacePrefix+tag+"-") {
			out = append(out, ns)
		}
	}
	return out, nil
}

func listNamespaces() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var nss []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			nss = append(nss, f[0])
		}
	}
	return nss, nil
}

// CheckTools reports ErrTool naming the first of tools not on PATH.
func CheckTools(tools ...string) error {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%w: %s is not installed (apt-get install %s)", ErrTool, t, debianPackage(t))
		}
	}
	return nil
}

func debianPackage(tool string) string {
	switch tool {
	case "ip":
		return "iproute2"
	case "nft":
		return "nftables"
	case "ping":
		return "iputils-ping"
	case "nc":
		return "netcat-openbsd"
	case "ab":
		return "apache2-utils"
	}
	return tool
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// InNamespace runs fn on an OS thread switched into host's namespace.
// Sockets fn creates stay in that namespace, so a test process can be a
// kernel-stack client or server of any host without a subprocess.
func (tb *Testbed) InNamespace(host string, fn func() error) error {
	if _, ok := tb.Topology.Host(host); !ok {
		return fmt.Errorf("%w: %q", ErrNoHost, host)
	}
	return inNetns(tb.Namespace(host), fn)
}

func inNetns(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open namespace %s: %w", ns, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", ns, err)
	}
	defer func() {
		// A thread that cannot switch back stays locked; Go retires it
		// when the goroutine ends rather than reuse it elsewhere.
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// DialContext returns a dial function whose sockets live in host's
// namespace, for http.Transport.DialContext.
func (tb *Testbed) DialContext(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := tb.InNamespace(host, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Listen opens a kernel listener inside host's namespace.
func (tb *Testbed) Listen(host, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := tb.InNamespace(host, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
