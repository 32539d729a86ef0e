package codec

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/spec"
)

func (g *gen) genMessages(f *jen.File) {
	f.Add(docf("Message is implemented by every message's struct form (as a pointer).\nCalling through it costs an allocation per call; the hot path uses the\nconcrete types."))
	f.Type().Id("Message").Interface(
		doc("Stage is the stage value that selects the message."),
		jen.Id("Stage").Params().Id(g.stage.Go),
		doc("EncodedLen is the size Encode writes."),
		jen.Id("EncodedLen").Params().Int(),
		doc("Encode writes the message into into and returns its length."),
		jen.Id("Encode").Params(jen.Id("into").Index().Byte()).Params(jen.Int(), jen.Error()),
		doc("Decode replaces the message with the one in b, aliasing b."),
		jen.Id("Decode").Params(jen.Id("b").Index().Byte()).Error(),
		doc("EncodeUDP writes the message in a UDP datagram from src to dst."),
		jen.Id("EncodeUDP").Params(jen.Id("into").Index().Byte(), jen.List(jen.Id("src"), jen.Id("dst")).Qual(pkgNetip, "AddrPort")).Params(jen.Int(), jen.Error()),
	)
	f.Var().DefsFunc(func(d *jen.Group) {
		for _, m := range g.msgs {
			d.Id("_").Id("Message").Op("=").Parens(jen.Op("*").Id(m.Go)).Parens(jen.Nil())
		}
	})
	for _, m := range g.msgs {
		g.genMessage(f, m)
	}
}

func (g *gen) genMessage(f *jen.File, m *message) {
	lenC := m.Go + "Len"
	f.Add(docf("%s is the size of a %s message without its variable part.", lenC, m.Name))
	if m.fixed == 0 {
		f.Const().Id(lenC).Op("=").Id("HeaderLen")
	} else {
		f.Const().Id(lenC).Op("=").Id("HeaderLen").Op("+").Lit(m.fixed)
	}

	if len(m.payload) > 0 {
		g.placeConsts(f, fmt.Sprintf("Byte offsets of %s's payload fields from the start of the header.", m.Name), jen.Id("HeaderLen"), m.payload)
	}

	sender := map[string]string{"server": "a server", "switch": "the switch", "any": "a server or the switch"}[m.From]
	if sender == "" {
		sender = m.From
	}
	text := fmt.Sprintf("%s is the %s message (stage %s), sent by %s.", m.Go, m.Name, m.stage.Name, sender)
	if m.Doc != "" {
		text += "\n" + m.Doc
	}
	if m.Fragmented {
		text += fmt.Sprintf("\nIt is fragmented: each %s carries at most %sFragmentBytes of the\nwhole message in %s; Fragment%s cuts a message and %sReassembler\nputs it back together.", m.Go, m.Go, dataField, m.Go, m.Go)
	}
	f.Add(doc(reflow(text)))
	f.Type().Id(m.Go).StructFunc(func(st *jen.Group) {
		st.Id(g.fieldsType)
		for _, fd := range m.payload {
			if fd.Reserved {
				continue
			}
			st.Add(doc(fieldDoc(fd, fmt.Sprintf("%s is the %s field.", fd.Go, fd.Name))))
			st.Id(fd.Go).Add(fd.GoT)
		}
		if m.Fragmented {
			st.Add(doc(fmt.Sprintf("%s is this fragment's share of the whole message. Decode aliases\nits input here.", dataField)))
			st.Id(dataField).Index().Byte()
		}
	})
	recv := func() *jen.Statement { return jen.Id("m").Op("*").Id(m.Go) }

	f.Add(doc("Stage returns " + m.stage.Go + "."))
	f.Func().Params(recv()).Id("Stage").Params().Id(g.stage.Go).Block(jen.Return(jen.Id(m.stage.Go)))

	f.Add(doc("EncodedLen is the size Encode writes."))
	f.Func().Params(recv()).Id("EncodedLen").Params().Int().BlockFunc(func(b *jen.Group) {
		switch {
		case m.Fragmented:
			b.Return(jen.Id(lenC).Op("+").Len(jen.Id("m").Dot(dataField)))
		case m.bytesF != nil:
			b.Return(jen.Id(lenC).Op("+").Len(jen.Id("m").Dot(m.bytesF.Go)))
		default:
			b.Return(jen.Id(lenC))
		}
	})

	where := m.Name
	f.Add(docf("Encode writes the message into into and returns its length. It\nallocates nothing and refuses values that do not fit the wire."))
	f.Func().Params(recv()).Id("Encode").Params(jen.Id("into").Index().Byte()).Params(jen.Int(), jen.Error()).BlockFunc(func(b *jen.Group) {
		b.Id("n").Op(":=").Id("m").Dot("EncodedLen").Call()
		b.If(jen.Len(jen.Id("into")).Op("<").Id("n")).Block(
			jen.Return(jen.Lit(0), jen.Id("shortBuffer").Call(jen.Lit(where), jen.Id("n"), jen.Len(jen.Id("into")))),
		)
		if g.headerChecked() {
			b.If(jen.Err().Op(":=").Id("m").Dot(g.fieldsType).Dot("check").Call(), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Lit(0), jen.Err()))
		}
		for _, fd := range m.payload {
			if fd.Reserved || fd.Type == spec.TypeBytes {
				continue
			}
			if c := g.rangeCheck(fd, jen.Id("m").Dot(fd.Go), where, jen.Lit(0)); c != nil {
				b.Add(c)
			}
		}
		if m.Fragmented {
			b.If(jen.Len(jen.Id("m").Dot(dataField)).Op(">").Id(m.Go + "FragmentBytes")).Block(
				jen.Return(jen.Lit(0), jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: a %s fragment carries %%d bytes, at most %%d fit the MTU", m.Name)),
					jen.Id("ErrBadLength"), jen.Len(jen.Id("m").Dot(dataField)), jen.Id(m.Go+"FragmentBytes"))),
			)
		}
		if bf := m.bytesF; bf != nil {
			b.If(jen.Uint64().Call(jen.Len(jen.Id("m").Dot(bf.Go))).Op(">").Add(hex(mask(bf.Bits)))).Block(
				jen.Return(jen.Lit(0), jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: %s.%s is %%d bytes; its %d-bit length prefix holds at most %d", m.Name, bf.Name, bf.Bits, mask(bf.Bits))),
					jen.Id("ErrFieldRange"), jen.Len(jen.Id("m").Dot(bf.Go)))),
			)
		}
		b.Id("b").Op(":=").Id("into").Index(jen.Empty(), jen.Id("n"))
		b.Id(g.view).Call(jen.Id("b")).Dot("Encode").Call(jen.Op("&").Id("m").Dot(g.fieldsType), jen.Id(m.stage.Go))
		if m.fixed > 0 {
			b.Clear(jen.Id("b").Index(jen.Id("HeaderLen"), jen.Id(lenC)))
		}
		for _, fd := range m.payload {
			switch {
			case fd.Reserved:
			case fd.Type == spec.TypeBytes:
				b.Add(g.set("b", prefixField(fd), jen.Id(uintType(fd.Bits)).Call(jen.Len(jen.Id("m").Dot(fd.Go)))))
				b.Copy(jen.Id("b").Index(jen.Id(lenC), jen.Empty()), jen.Id("m").Dot(fd.Go))
			default:
				b.Add(g.set("b", fd, jen.Id("m").Dot(fd.Go)))
			}
		}
		if m.Fragmented {
			b.Copy(jen.Id("b").Index(jen.Id(lenC), jen.Empty()), jen.Id("m").Dot(dataField))
		}
		b.Return(jen.Id("n"), jen.Nil())
	})

	f.Add(docf("Decode replaces m with the %s message in b (a whole %s datagram\npayload: header and message). Byte slices in m alias b. It allocates\nnothing; reserved bits are ignored.", m.Name, g.view))
	f.Func().Params(recv()).Id("Decode").Params(jen.Id("b").Index().Byte()).Error().BlockFunc(func(b *jen.Group) {
		b.Id("h").Op(":=").Id(g.view).Call(jen.Id("b"))
		b.If(jen.Err().Op(":=").Id("h").Dot("Validate").Call(), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Err()))
		b.If(jen.Id("s").Op(":=").Id("h").Dot(g.stageF.Go).Call(), jen.Id("s").Op("!=").Id(m.stage.Go)).Block(
			jen.Return(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: got %%v, want %s", m.stage.Name)), jen.Id("ErrWrongStage"), jen.Id("s"))),
		)
		b.If(jen.Len(jen.Id("b")).Op("<").Id(lenC)).Block(
			jen.Return(jen.Id("shortBuffer").Call(jen.Lit(where), jen.Id(lenC), jen.Len(jen.Id("b")))),
		)
		switch {
		case m.Fragmented:
			b.If(jen.Len(jen.Id("b")).Op("-").Id(lenC).Op(">").Id(m.Go + "FragmentBytes")).Block(
				jen.Return(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: a %s fragment carries %%d bytes, at most %%d fit the MTU", m.Name)),
					jen.Id("ErrBadLength"), jen.Len(jen.Id("b")).Op("-").Id(lenC), jen.Id(m.Go+"FragmentBytes"))),
			)
		case m.bytesF != nil:
			b.Id("end").Op(":=").Id(lenC).Op("+").Int().Call(g.get("b", prefixField(m.bytesF)))
			b.If(jen.Len(jen.Id("b")).Op("!=").Id("end")).Block(
				jen.Return(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: %s is %%d bytes, its %s prefix says %%d", m.Name, m.bytesF.Name)),
					jen.Id("ErrBadLength"), jen.Len(jen.Id("b")), jen.Id("end"))),
			)
		default:
			b.If(jen.Len(jen.Id("b")).Op("!=").Id(lenC)).Block(
				jen.Return(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: %s is %%d bytes, want %%d", m.Name)),
					jen.Id("ErrBadLength"), jen.Len(jen.Id("b")), jen.Id(lenC))),
			)
		}
		for _, fd := range m.payload {
			if fd.Type == spec.TypeEnum && !fd.Reserved {
				b.If(jen.Id("v").Op(":=").Add(g.get("b", fd)), jen.Op("!").Id("v").Dot("Valid").Call()).Block(
					jen.Return(jen.Qual(pkgFmt, "Errorf").Call(jen.Lit(fmt.Sprintf("%%w: %s.%s = %%d is not a value of enum %s", m.Name, fd.Name, fd.enum.Name)), jen.Id("ErrFieldRange"), jen.Id("v"))),
				)
			}
		}
		b.Id("m").Dot(g.fieldsType).Op("=").Id("h").Dot("Fields").Call()
		for _, fd := range m.payload {
			switch {
			case fd.Reserved:
			case fd.Type == spec.TypeBytes:
				b.Id("m").Dot(fd.Go).Op("=").Id("b").Index(jen.Id(lenC), jen.Id("end"), jen.Id("end"))
			default:
				b.Id("m").Dot(fd.Go).Op("=").Add(g.get("b", fd))
			}
		}
		if m.Fragmented {
			b.Id("m").Dot(dataField).Op("=").Id("b").Index(jen.Id(lenC), jen.Len(jen.Id("b")), jen.Len(jen.Id("b")))
		}
		b.Return(jen.Nil())
	})

	f.Add(docf("EncodeUDP writes a UDP datagram from src to dst carrying the message,\nwith the %s checksum, and returns its length.", g.s.Transport.Checksum))
	f.Func().Params(recv()).Id("EncodeUDP").Params(jen.Id("into").Index().Byte(), jen.List(jen.Id("src"), jen.Id("dst")).Qual(pkgNetip, "AddrPort")).Params(jen.Int(), jen.Error()).Block(
		jen.Id("need").Op(":=").Id("UDPHeaderLen").Op("+").Id("m").Dot("EncodedLen").Call(),
		jen.If(jen.Len(jen.Id("into")).Op("<").Id("need")).Block(
			jen.Return(jen.Lit(0), jen.Id("shortBuffer").Call(jen.Lit(where+" datagram"), jen.Id("need"), jen.Len(jen.Id("into")))),
		),
		jen.List(jen.Id("n"), jen.Err()).Op(":=").Id("m").Dot("Encode").Call(jen.Id("into").Index(jen.Id("UDPHeaderLen"), jen.Empty())),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Lit(0), jen.Err())),
		jen.Return(jen.Id("FinishUDP").Call(jen.Id("into").Index(jen.Empty(), jen.Id("UDPHeaderLen").Op("+").Id("n")), jen.Id("src"), jen.Id("dst"))),
	)
}

// prefixField is the length prefix of a bytes field, as a uint field. It
// copies the spec field: the spec is shared with the other emitters.
func prefixField(fd *field) *field {
	sf := *fd.Field
	sf.Type = spec.TypeUint
	pf := *fd
	pf.Field = &sf
	pf.GoT = jen.Id(uintType(fd.Bits))
	return &pf
}
