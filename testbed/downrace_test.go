package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pairTopology is n hosts (n even) linked in pairs, h0-h1, h2-h3, ...;
// with hung the last is a server whose run process never prints ready
// (hungServe), so its bring-up stays in UpWith until Down stops it.
func pairTopology(tb testing.TB, n int, hung bool) *Topology {
	tb.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nhosts:\n")
	for i := range n - 1 {
		fmt.Fprintf(&b, "  - {name: h%d, role: client}\n", i)
	}
	run := ""
	if hung {
		run = ", run: serve"
	}
	fmt.Fprintf(&b, "  - {name: srv, role: server%s}\nlinks:\n", run)
	for i := 0; i+1 < n; i += 2 {
		peer := "h" + strconv.Itoa(i+1)
		if i+2 == n {
			peer = "srv"
		}
		fmt.Fprintf(&b, "  - a: {host: h%d, iface: v0, addr: 10.99.%d.1/24}\n    b: {host: %s, iface: v0, addr: 10.99.%d.2/24}\n", i, i, peer, i)
	}
	topo, err := Parse("pairs.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return topo
}

// hungServe writes a stand-in for capyrun that marks that it started
// (at the returned path) and never prints ready.
func hungServe(tb testing.TB) (bin, started string) {
	tb.Helper()
	bin = filepath.Join(tb.TempDir(), "hung")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntouch \"$0.started\"\nexec sleep 60\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
	return bin, bin + ".started"
}

// assertUnlocked checks that tag's lock file went with its testbed.
func assertUnlocked(tb testing.TB, tag string) {
	tb.Helper()
	if _, err := os.Lstat(filepath.Join(lockDir, tag+".lock")); !errors.Is(err, os.ErrNotExist) {
		tb.Errorf("testbed %s's lock file is left (%v)", tag, err)
	}
}

// TestDownAllDuringUp: DownAll (what TestMain's and capyrun's signal
// handlers run) while UpWith is still bringing a testbed up, at several
// points of the bring-up. UpWith must stop and fail, and nothing of the
// testbed may be left: a Down that listed the namespaces while UpWith
// kept adding more left those behind, and UpWith's own Down did nothing.
func TestDownAllDuringUp(t *testing.T) {
	needNetns(t)
	topo := pairTopology(t, 10, true)
	// Each namespace, since a Down that lists them while UpWith is
	// between two leaks only sometimes.
	var points []string
	for n := range 10 {
		points = append(points, fmt.Sprintf("%d namespaces", n+1))
	}
	for i, point := range append(points, "process started") {
		t.Run(point, func(t *testing.T) {
			bin, started := hungServe(t)
			tag := "da" + strconv.Itoa(os.Getpid()%1000000) + strconv.Itoa(i+10)
			t.Cleanup(func() { DownTag(tag) })
			type result struct {
				tb  *Testbed
				err error
			}
			res := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				tb, err := topo.UpWith(ctx, Options{Tag: tag, Binary: bin, ReadyTimeout: time.Minute})
				res <- result{tb, err}
			}()
			var want int
			fmt.Sscan(point, &want)
			reached := func() bool {
				if want == 0 {
					_, err := os.Stat(started)
					return err == nil
				}
				nss, _ := Namespaces(tag)
				return len(nss) >= want
			}
			deadline := time.Now().Add(30 * time.Second)
			for !reached() {
				select {
				case r := <-res:
					if r.tb != nil {
						r.tb.Down()
					}
					t.Fatalf("UpWith returned (%v) before the bring-up reached %s", r.err, point)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("the bring-up did not reach %s within 30s", point)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if err := DownAll(); err != nil {
				t.Errorf("DownAll: %v", err)
			}
			// DownAll has returned: nothing may be left, nor come later.
			assertGone(t, tag)
			var r result
			select {
			case r = <-res:
			case <-time.After(30 * time.Second):
				t.Fatal("UpWith did not return within 30s of DownAll")
			}
			if r.tb != nil || !errors.Is(r.err, ErrDown) {
				t.Errorf("UpWith after DownAll during the bring-up = %v, %v; want no testbed and ErrDown", r.tb, r.err)
			}
			assertGone(t, tag)
			assertUnlocked(t, tag)
		})
	}
}

// TestUpSameTagConcurrently: two bring-ups of one tag at once. One must
// win with all its namespaces; the other must fail without touching them
// (it used to sweep the tag's prefix as it failed, the winner's
// namespaces with it).
func TestUpSameTagConcurrently(t *testing.T) {
	needNetns(t)
	topo := pairTopology(t, 6, false)
	for round := range 3 {
		tag := "st" + strconv.Itoa(os.Getpid()%1000000) + strconv.Itoa(round)
		t.Cleanup(func() { DownTag(tag) })
		var (
			wg   sync.WaitGroup
			tbs  [2]*Testbed
			errs [2]error
			go_  = make(chan struct{})
		)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-go_
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				tbs[i], errs[i] = topo.UpWith(ctx, Options{Tag: tag})
			}()
		}
		close(go_)
		wg.Wait()
		nss, _ := Namespaces(tag)
		var won *Testbed
		for i := range 2 {
			if tbs[i] != nil {
				if won != nil {
					t.Errorf("round %d: both bring-ups of %s succeeded", round, tag)
				}
				won = tbs[i]
			} else if errs[i] == nil || !strings.Contains(errs[i].Error(), "already up") {
				t.Errorf("round %d: losing bring-up of %s = %v, want an 'already up' error", round, tag, errs[i])
			}
		}
		if won == nil {
			t.Fatalf("round %d: neither bring-up of %s succeeded: %v; %v", round, tag, errs[0], errs[1])
		}
		if len(nss) != 6 {
			t.Errorf("round %d: the winning bring-up reported success, but %d of its 6 namespaces exist: %v (the loser said %v)", round, len(nss), nss, errors.Join(errs[:]...))
		}
		if round == 0 {
			// While it is up, another bring-up names the holder.
			_, err := topo.UpWith(context.Background(), Options{Tag: tag})
			if want := fmt.Sprintf("in process %d (this one)", os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("UpWith of a tag up in this process = %v, want an error saying %q", err, want)
			}
		}
		if err := won.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, tag)
		assertUnlocked(t, tag)
	}
}
