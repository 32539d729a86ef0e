package migrate

import (
	"net/netip"
	"testing"
	"time"
)

// slowSendHost is a fakeHost whose sends take a millisecond of busy time,
// timed as a TransmitTimer when timed is set (Linux's sockets) and not
// otherwise.
type slowSendHost struct {
	fakeHost
	timed bool
	tx    time.Duration
}

func (h *slowSendHost) SendUDP(dst netip.Addr, b []byte) error {
	t0 := time.Now()
	for time.Since(t0) < time.Millisecond {
	}
	h.tx += time.Since(t0)
	return h.fakeHost.SendUDP(dst, b)
}

type timedSendHost struct{ *slowSendHost }

func (h timedSendHost) TransmitTime() time.Duration { return h.tx }

// startRecord starts a migration on h, lets its PREPARE time out once (a
// timer-driven resend), and returns the origin's record so far.
func startRecord(t *testing.T, h Host, fh *fakeHost) Record {
	t.Helper()
	e, err := NewHost(h, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(testConn, nil, func(Outcome) {}); err != nil {
		t.Fatal(err)
	}
	fh.now += 15 * time.Millisecond // past the PREPARE's 10 ms timeout
	e.Advance(fh.now)
	if len(fh.sent) != 2 {
		t.Fatalf("sent %d messages, want the PREPARE and its resend", len(fh.sent))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.outByID[testConn].rec
}

// A timeout's resend is migration work: Work counted the handlers' sends
// but not the ones the timers made. And a host that transmits inside
// SendUDP (the kernel's) has that time left out of Work, as the
// userspace stack's transmit, after the handlers, is.
func TestWorkCountsResendsAndLeavesOutTransmits(t *testing.T) {
	untimed := &slowSendHost{fakeHost: fakeHost{now: time.Second, conn: testConn}}
	if w := startRecord(t, untimed, &untimed.fakeHost).Work; w < 2*time.Millisecond {
		t.Errorf("Work %v after a PREPARE and its resend that took 1 ms each, want at least 2 ms", w)
	}
	timed := &slowSendHost{fakeHost: fakeHost{now: time.Second, conn: testConn}}
	if w := startRecord(t, timedSendHost{timed}, &timed.fakeHost).Work; w >= time.Millisecond {
		t.Errorf("Work %v with 2 ms of timed transmits, want them left out", w)
	}
}

// reservingHost is a fakeHost whose Reserve (a userspace stack making the
// next restore's objects ready) takes a millisecond.
type reservingHost struct{ *fakeHost }

func (h reservingHost) Reserve() {
	for t0 := time.Now(); time.Since(t0) < time.Millisecond; {
	}
}

// The Reserve that replaces the spares a freeze took is that migration's
// work: it ran after the handler's Work window, so the userspace stack's
// records left out what the kernel host's, which allocates inside its
// calls, count.
func TestReserveIsChargedToTheMigration(t *testing.T) {
	fh := &fakeHost{now: time.Second, conn: testConn, freezes: true}
	e, err := NewHost(reservingHost{fh}, Config{Switch: netip.MustParseAddr("10.0.0.254"), HeartbeatPeriod: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(testConn, nil, func(Outcome) {}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	before := e.outByID[testConn].rec.Work
	e.mu.Unlock()
	e.Datagram(netip.MustParseAddr("10.0.0.2"), loadAck(t, e)) // the freeze
	e.mu.Lock()
	after := e.outByID[testConn].rec.Work
	e.mu.Unlock()
	if after-before < time.Millisecond {
		t.Errorf("Work grew %v over the freeze and its 1 ms Reserve, want at least 1 ms", after-before)
	}
}
