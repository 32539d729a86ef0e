package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/cmd/internal/specload"
	"github.com/capygen/capygen/gen"
	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/plan"
	"github.com/capygen/capygen/spec"
)

func init() {
	prog.Register("generate", "generate every artifact from a spec into a directory", runGenerate)
	prog.Register("diff", "show how the generated directory differs from the spec (exit 1 on drift)", runDiff)
	prog.Register("plan", "print a spec's switch resource use and the (levels, width) choices that fit its budget", runPlan)
	prog.Register("vet", "check a spec and warn about legal but costly choices", runVet)
	prog.Register("version", "print the capygen version", func([]string) error { fmt.Println("capygen", gen.Version); return nil })
}

// specFlags are the flags every spec command shares.
type specFlags struct {
	spec, out, importRoot string
	noVersion             bool
	sets                  specload.Sets
}

func newSpecFlags(name string, withOut bool) (*flag.FlagSet, *specFlags) {
	fs := flag.NewFlagSet("capygen "+name, flag.ContinueOnError)
	f := &specFlags{}
	fs.StringVar(&f.spec, "spec", "spec/capybara.yaml", "the spec `file`")
	fs.Var(&f.sets, "set", "override a spec value, `path=value` (repeatable), e.g. -set directory.index_bits=14 -set budget.sram=20%")
	if withOut {
		fs.StringVar(&f.out, "out", "generated", "the output `directory`")
		fs.StringVar(&f.importRoot, "import", genfile.DefaultImportRoot, "Go import `path` of the output directory")
		fs.BoolVar(&f.noVersion, "no-version", false, "leave the capygen version out of file headers")
	}
	return fs, f
}

// load loads the spec and applies the -set overrides.
func (f *specFlags) load() (*spec.Spec, error) { return specload.Load(f.spec, f.sets) }

func (f *specFlags) generate() (genfile.Files, error) {
	s, err := f.load()
	if err != nil {
		return nil, err
	}
	opt := genfile.Options{Version: gen.Version, ImportRoot: f.importRoot}
	if f.noVersion {
		opt.Version = ""
	}
	files, err := gen.Generate(s, opt)
	if err != nil {
		// The loader's diagnostics carry the file; an emitter's or the
		// plan's do not.
		return nil, fmt.Errorf("%s: %w", f.spec, err)
	}
	return files, nil
}

func runGenerate(args []string) error {
	fs, f := newSpecFlags("generate", true)
	if err := cli.ParseNoArgs(fs, args); err != nil {
		return err
	}
	files, err := f.generate()
	if err != nil {
		return err
	}
	changes, err := gen.Write(f.out, files)
	if err != nil {
		return err
	}
	removed := 0
	for _, c := range changes {
		fmt.Printf("%-6s %s\n", c.Kind, filepath.Join(f.out, c.Path))
		if c.Kind == "delete" {
			removed++
		}
	}
	fmt.Printf("%d files from %s in %s: %d written, %d stale removed\n", len(files), f.spec, f.out, len(changes)-removed, removed)
	return nil
}

func runDiff(args []string) error {
	fs, f := newSpecFlags("diff", true)
	if err := cli.ParseNoArgs(fs, args); err != nil {
		return err
	}
	files, err := f.generate()
	if err != nil {
		return err
	}
	d, changes, err := gen.Diff(f.out, files)
	if err != nil {
		return err
	}
	if len(changes) == 0 {
		return nil
	}
	fmt.Print(d)
	fmt.Fprintf(os.Stderr, "capygen diff: %d generated files in %s differ from %s; run 'make generate' (capygen generate -spec %s -out %s)\n",
		len(changes), f.out, f.spec, f.spec, f.out)
	return cli.ExitError{Code: 1}
}

func runVet(args []string) error {
	fs, f := newSpecFlags("vet", false)
	if err := cli.ParseNoArgs(fs, args); err != nil {
		return err
	}
	s, err := f.load()
	if err != nil {
		return err
	}
	warnings := spec.Vet(s)
	for _, w := range warnings {
		fmt.Println(w)
	}
	if err := plan.Check(s); err != nil {
		return err
	}
	// Every emitter runs in memory, so vet never says ok for a spec that
	// generate refuses (an emitter's own limits go beyond the loader's).
	if _, err := gen.Generate(s, genfile.Options{Version: gen.Version, ImportRoot: genfile.DefaultImportRoot}); err != nil {
		return fmt.Errorf("%s: capygen generate refuses it: %w", f.spec, err)
	}
	noun := "warnings"
	if len(warnings) == 1 {
		noun = "warning"
	}
	fmt.Printf("%s: ok, %d %s\n", f.spec, len(warnings), noun)
	return nil
}

func runPlan(args []string) error {
	fs, f := newSpecFlags("plan", false)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	maxLevels := fs.Int("max-levels", plan.DefaultMaxLevels, fmt.Sprintf("explore directories of 1..`n` levels (n in 1..%d)", plan.MaxLevels))
	seed := fs.Uint64("seed", spec.CapacitySeed, "seed of the random client addresses used to measure capacity (vet uses the default)")
	if err := cli.ParseNoArgs(fs, args); err != nil {
		return err
	}
	if *maxLevels < 1 || *maxLevels > plan.MaxLevels {
		return fmt.Errorf("-max-levels %d is outside 1..%d; explore at least 1 and at most %d levels", *maxLevels, plan.MaxLevels, plan.MaxLevels)
	}
	s, err := f.load()
	if err != nil {
		return err
	}
	usage, err := plan.Estimate(s)
	if err != nil {
		return err
	}
	choices, err := plan.Explore(s, plan.ExploreOptions{MaxLevels: *maxLevels, Seed: *seed})
	if err != nil {
		return err
	}
	budgetErr := plan.Check(s)
	if *asJSON {
		out := struct {
			Spec    string        `json:"spec"`
			Usage   *plan.Usage   `json:"usage"`
			Fits    bool          `json:"fits"`
			Choices []plan.Choice `json:"choices"`
		}{f.spec, usage, budgetErr == nil, choices}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		plan.WriteUsage(os.Stdout, s, usage)
		fmt.Println()
		plan.WriteTable(os.Stdout, choices)
	}
	return budgetErr
}
