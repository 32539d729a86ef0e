// Package timerq is the queue of things due at a time that the simulator,
// the switch's delay faults and the migration engine share: a binary
// min-heap on (due time, push order). Ties leave in the order they were
// pushed, so a seeded run replays exactly, and entries are typed, so a
// push does not box its value the way container/heap's any does.
package timerq

import "cmp"

type entry[K cmp.Ordered, T any] struct {
	at  K
	seq uint64
	v   T
}

// Queue holds values of type T due at times of type K. The zero value is
// an empty queue ready to use.
type Queue[K cmp.Ordered, T any] struct {
	a   []entry[K, T]
	seq uint64
}

// Len is the number of queued values.
func (q *Queue[K, T]) Len() int { return len(q.a) }

// Push queues v, due at at.
func (q *Queue[K, T]) Push(at K, v T) {
	q.seq++
	q.a = append(q.a, entry[K, T]{at: at, seq: q.seq, v: v})
	a := q.a
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if !a[i].before(&a[p]) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

// Peek returns the earliest value and its due time without removing it;
// ok is false when the queue is empty. The pointer is valid until the
// next Push or Pop.
func (q *Queue[K, T]) Peek() (at K, v *T, ok bool) {
	if len(q.a) == 0 {
		return at, nil, false
	}
	return q.a[0].at, &q.a[0].v, true
}

// Pop removes and returns the earliest value; ok is false when the queue
// is empty.
func (q *Queue[K, T]) Pop() (at K, v T, ok bool) {
	a := q.a
	if len(a) == 0 {
		return at, v, false
	}
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = entry[K, T]{} // drop references the value held
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a[l].before(&a[m]) {
			m = l
		}
		if r < len(a) && a[r].before(&a[m]) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	q.a = a
	return top.at, top.v, true
}

func (e *entry[K, T]) before(o *entry[K, T]) bool {
	return e.at < o.at || e.at == o.at && e.seq < o.seq
}
