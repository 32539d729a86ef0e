package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// maxWork bounds one /work request's service time.
const maxWork = 10 * time.Second

// workers is a server's capacity. GET /work?us=N takes one of them for N
// microseconds (none set: as many as there are requests): a server's
// capacity is its workers over the service time, whatever the machine's
// cores, and the client chooses the service time (a heavy tail, say).
// The wait is a sleep, so the testbed's servers keep their own capacity
// on two cores. Injected migration overhead (-inject-migration-delay)
// takes a worker too (hold), as migration work does on a single-core
// server.
type workers struct{ sem chan struct{} }

func newWorkers(n int) *workers {
	w := &workers{}
	if n > 0 {
		w.sem = make(chan struct{}, n)
	}
	return w
}

// hold takes a worker (with no limit: none) and returns its release; it
// is the engine's InjectHold.
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
	if d := time.Duration(us) * time.Microsecond; err != nil || us < 0 || d > maxWork {
		http.Error(w, fmt.Sprintf("us=%q: want a service time in microseconds, 0..%d", r.URL.Query().Get("us"), maxWork.Microseconds()), http.StatusBadRequest)
		return
	}
	defer ws.hold()()
	time.Sleep(time.Duration(us) * time.Microsecond)
	io.WriteString(w, "ok\n")
}
