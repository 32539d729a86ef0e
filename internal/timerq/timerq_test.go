package timerq

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestOrder pops in (due, push order) order against a stable sort of the
// same pushes, interleaving pushes and pops.
func TestOrder(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		var q Queue[int, int]
		type item struct{ at, id int }
		var model []item
		for id := 0; id < 500; id++ {
			at := r.IntN(40)
			q.Push(at, id)
			model = append(model, item{at, id})
			if r.IntN(3) == 0 {
				slices.SortStableFunc(model, func(a, b item) int { return a.at - b.at })
				gotAt, got, ok := q.Pop()
				if !ok || gotAt != model[0].at || got != model[0].id {
					t.Fatalf("seed %d: Pop = %d@%d %v, want %d@%d", seed, got, gotAt, ok, model[0].id, model[0].at)
				}
				model = model[1:]
			}
		}
		slices.SortStableFunc(model, func(a, b item) int { return a.at - b.at })
		for _, want := range model {
			at, p, ok := q.Peek()
			if !ok || at != want.at || *p != want.id {
				t.Fatalf("seed %d: Peek = %d@%d, want %d@%d", seed, *p, at, want.id, want.at)
			}
			if _, got, _ := q.Pop(); got != want.id {
				t.Fatalf("seed %d: Pop = %d, want %d", seed, got, want.id)
			}
		}
		if q.Len() != 0 {
			t.Fatalf("seed %d: %d left", seed, q.Len())
		}
		if _, _, ok := q.Pop(); ok {
			t.Fatal("Pop on an empty queue reported a value")
		}
		if _, _, ok := q.Peek(); ok {
			t.Fatal("Peek on an empty queue reported a value")
		}
	}
}

func BenchmarkPushPop(b *testing.B) {
	var q Queue[int64, [4]uint64]
	for i := 0; i < 1024; i++ {
		q.Push(int64(i*7919%1024), [4]uint64{})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at, v, _ := q.Pop()
		q.Push(at+1024, v)
	}
}
