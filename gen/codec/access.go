package codec

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/spec"
)

func hex(v uint64) *jen.Statement { return jen.Id(fmt.Sprintf("0x%X", v)) }

func mask(bits int) uint64 {
	if bits >= 64 {
		return ^uint64(0)
	}
	return 1<<bits - 1
}

// compose reads span bytes from buf at o into one uint64 expression.
func compose(buf string, o, span int) *jen.Statement {
	var parts []jen.Code
	for i := 0; i < span; i++ {
		b := jen.Uint64().Call(jen.Id(buf).Index(jen.Lit(o + i)))
		if sh := 8 * (span - 1 - i); sh > 0 {
			b = b.Op("<<").Lit(sh)
		}
		parts = append(parts, b)
	}
	st := jen.Add(parts[0])
	for _, p := range parts[1:] {
		st = st.Op("|").Add(p)
	}
	return st
}

// get is an expression of f's Go type read from buf, whose region starts
// base bytes into buf.
func (g *gen) get(buf string, base int, f *field) *jen.Statement {
	o := base + f.start
	conv := func(inner jen.Code) *jen.Statement {
		switch f.Type {
		case spec.TypeEnum:
			return jen.Id(f.enum.Go).Call(inner)
		default:
			return jen.Id(uintType(f.Bits)).Call(inner)
		}
	}
	if f.plain() {
		switch f.Type {
		case spec.TypeIPv4, spec.TypeMAC:
			n := f.Bits / 8
			return jen.Index(jen.Lit(n)).Byte().Call(jen.Id(buf).Index(jen.Lit(o), jen.Lit(o+n)))
		}
		var raw *jen.Statement
		switch f.Bits {
		case 8:
			raw = jen.Id(buf).Index(jen.Lit(o))
			if f.Type == spec.TypeUint {
				return raw
			}
		default:
			raw = jen.Qual(pkgBinary, "BigEndian").Dot(fmt.Sprintf("Uint%d", f.Bits)).Call(jen.Id(buf).Index(jen.Lit(o), jen.Empty()))
			if f.Type == spec.TypeUint {
				return raw
			}
		}
		return conv(raw)
	}
	m := mask(f.Bits)
	if f.span == 1 {
		if f.Type == spec.TypeFlag {
			return jen.Id(buf).Index(jen.Lit(o)).Op("&").Add(hex(1 << f.shift)).Op("!=").Lit(0)
		}
		inner := jen.Id(buf).Index(jen.Lit(o))
		if f.shift > 0 {
			inner = inner.Op(">>").Lit(f.shift)
		}
		return conv(inner.Op("&").Add(hex(m)))
	}
	inner := jen.Parens(compose(buf, o, f.span))
	if f.shift > 0 {
		inner = inner.Op(">>").Lit(f.shift)
	}
	return conv(inner.Op("&").Add(hex(m)))
}

// set writes val (an expression of f's Go type) into buf. The bits of the
// field are replaced; every other bit is kept.
func (g *gen) set(buf string, base int, f *field, val *jen.Statement) jen.Code {
	o := base + f.start
	at := func(i int) *jen.Statement { return jen.Id(buf).Index(jen.Lit(o + i)) }
	if f.plain() {
		switch f.Type {
		case spec.TypeIPv4, spec.TypeMAC:
			n := f.Bits / 8
			return jen.Copy(jen.Id(buf).Index(jen.Lit(o), jen.Lit(o+n)), val.Clone().Index(jen.Empty(), jen.Empty()))
		}
		v := val.Clone()
		if f.Type == spec.TypeEnum {
			v = jen.Id(uintType(f.Bits)).Call(v)
		}
		if f.Bits == 8 {
			return at(0).Op("=").Add(v)
		}
		return jen.Qual(pkgBinary, "BigEndian").Dot(fmt.Sprintf("PutUint%d", f.Bits)).Call(jen.Id(buf).Index(jen.Lit(o), jen.Empty()), v)
	}
	m := mask(f.Bits)
	if f.span == 1 {
		bm := m << f.shift
		if f.Type == spec.TypeFlag {
			return jen.If(val.Clone()).Block(at(0).Op("|=").Add(hex(bm))).Else().Block(at(0).Op("&^=").Add(hex(bm)))
		}
		v := jen.Byte().Call(val.Clone())
		if f.shift > 0 {
			v = v.Op("<<").Lit(f.shift)
		}
		return at(0).Op("=").Add(at(0)).Op("&^").Add(hex(bm)).Op("|").Add(v).Op("&").Add(hex(bm))
	}
	bm := m << f.shift
	v := jen.Uint64().Call(val.Clone())
	if f.shift > 0 {
		v = jen.Parens(v.Op("<<").Lit(f.shift))
	}
	stmts := []jen.Code{
		jen.Id("x").Op(":=").Add(compose(buf, o, f.span)),
		jen.Id("x").Op("=").Id("x").Op("&^").Add(hex(bm)).Op("|").Add(v).Op("&").Add(hex(bm)),
	}
	for i := 0; i < f.span; i++ {
		x := jen.Id("x")
		if sh := 8 * (f.span - 1 - i); sh > 0 {
			x = x.Op(">>").Lit(sh)
		}
		stmts = append(stmts, at(i).Op("=").Byte().Call(x))
	}
	return jen.Block(stmts...)
}

// rangeCheck returns a statement refusing values of f that do not fit the
// wire, or nil when every Go value fits. val is the Go expression; ret is
// what the enclosing function returns before the error.
func (g *gen) rangeCheck(f *field, val *jen.Statement, where string, ret ...jen.Code) jen.Code {
	if !f.ranged() {
		return nil
	}
	errRet := func(e jen.Code) jen.Code { return jen.Return(append(append([]jen.Code{}, ret...), e)...) }
	if f.Type == spec.TypeEnum {
		sentinel := "ErrFieldRange"
		if f.enum == g.stage {
			sentinel = "ErrUnknownStage"
		}
		return jen.If(jen.Op("!").Add(val.Clone()).Dot("Valid").Call()).Block(
			errRet(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: %s.%s = %%d is not a value of enum %s", where, f.Name, f.enum.Name)), jen.Id(sentinel), val.Clone())),
		)
	}
	return jen.If(val.Clone().Op(">").Add(hex(mask(f.Bits)))).Block(
		errRet(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: %s.%s = %%d does not fit %d bits", where, f.Name, f.Bits)), jen.Id("ErrFieldRange"), val.Clone())),
	)
}

// doc is a comment that stays a run of // lines when it has several lines
// (jennifer would otherwise render /* */).
func doc(text string) *jen.Statement {
	if !strings.Contains(text, "\n") {
		return jen.Comment(text)
	}
	return jen.Comment(commentLines(text))
}

// commentLines prefixes every line of text with "// ".
func commentLines(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight("// "+l, " ")
	}
	return strings.Join(lines, "\n")
}

// docf formats a comment and refills its plain paragraphs, whose lines the
// substituted names have made uneven.
func docf(format string, a ...any) *jen.Statement { return doc(reflow(fmt.Sprintf(format, a...))) }

// reflow refills each paragraph of text to 76 columns, leaving alone the
// paragraphs with indented or list lines.
func reflow(text string) string {
	paras := strings.Split(text, "\n\n")
	for i, p := range paras {
		plain := true
		for _, l := range strings.Split(p, "\n") {
			if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "-") {
				plain = false
			}
		}
		if plain {
			paras[i] = wrap(p, 76)
		}
	}
	return strings.Join(paras, "\n\n")
}

// wrap fills text into lines of at most width columns.
func wrap(text string, width int) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(text) {
		if n > 0 && n+1+len(w) > width {
			b.WriteByte('\n')
			n = 0
		} else if n > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}
