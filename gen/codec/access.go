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

// pkgWire is the runtime under the generated codec: bit fields and
// checksums, which do not vary with the spec.
const pkgWire = "github.com/capygen/capygen/runtime/genrt/wire"

// at is buf[f's offset constant + i].
func at(buf string, f *field, i int) *jen.Statement {
	o := jen.Id(f.off)
	if i > 0 {
		o = o.Op("+").Lit(i)
	}
	return jen.Id(buf).Index(o)
}

// span is buf[off : off+n], the n bytes at f's offset constant.
func span(buf string, f *field, n int) *jen.Statement {
	return jen.Id(buf).Index(jen.Id(f.off), jen.Id(f.off).Op("+").Lit(n))
}

// get is an expression of f's Go type read from buf, a view that starts
// at the header. Every place is named by the field's Offset, Shift and
// Mask constants, the ones the package exports.
func (g *gen) get(buf string, f *field) *jen.Statement {
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
			return jen.Index(jen.Lit(n)).Byte().Call(span(buf, f, n))
		}
		var raw *jen.Statement
		switch f.Bits {
		case 8:
			raw = at(buf, f, 0)
		default:
			raw = jen.Qual(pkgBinary, "BigEndian").Dot(fmt.Sprintf("Uint%d", f.Bits)).Call(jen.Id(buf).Index(jen.Id(f.off), jen.Empty()))
		}
		if f.Type == spec.TypeUint {
			return raw
		}
		return conv(raw)
	}
	if f.span == 1 {
		if f.Type == spec.TypeFlag {
			return jen.Qual(pkgWire, "Flag").Call(at(buf, f, 0), jen.Id(f.mask))
		}
		return conv(jen.Qual(pkgWire, "Bits").Call(at(buf, f, 0), jen.Id(f.mask), jen.Id(f.shiftC)))
	}
	return conv(jen.Qual(pkgWire, "Uint").Call(span(buf, f, f.span), jen.Id(f.mask), jen.Id(f.shiftC)))
}

// set writes val (an expression of f's Go type) into buf. The bits of the
// field are replaced; every other bit is kept.
func (g *gen) set(buf string, f *field, val *jen.Statement) jen.Code {
	if f.plain() {
		switch f.Type {
		case spec.TypeIPv4, spec.TypeMAC:
			return jen.Copy(span(buf, f, f.Bits/8), val.Clone().Index(jen.Empty(), jen.Empty()))
		}
		v := val.Clone()
		if f.Type == spec.TypeEnum {
			v = jen.Id(uintType(f.Bits)).Call(v)
		}
		if f.Bits == 8 {
			return at(buf, f, 0).Op("=").Add(v)
		}
		return jen.Qual(pkgBinary, "BigEndian").Dot(fmt.Sprintf("PutUint%d", f.Bits)).Call(jen.Id(buf).Index(jen.Id(f.off), jen.Empty()), v)
	}
	if f.span == 1 {
		if f.Type == spec.TypeFlag {
			return jen.Qual(pkgWire, "SetFlag").Call(jen.Op("&").Add(at(buf, f, 0)), jen.Id(f.mask), val.Clone())
		}
		return jen.Qual(pkgWire, "SetBits").Call(jen.Op("&").Add(at(buf, f, 0)), jen.Id(f.mask), jen.Id(f.shiftC), jen.Byte().Call(val.Clone()))
	}
	return jen.Qual(pkgWire, "SetUint").Call(span(buf, f, f.span), jen.Id(f.mask), jen.Id(f.shiftC), jen.Uint64().Call(val.Clone()))
}

// placeConsts declares fs's Offset constants (from the start of the
// header: base is the region's first byte, a constant expression) and
// the Shift and Mask of every field that is not whole bytes.
func (g *gen) placeConsts(f *jen.File, comment string, base jen.Code, fs []*field) {
	var offs, masks []jen.Code
	for _, fd := range fs {
		o := jen.Lit(fd.start)
		if base != nil {
			o = jen.Add(base)
			if fd.start > 0 {
				o = o.Op("+").Lit(fd.start)
			}
		}
		offs = append(offs, jen.Id(fd.off).Op("=").Add(o))
		if fd.plain() || fd.Type == spec.TypeBytes && fd.Bits%8 == 0 && (fd.Bits == 8 || fd.Bits == 16 || fd.Bits == 32 || fd.Bits == 64) {
			continue
		}
		m := mask(fd.Bits) << fd.shift
		mt := jen.Uint64()
		if fd.span == 1 {
			mt = jen.Byte()
		}
		masks = append(masks, jen.Id(fd.shiftC).Op("=").Lit(fd.shift), jen.Id(fd.mask).Add(mt).Op("=").Add(hex(m)))
	}
	f.Add(doc(comment))
	f.Const().Defs(offs...)
	if len(masks) > 0 {
		f.Add(doc("Places of the fields above that are not whole bytes: Mask covers the\nfield in the bytes it touches (one byte, or up to eight read big-endian)\nand Shift moves it down."))
		f.Const().Defs(masks...)
	}
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
