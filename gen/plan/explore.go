package plan

import (
	"fmt"

	"github.com/capygen/capygen/spec"
)

// DefaultMaxLevels is the level count Explore tries up to when
// ExploreOptions.MaxLevels is 0; MaxLevels is the most it accepts (the
// 8 distinct CRCs of spec.CRCFamily, and more stages than a pipe has).
const (
	DefaultMaxLevels = 4
	MaxLevels        = 8
)

// ExploreOptions bounds Explore.
type ExploreOptions struct {
	// MaxLevels is the largest level count tried, 1..MaxLevels; 0 means
	// DefaultMaxLevels.
	MaxLevels int
	// Seed selects the random client addresses; the same seed gives the
	// same capacities. spec.CapacitySeed is what `capygen vet` uses.
	Seed uint64
}

// Choice is one directory shape that fits the budget.
type Choice struct {
	Levels    int    `json:"levels"`
	IndexBits int    `json:"index_bits"`
	Entries   int    `json:"entries"`
	Usage     *Usage `json:"usage"`
	// SRAMPercent is the share of the target's SRAM the program uses.
	SRAMPercent float64 `json:"sram_percent"`
	// Capacity is the number of entries stored when 1% of inserts are
	// first rejected (spec.MeasureCapacity, the measurement `capygen vet`
	// quotes too), with a distinct CRC per level (spec.LevelHashes).
	Capacity int `json:"capacity_at_1pct"`
	// AuthorsCapacity is the same figure for the authors' scheme: one
	// hash, the same index on every level.
	AuthorsCapacity int `json:"authors_capacity_at_1pct"`
	// Gain is Capacity / AuthorsCapacity.
	Gain float64 `json:"gain"`
	// Hashes names the CRC of each level used for the measurement.
	Hashes []string `json:"hashes"`
}

// Explore lists every (levels, index bits) choice, levels 1..MaxLevels and
// index bits in the target's range, whose estimate fits s's budget, with
// its measured capacity and the authors' capacity side by side. Choices
// are ordered by levels, then index bits.
func Explore(s *spec.Spec, opt ExploreOptions) ([]Choice, error) {
	if s == nil || s.Target == nil || s.Directory == nil {
		return nil, fmt.Errorf("%w: it needs a target and a directory", ErrBadSpec)
	}
	if opt.MaxLevels == 0 {
		opt.MaxLevels = DefaultMaxLevels
	}
	if opt.MaxLevels < 1 || opt.MaxLevels > MaxLevels {
		return nil, fmt.Errorf("%w: max levels %d is outside 1..%d; explore 1 to %d levels", ErrBadSpec, opt.MaxLevels, MaxLevels, MaxLevels)
	}
	t := s.Target
	total := t.Stages * t.SRAMBlocksPerStage
	var out []Choice
	for l := 1; l <= opt.MaxLevels; l++ {
		for w := t.MinIndexBits; w <= t.MaxIndexBits; w++ {
			u, err := estimate(t, s.Tables, l, w)
			if err != nil {
				return nil, err
			}
			if len(overruns(t, s.Budget, u)) > 0 {
				continue
			}
			crcs, err := spec.LevelHashes(s.Directory, l, w)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
			}
			c := Choice{Levels: l, IndexBits: w, Entries: l << w, Usage: u,
				SRAMPercent: float64(u.SRAMBlocks) * 100 / float64(total)}
			for _, h := range crcs {
				c.Hashes = append(c.Hashes, h.Name)
			}
			if c.Capacity, err = spec.MeasureCapacity(crcs, w, opt.Seed); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
			}
			shared := make([]*spec.CRC, l)
			for i := range shared {
				shared[i] = crcs[0]
			}
			if c.AuthorsCapacity, err = spec.MeasureCapacity(shared, w, opt.Seed); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
			}
			if c.AuthorsCapacity > 0 {
				c.Gain = float64(c.Capacity) / float64(c.AuthorsCapacity)
			}
			out = append(out, c)
		}
	}
	return out, nil
}
