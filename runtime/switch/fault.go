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

// heldFrame is a frame a delay fault holds until at.
type heldFrame struct {
	at      time.Duration
	seq     uint64
	port    *port
	ingress bool // process on arrival (ingress delay) rather than send
	frame   []byte
}

// heldQueue is a binary min-heap on (at, seq): frames due at the same
// time leave in the order they were held.
type heldQueue struct {
	a   []heldFrame
	seq uint64
}

func (h *heldQueue) len() int { return len(h.a) }

// next is the earliest held frame; the queue must not be empty.
func (h *heldQueue) next() *heldFrame { return &h.a[0] }

func (h *heldQueue) less(i, j int) bool {
	a := h.a
	return a[i].at < a[j].at || a[i].at == a[j].at && a[i].seq < a[j].seq
}

func (h *heldQueue) push(e heldFrame) {
	h.seq++
	e.seq = h.seq
	h.a = append(h.a, e)
	a := h.a
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *heldQueue) pop() heldFrame {
	a := h.a
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = heldFrame{}
	h.a = a[:last]
	a = h.a
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && h.less(l, m) {
			m = l
		}
		if r < len(a) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	return top
}
