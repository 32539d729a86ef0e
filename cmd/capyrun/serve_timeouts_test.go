package main

import (
	"strings"
	"testing"
	"time"
)

// TestServeTimeouts: serve -switch's HTTP server cuts off a client silent
// between requests or mid-body by default, and the flags change or
// disable that.
func TestServeTimeouts(t *testing.T) {
	for _, c := range []struct {
		args       []string
		idle, body time.Duration
	}{
		{nil, defaultIdleTimeout, defaultBodyTimeout},
		{[]string{"-idle-timeout", "30s", "-switch", "10.77.0.254", "-body-timeout", "5s"}, 30 * time.Second, 5 * time.Second},
		{[]string{"-idle-timeout", "0", "-switch", "10.77.0.254", "-body-timeout", "0"}, 0, 0},
	} {
		f, err := parseServeFlags(c.args)
		if err != nil {
			t.Fatalf("serve %q: %v", c.args, err)
		}
		hs := appHTTPServer(f, nil, nil)
		if hs.IdleTimeout != c.idle || hs.BodyTimeout != c.body {
			t.Errorf("serve %q: IdleTimeout %v BodyTimeout %v, want %v and %v", c.args, hs.IdleTimeout, hs.BodyTimeout, c.idle, c.body)
		}
	}
	if defaultIdleTimeout <= 0 || defaultBodyTimeout <= 0 {
		t.Errorf("defaults %v and %v: want both set", defaultIdleTimeout, defaultBodyTimeout)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-idle-timeout", "-1s"}, "-idle-timeout -1s: want a positive duration"},
		{[]string{"-switch", "10.77.0.254", "-body-timeout", "-1s"}, "-body-timeout -1s: want a positive duration"},
		{[]string{"-body-timeout", "5s"}, "-body-timeout: only with the migration engine"},
	} {
		if _, err := parseServeFlags(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %q: error %v, want one saying %q", c.args, err, c.want)
		}
	}
}
