// Package pipeline emits generated/pipeline: the Go model of the switch
// program, with exactly the semantics of gen/SWITCH.md. The directory
// (levels, index width, one table-driven CRC per level), the workload
// register and the table sizes come from the spec, so the model and the P4
// program cannot drift. The TCPMig header, its stages and lengths are read
// through the generated codec's names (tcpmig.TCPMig, tcpmig.MinLen,
// tcpmig.Offset...), and what does not vary with the spec (frame layout,
// rewrites with incremental checksums, exact-match tables) is
// runtime/genrt/pipe.
//
// The emitter is split by concern: model.go checks the spec and reduces it
// to what the switch needs; types.go emits the constants and public types,
// control.go the control plane over pipe's tables, process.go the data
// plane, hash.go the CRC tables. The hand-written tests beside the output
// (generated/pipeline/*_test.go) read the spec too, so variant_test.go runs
// them against models generated from other specs.
package pipeline

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// Dir is the output directory below the generated root.
const Dir = "pipeline"

// Import paths of the generated model: the runtime under it and the
// standard library.
const (
	binaryPkg = "encoding/binary"
	pipePkg   = genfile.GenrtPath + "/pipe"
	wirePkg   = genfile.GenrtPath + "/wire"
)

// pq is a name of runtime/genrt/pipe (pipe.L4Off).
func pq(name string) *jen.Statement { return jen.Qual(pipePkg, name) }

// Generate returns generated/pipeline for s: pipeline.go (types, control
// plane, data plane) and hash.go (the per-level CRCs).
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	m, err := newModel(s)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if opt.ImportRoot == "" {
		opt.ImportRoot = genfile.DefaultImportRoot
	}
	m.codec, m.view = opt.ImportRoot+"/"+s.Header.Name, s.Header.GoName()
	files := genfile.Files{}
	for _, out := range []struct {
		name string
		emit func(*jen.File)
	}{
		{"pipeline.go", m.emitPipeline},
		{"hash.go", m.emitHash},
	} {
		src, err := genfile.GoFile(s, opt, Dir+"/"+out.name, Dir, func(f *jen.File) {
			f.ImportName(binaryPkg, "binary")
			out.emit(f)
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		if err := files.Add(Dir+"/"+out.name, src); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	return files, nil
}

// be is binary.BigEndian.<method>(args...).
func be(method string, args ...jen.Code) *jen.Statement {
	return jen.Qual(binaryPkg, "BigEndian").Dot(method).Call(args...)
}

// hex renders v as a hexadecimal literal of at least digits digits.
func hex(v uint64, digits int) *jen.Statement {
	return jen.Op(fmt.Sprintf("0x%0*x", digits, v))
}
