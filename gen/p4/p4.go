// Package p4 emits the Tofino (TNA) switch program of a spec and its
// p4info, into generated/p4/:
//
//	headers.p4              Ethernet, IPv4, TCP, UDP and the TCPMig header
//	                        and payloads, from the spec's fields and enums
//	<name>.p4               the pipeline with exactly the semantics of
//	                        gen/SWITCH.md, one register pair per level
//	<name>.p4info.txtpb     the P4Runtime description, ids equal to the @ids
//	                        (tables, actions) and to bf-p4c's (externs)
//	p4info.go               the p4info embedded in Go, with the control-plane
//	                        objects' names as constants (contract.go)
//
// The P4 comes from text/template sources in templates/ (embedded), run
// with sprig's hermetic functions and the naming helpers of names.go; the
// output files are declared as data in outputs. The p4info is built with
// the p4runtime Go types and written as deterministic prototext.
//
// IDs. Tables and actions carry an @id computed from their fully
// qualified name (see idTable), and main carries @pkginfo with the spec's
// name and fingerprint, so P4Runtime ids are stable across regenerations
// and compilers.
//
// Registers in the p4info. TNA's Register is an extern: bf-p4c describes
// it in the p4info's `externs` with the Tofino extern type id 0x8B
// (barefoot/p4info.proto, P4Ids.REGISTER) and a packed barefoot.Register,
// which only Barefoot's own runtime reads. With
// --p4runtime-force-std-externs bf-p4c converts it to a standard p4info
// `registers` entry with prefix 0x16 (bf-p4c control-plane/
// p4runtime_force_std.cpp, convertRegister). We emit that standard form:
// runtime/control reads and writes the directory with standard P4Runtime
// RegisterEntry messages, and any P4Runtime server (ours, the software
// switch) understands it. bf-p4c ignores an @id on an extern instance and
// hashes its name under the Pipeline instance (pipe.SwitchIngress.drops),
// so the registers and the counter carry none, and their ids are computed
// as bf-p4c computes them (idTable). The p4info is then the one bf-p4c
// writes in every id and name the control plane uses; bf-p4c's also lists
// the actions no table refers to (drop, count_drop, flood, reply) and the
// parser's PortMetadata extern, which no control plane writes.
//
// The program cannot be compiled in make test (p4c is not a Debian
// package and is built by hand, DESIGN §6, issue 9), so the tests check it
// structurally: golden files, balanced
// delimiters, every referenced object declared, @ids equal to the p4info,
// the spec's levels, widths and CRC parameters in the output, and one check
// per gen/SWITCH.md rule (rules_test.go), each shown to fail when its rule
// is taken out of the program.
package p4

import (
	"bytes"
	"errors"
	"fmt"
	"text/template"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/templates"
)

// ErrUnsupported is wrapped when a spec asks for something the switch
// program cannot do.
var ErrUnsupported = errors.New("spec not supported by the p4 emitter")

// ingress is the ingress control's name; it qualifies every control-plane
// object's P4Runtime name.
const ingress = "SwitchIngress"

// output is one generated P4 file, declared as data (ent's
// entc/gen/template.go): the template that renders it, when it exists,
// and its path pattern below the output root, itself a template over data.
type output struct {
	Template string
	Path     string
	Cond     func(*data) bool
}

var outputs = []output{
	{Template: "p4_headers.p4.tmpl", Path: "p4/headers.p4", Cond: always},
	{Template: "p4_program.p4.tmpl", Path: "p4/{{ .Name }}.p4", Cond: always},
}

func always(*data) bool { return true }

// Generate renders the P4 program, its headers and its p4info for s.
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	d, err := newData(s, opt)
	if err != nil {
		return nil, err
	}
	cp := controlPlaneOf(d)
	ids, err := assignIDs(cp.named())
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("p4").Funcs(funcMap(ids)).ParseFS(templates.FS, "p4_*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse p4 templates: %w", err)
	}
	files := genfile.Files{}
	for _, o := range outputs {
		if !o.Cond(d) {
			continue
		}
		name, err := execute(template.Must(template.New("path").Parse(o.Path)), d)
		if err != nil {
			return nil, fmt.Errorf("p4 output path %q: %w", o.Path, err)
		}
		t := tmpl.Lookup(o.Template)
		if t == nil {
			return nil, fmt.Errorf("p4 template %s is missing from templates/", o.Template)
		}
		body, err := execute(t, d)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		if err := files.Add(name, genfile.Tidy(body)); err != nil {
			return nil, err
		}
	}
	info, err := buildP4Info(d, cp, ids)
	if err != nil {
		return nil, err
	}
	txt, err := marshalP4Info(genfile.Header(s, opt, "# "), info)
	if err != nil {
		return nil, err
	}
	p4infoFile := string(d.Name) + ".p4info.txtpb"
	if err := files.Add("p4/"+p4infoFile, txt); err != nil {
		return nil, err
	}
	contract, err := emitContract(s, opt, d, cp, p4infoFile)
	if err != nil {
		return nil, err
	}
	if err := files.Add("p4/p4info.go", contract); err != nil {
		return nil, err
	}
	return files, nil
}

func execute(t *template.Template, d *data) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}
