package experiment

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// output collects the files an experiment writes into its directory.
type output struct {
	dir   string
	files []string
}

// path is name's path in the directory, and records it as written.
func (o *output) path(name string) string {
	o.files = append(o.files, name)
	return filepath.Join(o.dir, name)
}

// csv writes rows as name.
func (o *output) csv(name string, rows [][]string) error { return writeCSV(o.path(name), rows) }

// text writes s as name.
func (o *output) text(name, s string) error { return os.WriteFile(o.path(name), []byte(s), 0o644) }

// plot saves p as base.png and base.svg and returns the PNG's name, for
// the report to embed.
func (o *output) plot(p *plot.Plot, base string, w, h vg.Length) (string, error) {
	for _, ext := range []string{"png", "svg"} {
		if err := p.Save(w, h, o.path(base+"."+ext)); err != nil {
			return "", err
		}
	}
	return base + ".png", nil
}

// writeResult writes res as jsonName into dir, then the rest with body,
// and returns the files' names. The JSON goes first: gonum/plot panics on
// data it cannot draw, which is an error here, not a lost run (-from
// draws it again).
func writeResult(dir, jsonName string, res any, body func(o *output) error) (files []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			files, err = nil, fmt.Errorf("experiment: plotting %s: %v (the data is in %s; rerun with -from to plot again)", dir, r, jsonName)
		}
	}()
	o := &output{dir: dir}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(o.path(jsonName), js); err != nil {
		return nil, err
	}
	if err := body(o); err != nil {
		return nil, err
	}
	return o.files, nil
}

// writeAtomic writes b as path through a temporary file in its directory
// and a rename, so that path holds the old bytes or the new, never a cut:
// with -from a run's JSON is read from and written to the same place.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o644)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("experiment: write %s: %w", path, werr)
	}
	return nil
}

// newPlot is a plot with its title, axis labels (empty: none) and a grid,
// as every figure here starts.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.Add(plotter.NewGrid())
	return p
}

// logAxis puts a on a log scale with plain tick labels.
func logAxis(a *plot.Axis) {
	a.Scale = plot.LogScale{}
	a.Tick.Marker = plot.LogTicks{Prec: -1}
}
