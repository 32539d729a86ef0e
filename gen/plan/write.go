package plan

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/capygen/capygen/spec"
)

// WriteTable prints choices as an aligned text table.
func WriteTable(w io.Writer, choices []Choice) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "levels\tindex bits\tentries\tSRAM blocks\tSRAM %\tmap RAM\tSALUs\thash units\tstages\tcapacity@1%\tauthors@1%\tgain\t")
	for _, c := range choices {
		u := c.Usage
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%d\t%d\t%d\t%d\t%.2fx\t\n",
			c.Levels, c.IndexBits, c.Entries, u.SRAMBlocks, c.SRAMPercent, u.MapRAMBlocks,
			u.StatefulALUs, u.HashUnits, u.Stages, c.Capacity, c.AuthorsCapacity, c.Gain)
	}
	tw.Flush()
	if len(choices) == 0 {
		fmt.Fprintln(w, "no (levels, index bits) choice fits the budget")
	}
}

// WriteUsage prints one spec's estimated usage against its budget and
// target, then its per-object breakdown.
func WriteUsage(w io.Writer, s *spec.Spec, u *Usage) {
	t := s.Target
	fmt.Fprintf(w, "spec %s on %s: %d levels x %d index bits = %d directory entries (estimate; see gen/plan)\n",
		s.Name, t.Name, u.Levels, u.IndexBits, u.Entries)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "resource\tuses\tbudget\ttarget\tof target\t")
	row := func(name string, uses, budget, total int) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s%%\t\n", name, uses, budget, total, pct(uses, total))
	}
	row("sram blocks", u.SRAMBlocks, s.Budget.SRAMBlocks, t.Stages*t.SRAMBlocksPerStage)
	row("map ram blocks", u.MapRAMBlocks, s.Budget.MapRAMBlocks, t.Stages*t.MapRAMBlocksPerStage)
	row("stateful alus", u.StatefulALUs, s.Budget.StatefulALUs, t.Stages*t.StatefulALUsPerStage)
	row("hash units", u.HashUnits, s.Budget.HashUnits, t.Stages*t.HashUnitsPerStage)
	row("stages", u.Stages, min(s.Budget.Stages, t.Stages), t.Stages)
	tw.Flush()
	fmt.Fprintf(w, "authors' layout (%d bits an entry): %d SRAM blocks, %s%% of %s\n",
		u.Authors.BitsPerEntry, u.Authors.SRAMBlocks, pct(u.Authors.SRAMBlocks, t.Stages*t.SRAMBlocksPerStage), t.Name)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "object\tkind\tstage\tsram\tmap ram\tsalu\thash\t")
	for _, o := range u.Objects {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", o.Name, o.Kind, o.Stage, o.SRAMBlocks, o.MapRAMBlocks, o.StatefulALUs, o.HashUnits)
	}
	tw.Flush()
	for _, p := range u.Unplaceable {
		fmt.Fprintf(w, "cannot place: %s\n", p)
	}
}
