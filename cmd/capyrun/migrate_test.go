package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMigrateGivesUpOnASilentServer: a control socket that accepts but
// never answers (a stopped server) fails capyrun migrate within -timeout,
// with an error that says what to change, instead of hanging it.
func TestMigrateGivesUpOnASilentServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "capymig") // short: a unix socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	for _, args := range [][]string{
		{"-conn", "10.77.0.1:40000", "-wait"},
		{"-all", "-every", "10ms"},
		{"-records"},
	} {
		start := time.Now()
		err := runMigrate(append([]string{"-control", sock, "-timeout", "200ms"}, args...))
		if err == nil || !strings.Contains(err.Error(), "-timeout 200ms") {
			t.Errorf("capyrun migrate %q against a silent server: %v, want an error naming -timeout", args, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("capyrun migrate %q took %v to give up, want about -timeout", args, d)
		}
	}
	if err := runMigrate([]string{"-control", sock, "-timeout", "0s", "-all"}); err == nil || !strings.Contains(err.Error(), "-timeout") {
		t.Errorf("-timeout 0s: %v, want it refused", err)
	}
}

// Two actions, or a modifier its action does not take, are refused before
// any socket is dialed: one of them was silently dropped.
func TestMigrateRefusesConflictingFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-conn", "10.77.0.1:40000", "-all"}, "-conn and -all: choose one"},
		{[]string{"-conn", "10.77.0.1:40000", "-records"}, "-conn and -records: choose one"},
		{[]string{"-all", "-random"}, "-all and -random: choose one"},
		{[]string{"-all", "-wait"}, "-wait waits for one migration's outcome"},
		{[]string{"-conn", "10.77.0.1:40000", "-every", "10ms"}, "-every repeats -all or -random"},
		{[]string{"-all", "-for", "1s"}, "-for and -max bound -every's repeats"},
		{[]string{"-random", "-json"}, "-json prints -summary as JSON"},
		{[]string{"-all", "-every", "-1s"}, "-every -1s: want a positive interval"},
	} {
		err := runMigrate(append([]string{"-control", "/nonexistent/s.sock"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("capyrun migrate %q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
