package p4

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// Import paths of the contract file.
const (
	p4configPkg  = "github.com/p4lang/p4runtime/go/p4/config/v1"
	prototextPkg = "google.golang.org/protobuf/encoding/prototext"
)

// emitContract writes p4/p4info.go: the p4info embedded in a Go package,
// with the fully qualified name of every control-plane object as a
// constant. A P4Runtime server and client (runtime/p4rt, runtime/control)
// resolve objects by these names through the p4info, so a renamed table
// breaks their build, not a switch at run time; and the binary carries the
// exact p4info its pipeline was generated with.
func emitContract(s *spec.Spec, opt genfile.Options, d *data, cp *controlPlane, p4infoFile string) ([]byte, error) {
	name := "p4/p4info.go"
	return genfile.GoFile(s, opt, name, "p4", func(f *jen.File) {
		f.PackageComment(fmt.Sprintf(`Package p4 is the P4Runtime contract of the %s switch program: its
p4info (%s, embedded) and the fully qualified names of its
control-plane objects. The P4 program beside it is what bf-p4c compiles;
the p4info is what a P4Runtime server checks a pushed pipeline against
(its pkg_info.version is the spec fingerprint) and what a client resolves
every name through.`, d.Name, p4infoFile))
		f.ImportAlias(p4configPkg, "p4configv1")
		f.ImportName(prototextPkg, "prototext")
		f.Anon("embed")
		f.Const().Defs(
			jen.Comment("Fingerprint is the spec fingerprint the p4info's pkg_info.version carries."),
			jen.Id("Fingerprint").Op("=").Lit(d.Fingerprint),
			jen.Comment("Program is the p4info's pkg_info.name; Arch its architecture."),
			jen.Id("Program").Op("=").Lit(string(d.Name)),
			jen.Id("Arch").Op("=").Lit(d.Arch),
			jen.Comment("P4InfoFile is the p4info's file name in this directory."),
			jen.Id("P4InfoFile").Op("=").Lit(p4infoFile),
			jen.Comment("Levels is the number of directory levels: one key and one addr register each."),
			jen.Id("Levels").Op("=").Lit(len(d.Levels)),
		)
		var defs []jen.Code
		add := func(kind, local, what string) {
			id := kind + spec.GoName(local)
			defs = append(defs, jen.Comment(fmt.Sprintf("%s is %s.", id, what)), jen.Id(id).Op("=").Lit(ingress+"."+local))
		}
		for _, t := range cp.Tables {
			if t.Local == "port_role" || t.Local == "ipv4_host" || t.Local == "l2_forward" {
				add("Table", t.Local, fmt.Sprintf("the %s table (size %d)", t.Local, t.Size))
			}
		}
		var fields []jen.Code
		field := func(id, value, what string) {
			fields = append(fields, jen.Comment(fmt.Sprintf("%s is %s.", id, what)), jen.Id(id).Op("=").Lit(value))
		}
		for _, t := range cp.Tables {
			if len(t.Keys) == 1 {
				field("Key"+spec.GoName(t.Local), t.Keys[0].Name, fmt.Sprintf("%s's exact match field (bit<%d>)", t.Local, t.Keys[0].Bits))
			}
		}
		for _, a := range cp.Actions {
			if a.Local == "miss" || a.Local == "no_route" || len(a.Params) > 0 {
				add("Action", a.Local, fmt.Sprintf("the %s action", a.Local))
			}
			for _, p := range a.Params {
				field("Param"+spec.GoName(a.Local)+spec.GoName(p.Name), p.Name, fmt.Sprintf("%s's parameter %s (bit<%d>)", a.Local, p.Name, p.Bits))
			}
		}
		for _, c := range cp.Counters {
			add("Counter", c.Local, fmt.Sprintf("the %s counter (%d cells)", c.Local, c.Size))
		}
		for _, r := range cp.Registers {
			if r.Size == 1 {
				add("Register", r.Local, fmt.Sprintf("the %s register (one %s cell)", r.Local, r.Struct))
			}
		}
		f.Comment("Names of the control-plane objects, as the p4info's preambles spell them.")
		f.Const().Defs(defs...)
		f.Comment("Names of the tables' match fields and the actions' parameters.")
		f.Const().Defs(fields...)
		var keys, targets, origins, ports []jen.Code
		for _, l := range d.Levels {
			keys = append(keys, jen.Lit(ingress+"."+l.KeyReg()))
			targets = append(targets, jen.Lit(ingress+"."+l.TargetReg()))
			origins = append(origins, jen.Lit(ingress+"."+l.OriginReg()))
			ports = append(ports, jen.Lit(ingress+"."+l.PortReg()))
		}
		f.Comment("DirKeyRegisters, DirTargetRegisters, DirOriginRegisters and DirPortRegisters")
		f.Comment("name each level's dir<i>_key, dir<i>_target, dir<i>_origin and dir<i>_port")
		f.Comment("registers, by level.")
		f.Var().Defs(
			jen.Id("DirKeyRegisters").Op("=").Index(jen.Id("Levels")).String().Values(keys...),
			jen.Id("DirTargetRegisters").Op("=").Index(jen.Id("Levels")).String().Values(targets...),
			jen.Id("DirOriginRegisters").Op("=").Index(jen.Id("Levels")).String().Values(origins...),
			jen.Id("DirPortRegisters").Op("=").Index(jen.Id("Levels")).String().Values(ports...),
		)
		f.Comment("//go:embed " + p4infoFile)
		f.Var().Id("p4infoText").Index().Byte()
		f.Comment("P4InfoText returns the p4info as the generator wrote it (prototext).")
		f.Func().Id("P4InfoText").Params().Index().Byte().Block(
			jen.Return(jen.Append(jen.Index().Byte().Parens(jen.Nil()), jen.Id("p4infoText").Op("..."))),
		)
		f.Comment("P4Info returns a fresh copy of the p4info. It fails only if the embedded")
		f.Comment("text was edited by hand into something that does not parse.")
		f.Func().Id("P4Info").Params().Params(jen.Op("*").Qual(p4configPkg, "P4Info"), jen.Error()).Block(
			jen.Id("info").Op(":=").Op("&").Qual(p4configPkg, "P4Info").Values(),
			jen.If(jen.Err().Op(":=").Qual(prototextPkg, "Unmarshal").Call(jen.Id("p4infoText"), jen.Id("info")), jen.Err().Op("!=").Nil()).Block(
				jen.Return(jen.Nil(), jen.Qual("fmt", "Errorf").Call(jen.Lit("generated/p4: "+p4infoFile+": %w (regenerate with capygen generate)"), jen.Err())),
			),
			jen.Return(jen.Id("info"), jen.Nil()),
		)
	})
}
