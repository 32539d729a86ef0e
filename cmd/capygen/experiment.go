package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/capygen/capygen/cmd/internal/cli"
)

func init() {
	prog.Register("experiment", "run one of the paper's experiments on the netns testbed (skew, fig1, fig4, fig5): capyrun experiment, run for you", runExperiment)
}

// runExperiment runs capyrun experiment with the same arguments. The
// experiments drive the testbed and the runtime, which capygen does not
// link (go:generate and go tool stay light), so it starts capyrun: the one
// beside this executable, else on PATH, else `go run` of this module's.
func runExperiment(args []string) error {
	name, pre, err := capyrunCommand()
	if err != nil {
		return err
	}
	cmd := exec.Command(name, append(pre, append([]string{"experiment"}, args...)...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// capyrun takes its testbeds down on SIGINT or SIGTERM: the signal is
	// passed on (Ctrl-C reaches it twice, which it takes as once), and
	// capygen waits for it rather than leaving it running. A third signal
	// (a teardown that hangs) kills it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case s := <-sigs:
				if n >= 3 {
					s = syscall.SIGKILL
				}
				cmd.Process.Signal(s) //nolint:errcheck // it may have exited
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("%s was killed by %v", name, ws.Signal())
		}
		return cli.ExitError{Code: ee.ExitCode()} // capyrun said why
	}
	return err
}

// capyrunCommand is how to start capyrun: a program and the arguments
// before capyrun's own.
func capyrunCommand() (string, []string, error) {
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "capyrun"); isExecutable(p) {
			return p, nil, nil
		}
	}
	if p, err := exec.LookPath("capyrun"); err == nil {
		return p, nil, nil
	}
	if goTool, err := exec.LookPath("go"); err == nil {
		return goTool, []string{"run", "github.com/capygen/capygen/cmd/capyrun"}, nil
	}
	return "", nil, errors.New("capyrun is neither beside capygen nor on PATH, and there is no go command to build it: go build -o bin/capyrun ./cmd/capyrun")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
