package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// maxWork bounds one /work request's service time.
const maxWork = 10 * time.Second

// workers is a server's capacity. GET /work?us=N takes one of them for N
// microseconds (none set: as many as there are requests): a server's
// capacity is its workers over the service time, whatever the machine's
// cores, and the client chooses the service time (a heavy tail, say).
// The wait is a sleep, so the testbed's servers keep their own capacity
// on two cores. Injected migration overhead (-inject-migration-delay) is
// charged to the workers (charge): the next request a worker takes waits
// it out first, as requests wait for migration work on a single-core
// server, without the engine ever waiting for a worker.
type workers struct {
	sem  chan struct{}
	debt atomic.Int64 // nanoseconds of overhead the workers still owe
}

func newWorkers(n int) *workers {
	w := &workers{}
	if n > 0 {
		w.sem = make(chan struct{}, n)
	}
	return w
}

// charge adds d to what the workers owe; it is the engine's InjectCharge.
func (ws *workers) charge(d time.Duration) { ws.debt.Add(int64(d)) }

// hold takes a worker (with no limit: none) and returns its release.
func (ws *workers) hold() func() {
	if ws.sem == nil {
		return func() {}
	}
	ws.sem <- struct{}{}
	return func() { <-ws.sem }
}

// ServeHTTP serves GET /work?us=N.
func (ws *workers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, fmt.Sprintf("%s /work: use GET", r.Method), http.StatusMethodNotAllowed)
		return
	}
	us, err := strconv.ParseInt(r.URL.Query().Get("us"), 10, 64)
	if err != nil || us < 0 || us > maxWork.Microseconds() { // before the multiplication, which wraps
		http.Error(w, fmt.Sprintf("us=%q: want a service time in microseconds, 0..%d", r.URL.Query().Get("us"), maxWork.Microseconds()), http.StatusBadRequest)
		return
	}
	defer ws.hold()()
	owed := time.Duration(ws.debt.Swap(0))
	time.Sleep(owed + time.Duration(us)*time.Microsecond)
	io.WriteString(w, "ok\n")
}
