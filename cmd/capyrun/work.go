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

// workHandler serves GET /work?us=N: N microseconds of service, holding
// one of the server's workers (workers 0: as many as there are requests).
// It is the experiments' request: a server's capacity is its workers over
// the service time, whatever the machine's cores, and the service time is
// the client's to choose (a heavy tail, say). The wait is a sleep, so
// three servers on two cores each keep their own capacity.
func workHandler(workers int) http.Handler {
	var sem chan struct{}
	if workers > 0 {
		sem = make(chan struct{}, workers)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		if sem != nil {
			sem <- struct{}{}
			defer func() { <-sem }()
		}
		time.Sleep(time.Duration(us) * time.Microsecond)
		io.WriteString(w, "ok\n")
	})
}
