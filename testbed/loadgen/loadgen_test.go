package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestScheduleIsPoissonAndBySeed(t *testing.T) {
	cfg := Config{Conns: 4, Rate: 2000, Duration: 5 * time.Second, Seed: 7,
		Path: func(rng *rand.Rand, i int) string { return fmt.Sprintf("/work?us=%d", rng.IntN(100)) }}
	a, err := Schedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a); n < 9500 || n > 10500 {
		t.Errorf("%d arrivals at 2,000/s for 5 s, want about 10,000", n)
	}
	per := make([]int, 4)
	gaps := make([]float64, 0, len(a))
	for i, x := range a {
		per[x.Conn]++
		if i > 0 {
			gaps = append(gaps, (x.At - a[i-1].At).Seconds())
		}
	}
	for i, n := range per {
		if n < len(a)/4*9/10 || n > len(a)/4*11/10 {
			t.Errorf("connection %d got %d of %d arrivals, want about a quarter", i, n, len(a))
		}
	}
	// Exponential gaps: the median is ln 2 over the rate.
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2] * 2000; med < 0.63 || med > 0.76 {
		t.Errorf("median gap x rate %.3f, want about ln 2 = 0.693", med)
	}
	b, _ := Schedule(cfg)
	if !slices.Equal(a, b) {
		t.Error("the same seed drew another schedule")
	}
	cfg.Seed = 8
	if c, _ := Schedule(cfg); slices.Equal(a, c) {
		t.Error("another seed drew the same schedule")
	}
}

func TestScheduleFollowsTheWeight(t *testing.T) {
	// A spike on connection 0 in the first half, on 1 in the second.
	cfg := Config{Conns: 3, Rate: 1000, Duration: 2 * time.Second, Seed: 1,
		Weight: func(at time.Duration, i int) float64 {
			if (at < time.Second && i == 0) || (at >= time.Second && i == 1) {
				return 8
			}
			return 1
		}}
	a, _ := Schedule(cfg)
	var first, second [3]int
	for _, x := range a {
		if x.At < time.Second {
			first[x.Conn]++
		} else {
			second[x.Conn]++
		}
	}
	if first[0] < 6*first[1] || second[1] < 6*second[0] {
		t.Errorf("arrivals per connection: first half %v, second %v; want the spike's 8x", first, second)
	}
}

func TestScheduleRefusesBadConfigs(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Conns: 0, Rate: 1, Duration: time.Second}, "0 connections"},
		{Config{Conns: 1, Rate: 0, Duration: time.Second}, "rate 0"},
		{Config{Conns: 1, Rate: 1, Duration: time.Second, Warmup: time.Second}, "warm-up"},
		{Config{Conns: 1, Rate: 1e9, Duration: time.Hour}, "shorten the run"},
	} {
		if _, err := Schedule(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
}

// TestRunAgainstALocalServer runs on loopback against a kernel HTTP
// server whose one worker takes 2 ms a request.
func TestRunAgainstALocalServer(t *testing.T) {
	var mu sync.Mutex
	perConn := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		mu.Lock()
		perConn[r.RemoteAddr]++
		time.Sleep(2 * time.Millisecond)
		mu.Unlock()
		fmt.Fprint(w, "ok\n")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	dial := func(ctx context.Context, _ int) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	cfg := Config{Conns: 4, Dial: dial, Rate: 200, Duration: time.Second, Warmup: 100 * time.Millisecond, Seed: 3,
		Bin: 200 * time.Millisecond, Path: func(rng *rand.Rand, i int) string {
			if rng.IntN(50) == 0 {
				return "/fail"
			}
			return "/work"
		}}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := Schedule(cfg)
	fails := 0
	for _, a := range sched {
		if a.Path == "/fail" {
			fails++
		}
	}
	if res.Sent != int64(len(sched)) || res.Answered+res.Failed != res.Sent || res.Dropped != 0 {
		t.Errorf("sent %d answered %d failed %d dropped %d, want all %d sent and each answered or failed", res.Sent, res.Answered, res.Failed, res.Dropped, len(sched))
	}
	if res.Failed != int64(fails) {
		t.Errorf("%d failed, want the %d /fail requests (errors %q)", res.Failed, fails, res.Errors)
	}
	if p50 := res.Quantile(0.5); p50 < 2*time.Millisecond || p50 > 100*time.Millisecond {
		t.Errorf("p50 %v, want at least the 2 ms service", p50)
	}
	if len(res.Series) != 5 || res.Series[2].Count == 0 {
		t.Errorf("series %+v, want 5 bins of 200 ms with requests", res.Series)
	}
	if len(perConn) != 4 {
		t.Errorf("the server saw %d connections, want 4 kept alive", len(perConn))
	}
}

// TestRunMeasuresQueueing: an overloaded server's latency grows with the
// queue, since each request's time counts from its scheduled arrival.
func TestRunMeasuresQueueing(t *testing.T) {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		time.Sleep(5 * time.Millisecond) // 200/s at most
		mu.Unlock()
		fmt.Fprint(w, "ok\n")
	}))
	defer srv.Close()
	dial := func(ctx context.Context, _ int) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}
	res, err := Run(context.Background(), Config{Conns: 2, Dial: dial, Rate: 400, Duration: time.Second, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Twice the capacity for a second: the last requests wait about half
	// a second.
	if p99 := res.Quantile(0.99); p99 < 300*time.Millisecond {
		t.Errorf("p99 %v at twice the server's capacity, want the queue's hundreds of ms", p99)
	}
	if res.Failed != 0 || res.Answered != res.Sent {
		t.Errorf("answered %d of %d, failed %d: %q", res.Answered, res.Sent, res.Failed, res.Errors)
	}
}

// A tiny rate draws gaps beyond what a Duration holds: the schedule stays
// inside the run instead of wrapping to negative times.
func TestScheduleTinyRateStaysInTheRun(t *testing.T) {
	arr, err := Schedule(Config{Conns: 1, Rate: 1e-12, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range arr {
		if a.At < 0 || a.At >= 10*time.Second {
			t.Fatalf("arrival at %v, outside the 10 s run (%d arrivals)", a.At, len(arr))
		}
	}
}
