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
