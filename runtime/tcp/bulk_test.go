package tcp

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBulkTransferImpaired(t *testing.T) {
	for _, tc := range []struct {
		name            string
		loss, dup       float64
		jitter          Time
		size            int
		cfgA, cfgB      Config
		issA            uint32
		wantRetransmits bool
		wantOutOfOrder  bool
	}{
		{name: "clean 4MiB", size: 4 << 20},
		{name: "loss 2%", loss: 0.02, size: 3 << 20, wantRetransmits: true},
		{name: "dup 5%", dup: 0.05, size: 2 << 20},
		{name: "reorder", jitter: 3 * time.Millisecond, size: 2 << 20, wantOutOfOrder: true},
		{name: "all at once", loss: 0.03, dup: 0.03, jitter: 2 * time.Millisecond, size: 2 << 20, wantRetransmits: true, wantOutOfOrder: true},
		{name: "small buffers", loss: 0.02, jitter: time.Millisecond, size: 1 << 20,
			cfgA: Config{SendBuffer: 8 << 10, MSS: 536}, cfgB: Config{RecvBuffer: 6 << 10, MSS: 536}, wantRetransmits: true},
		{name: "sequence wrap", loss: 0.01, size: 1 << 20, issA: 0xffff_0000, wantRetransmits: true},
		{name: "big window", loss: 0.01, size: 4 << 20, cfgA: Config{SendBuffer: 2 << 20}, cfgB: Config{RecvBuffer: 2 << 20}, wantRetransmits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 42)
			n.loss, n.dup, n.jitter = tc.loss, tc.dup, tc.jitter
			n.dial(tc.cfgA, tc.cfgB)
			if tc.issA != 0 {
				n.a = Dial(tc.cfgA, ID{Local: addrA, Remote: addrB}, tc.issA, n.now)
			}
			exchange(t, n, payload(tc.size, 1), payload(tc.size/4, 2), 10*time.Minute)
			st := n.a.Stats()
			if tc.wantRetransmits && st.Retransmits == 0 {
				t.Errorf("no retransmissions under loss: %+v", st)
			}
			if tc.wantOutOfOrder && n.b.Stats().OutOfOrder == 0 {
				t.Errorf("no out-of-order arrivals under reordering: %+v", n.b.Stats())
			}
			if !tc.wantRetransmits && tc.dup == 0 && tc.jitter == 0 && st.Retransmits != 0 {
				t.Errorf("retransmissions on a clean link: %+v", st)
			}
		})
	}
}

var propertySeeds = flag.Int("tcp.seeds", 1000, "seeds for TestTransferProperty")

// TestTransferProperty runs many small transfers with random impairments,
// buffer sizes, MSS and initial sequence numbers; every byte must arrive
// and both ends must close cleanly.
func TestTransferProperty(t *testing.T) {
	seeds := *propertySeeds
	if testing.Short() {
		seeds = 100
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 99))
		n := newNet(t, seed)
		n.loss = r.Float64() * 0.15
		n.dup = r.Float64() * 0.1
		n.jitter = Time(r.Int64N(int64(4 * time.Millisecond)))
		n.delay = Time(1+r.Int64N(20)) * time.Millisecond
		cfg := func() Config {
			return Config{
				MSS:        uint16(100 + r.IntN(1400)),
				SendBuffer: 1000 + r.IntN(64<<10),
				RecvBuffer: 1000 + r.IntN(64<<10),
				DelayedACK: []time.Duration{-1, 0, 10 * time.Millisecond}[r.IntN(3)],
				TimeWait:   2 * time.Minute, // beyond any backed-off RTO
				MaxRetries: 30,
			}
		}
		cfgA, cfgB := cfg(), cfg()
		n.a = Dial(cfgA, ID{Local: addrA, Remote: addrB}, r.Uint32(), 0)
		n.cfgB = cfgB
		n.issB = r.Uint32()
		if seed%4 == 0 {
			n.issB = -uint32(r.IntN(30000)) // wraps during the transfer
		}
		aData, bData := payload(r.IntN(40000), seed), payload(r.IntN(40000), seed+1)
		desc := fmt.Sprintf("seed %d: loss %.2f dup %.2f jitter %v A %+v B %+v sizes %d/%d", seed, n.loss, n.dup, n.jitter, cfgA, cfgB, len(aData), len(bData))
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			n.t = t
			defer func() {
				if t.Failed() {
					t.Log(desc)
				}
			}()
			// Half the seeds move one end, at a random moment, through
			// AppendSnapshot/Restore, as a migration would.
			if seed%2 == 1 {
				at := Time(r.Int64N(int64(3 * time.Second)))
				which := []string{"A", "B"}[r.IntN(2)]
				moved := false
				n.hook = func() {
					if !moved && n.now >= at && n.b != nil {
						moved = true
						migrate(t, n, which)
					}
				}
			}
			exchange(t, n, aData, bData, 30*time.Minute)
			if !n.run(30*time.Minute, func() bool { return n.a.Done() && n.b.Done() }) {
				t.Fatalf("not closed: A %v B %v", n.a.State(), n.b.State())
			}
			if n.a.Err() != nil || n.b.Err() != nil {
				t.Fatalf("errors: A %v B %v", n.a.Err(), n.b.Err())
			}
		})
		if t.Failed() {
			return
		}
	}
}
