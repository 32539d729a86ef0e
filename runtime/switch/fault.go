package softswitch

import (
	"math/rand/v2"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// faulter draws one port direction's faults from its own seeded stream,
// so a port's faults depend only on the seed and that port's own frames,
// not on how traffic on other ports interleaves (which Run does not fix).
type faulter struct {
	r   Rates
	rng *rand.Rand // nil when r is zero: no draws at all
	c   faultCounters
}

type faultCounters struct {
	dropped, duplicated, delayed, overflow uint64
}

func newFaulter(r Rates, seed uint64, id pipeline.Port, dir uint64) faulter {
	f := faulter{r: r}
	if !r.Zero() {
		// A distinct, fixed stream per (port, direction).
		f.rng = rand.New(rand.NewPCG(seed, 0x5eed<<32|uint64(id)<<1|dir))
	}
	return f
}

// copies is how many copies of a frame go on: 0 (lost), 1, or 2
// (duplicated). Each probability is drawn only when it is set, so adding
// one fault does not shift another's stream.
func (f *faulter) copies() int {
	if f.rng == nil {
		return 1
	}
	if f.r.Loss > 0 && f.rng.Float64() < f.r.Loss {
		f.c.dropped++
		return 0
	}
	if f.r.Dup > 0 && f.rng.Float64() < f.r.Dup {
		f.c.duplicated++
		return 2
	}
	return 1
}

// delay says whether one copy is held back, and for how long.
func (f *faulter) delay() (time.Duration, bool) {
	if f.rng == nil || f.r.Delay == 0 || f.rng.Float64() >= f.r.Delay {
		return 0, false
	}
	f.c.delayed++
	d := f.r.DelayMin
	if span := f.r.DelayMax - f.r.DelayMin; span > 0 {
		d += time.Duration(f.rng.Int64N(int64(span) + 1))
	}
	return d, true
}

// heldFrame is a frame a delay fault holds; the switch's timerq.Queue
// keeps it until it is due, frames due at the same time leaving in the
// order they were held.
type heldFrame struct {
	port    *port
	ingress bool // process on arrival (ingress delay) rather than send
	frame   []byte
}
