package tcp

// maxHoles bounds the out-of-order ranges a connection tracks. A segment
// that would need more is dropped (and later retransmitted by the peer), so
// a hostile peer cannot make the tracker grow.
const maxHoles = 16

// seqRange is the half-open sequence range [start, end).
type seqRange struct{ start, end uint32 }

// assembler records which out-of-order ranges beyond rcv.nxt are parked in
// the receive ring. Ranges are sorted, disjoint and non-adjacent.
type assembler struct {
	r [maxHoles]seqRange
	n int
}

func (a *assembler) empty() bool { return a.n == 0 }

// add merges [start,end) into the set and reports whether it fit.
func (a *assembler) add(start, end uint32) bool {
	// Find the first range that ends at or after start.
	i := 0
	for i < a.n && seqLT(a.r[i].end, start) {
		i++
	}
	// Merge every range that overlaps or touches [start,end).
	j := i
	for j < a.n && seqLEQ(a.r[j].start, end) {
		if seqLT(a.r[j].start, start) {
			start = a.r[j].start
		}
		if seqGT(a.r[j].end, end) {
			end = a.r[j].end
		}
		j++
	}
	merged := j - i
	if merged == 0 {
		if a.n == maxHoles {
			return false
		}
		copy(a.r[i+1:a.n+1], a.r[i:a.n])
		a.r[i] = seqRange{start, end}
		a.n++
		return true
	}
	a.r[i] = seqRange{start, end}
	copy(a.r[i+1:], a.r[j:a.n])
	a.n -= merged - 1
	return true
}

// covers reports whether one range holds all of [start,end).
func (a *assembler) covers(start, end uint32) bool {
	for i := range a.n {
		if seqLEQ(a.r[i].start, start) && seqLEQ(end, a.r[i].end) {
			return true
		}
	}
	return false
}

// advance returns how far rcv.nxt moves once in-order data reaches nxt:
// the ranges that now start at or before nxt are consumed.
func (a *assembler) advance(nxt uint32) uint32 {
	end := nxt
	k := 0
	for k < a.n && seqLEQ(a.r[k].start, end) {
		end = seqMax(end, a.r[k].end)
		k++
	}
	copy(a.r[:], a.r[k:a.n])
	a.n -= k
	return end - nxt
}

// bytes is the number of sequence numbers covered.
func (a *assembler) bytes() int {
	n := 0
	for i := 0; i < a.n; i++ {
		n += int(a.r[i].end - a.r[i].start)
	}
	return n
}
