package load

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMeterRateConvergesToTheArrivalRate(t *testing.T) {
	m := NewMeter(50 * time.Millisecond)
	m.Tick(0)
	now := time.Duration(0)
	var s Sample
	// 2,000 requests a second, ticked every 10 ms (with an uneven period,
	// as jittered heartbeats tick), for a second: many half-lives.
	for i := range 100 {
		for range 20 {
			m.Begin(now)
			m.End(now)
		}
		now += 10*time.Millisecond + time.Duration(i%3-1)*time.Millisecond
		s = m.Tick(now)
	}
	if math.Abs(s.Rate-2000) > 150 {
		t.Errorf("rate %.0f/s after a second of 2,000/s, want within 150", s.Rate)
	}
	// Then nothing for four half-lives: a sixteenth is left.
	s = m.Tick(now + 200*time.Millisecond)
	if s.Rate > 2000/16*1.2 {
		t.Errorf("rate %.0f/s four half-lives after the requests stopped, want about %d", s.Rate, 2000/16)
	}
}

func TestMeterInFlightAndBusy(t *testing.T) {
	m := NewMeter(0)
	if s := m.Tick(time.Second); s.Busy != 0 || s.Rate != 0 || s.InFlight != 0 {
		t.Fatalf("first tick %+v, want zeros", s)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				m.Begin(time.Second)
			}
			for range 990 {
				m.End(time.Second)
			}
		}()
	}
	wg.Wait()
	m.AddBusy(25 * time.Millisecond)
	m.AddBusy(-time.Second) // ignored
	s := m.Tick(time.Second + 100*time.Millisecond)
	if s.InFlight != 80 {
		t.Errorf("in flight %d, want 80", s.InFlight)
	}
	// 80 requests in flight through the whole period: fully busy.
	if s.Busy != 1 {
		t.Errorf("busy %v over a period with requests in flight throughout, want 1", s.Busy)
	}
	// Ends without Begins never take it below zero.
	for range 200 {
		m.End(2 * time.Second)
	}
	if s := m.Tick(2 * time.Second); s.InFlight != 0 {
		t.Errorf("in flight %d after extra Ends, want 0", s.InFlight)
	}
	// A tick that does not move time forward changes nothing.
	if s2 := m.Tick(2 * time.Second); s2.Busy != m.Tick(2*time.Second).Busy {
		t.Errorf("a repeated tick changed busy")
	}
}

// TestMeterBusyIsOccupancy: time with any request in flight counts once,
// however many overlap, plus the event loop's own work.
func TestMeterBusyIsOccupancy(t *testing.T) {
	ms := time.Millisecond
	m := NewMeter(0)
	m.Tick(0)
	m.Begin(10 * ms) // [10, 30) one request
	m.Begin(20 * ms) // [20, 40) overlaps it
	m.End(30 * ms)
	m.End(40 * ms)
	m.Begin(60 * ms) // [60, 100) still in flight at the tick
	m.AddBusy(5 * ms)
	s := m.Tick(100 * ms)
	if want := (30 + 40 + 5) / 100.0; math.Abs(s.Busy-want) > 1e-9 {
		t.Errorf("busy %v, want %v: 30 ms occupied, 40 ms in flight at the tick, 5 ms of loop work", s.Busy, want)
	}
	if got := s.Value(Busy); got != 750 {
		t.Errorf("busy value %d, want 750 thousandths", got)
	}
	m.End(150 * ms)
	if s := m.Tick(200 * ms); math.Abs(s.Busy-0.5) > 1e-9 {
		t.Errorf("next period busy %v, want 0.5 (the request's remaining 50 ms)", s.Busy)
	}
}

func TestSampleValueSaturates(t *testing.T) {
	for _, c := range []struct {
		s    Sample
		m    Metric
		want uint32
	}{
		{Sample{InFlight: -3}, InFlight, 0},
		{Sample{InFlight: 1 << 40}, InFlight, math.MaxUint32},
		{Sample{Rate: math.NaN()}, Rate, 0},
		{Sample{Rate: 1234.5}, Rate, 1235},
		{Sample{Busy: 2}, Busy, 2000},
	} {
		if got := c.s.Value(c.m); got != c.want {
			t.Errorf("%+v as %v = %d, want %d", c.s, c.m, got, c.want)
		}
	}
}

func TestParseMetric(t *testing.T) {
	for i := range numMetrics {
		m, err := ParseMetric(i.String())
		if err != nil || m != i {
			t.Errorf("ParseMetric(%q) = %v, %v", i.String(), m, err)
		}
	}
	if _, err := ParseMetric("cpu"); err == nil || !strings.Contains(err.Error(), `"cpu"`) || !strings.Contains(err.Error(), "inflight, busy, rate") {
		t.Errorf("ParseMetric(cpu) error %v, want one naming the input and the choices", err)
	}
}

func TestConnLoadDecays(t *testing.T) {
	c := NewConnLoad(time.Second)
	for range 10 {
		c.Served(0, 2*time.Millisecond)
	}
	r, cost := c.At(0)
	if r != 10 || cost != 20*time.Millisecond {
		t.Fatalf("at once: %v requests, %v, want 10 and 20ms", r, cost)
	}
	r, cost = c.At(time.Second)
	if math.Abs(r-5) > 1e-9 || (cost-10*time.Millisecond).Abs() > time.Microsecond {
		t.Errorf("a half-life later: %v requests, %v, want 5 and 10ms", r, cost)
	}
	// Reading the past changes nothing.
	if r2, _ := c.At(0); r2 != r {
		t.Errorf("a read of an earlier time gave %v, want %v", r2, r)
	}
}
