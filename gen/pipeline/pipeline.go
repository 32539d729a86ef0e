// Package pipeline emits generated/pipeline: the Go model of the switch
// program, with exactly the semantics of gen/SWITCH.md. The directory
// (levels, index width, one table-driven CRC per level), the TCPMig header
// layout, the stage values, the workload register and the table sizes all
// come from the spec, so the model and the P4 program cannot drift.
//
// The emitter is split by concern: model.go checks the spec and reduces it
// to what the switch needs; types.go emits the constants and public types,
// control.go the control plane, process.go the data plane and its checksum
// helpers, hash.go the CRC tables. The hand-written tests beside the output
// (generated/pipeline/*_test.go) read the spec too, so variant_test.go runs
// them against models generated from other specs.
package pipeline

import (
	"bytes"
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// Dir is the output directory below the generated root.
const Dir = "pipeline"

const binaryPkg = "encoding/binary"

// Generate returns generated/pipeline for s: pipeline.go (types, control
// plane, data plane) and hash.go (the per-level CRCs).
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	m, err := newModel(s)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	files := genfile.Files{}
	for _, out := range []struct {
		name string
		emit func(*jen.File)
	}{
		{"pipeline.go", m.emitPipeline},
		{"hash.go", m.emitHash},
	} {
		f := jen.NewFile("pipeline")
		f.HeaderComment(genfile.Header(s, opt, "// "))
		out.emit(f)
		var buf bytes.Buffer
		if err := f.Render(&buf); err != nil {
			return nil, fmt.Errorf("pipeline: render %s: %w", out.name, err)
		}
		src, err := genfile.FormatGo(Dir+"/"+out.name, buf.Bytes())
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

// slice is buf[lo:hi] with literal bounds.
func slice(buf string, lo, hi int) *jen.Statement {
	return jen.Id(buf).Index(jen.Lit(lo), jen.Lit(hi))
}

// readField reads f from buf (the start of the header or payload f belongs
// to) as a value of type typ ("uint32", "uint64", ...), with a direct
// big-endian load when f is byte-aligned.
func readField(buf string, f *spec.Field, typ string) *jen.Statement {
	var x *jen.Statement
	var got string
	if o := f.Offset; o%8 == 0 {
		b := o / 8
		switch f.Bits {
		case 8:
			x, got = jen.Id(buf).Index(jen.Lit(b)), "byte"
		case 16:
			x, got = be("Uint16", slice(buf, b, b+2)), "uint16"
		case 32:
			x, got = be("Uint32", slice(buf, b, b+4)), "uint32"
		case 64:
			x, got = be("Uint64", slice(buf, b, b+8)), "uint64"
		}
	}
	if x == nil {
		x, got = jen.Id("getField").Call(jen.Id(buf), jen.Lit(f.Offset), jen.Lit(f.Bits)), "uint64"
	}
	if typ == "" || got == typ || (got == "byte" && typ == "uint8") {
		return x
	}
	return jen.Id(typ).Call(x)
}

// hex renders v as a hexadecimal literal of at least digits digits.
func hex(v uint64, digits int) *jen.Statement {
	return jen.Op(fmt.Sprintf("0x%0*x", digits, v))
}
