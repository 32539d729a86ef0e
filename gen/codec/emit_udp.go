package codec

import "github.com/dave/jennifer/jen"

func be16(buf string, o jen.Code) *jen.Statement {
	return jen.Qual(pkgBinary, "BigEndian").Dot("Uint16").Call(jen.Id(buf).Index(o, jen.Empty()))
}

func put16(buf string, o jen.Code, v jen.Code) *jen.Statement {
	return jen.Qual(pkgBinary, "BigEndian").Dot("PutUint16").Call(jen.Id(buf).Index(o, jen.Empty()), v)
}

func errf(sentinel, format string, args ...jen.Code) *jen.Statement {
	return jen.Qual(pkgFmt, "Errorf").Call(append([]jen.Code{jen.Lit("%w: " + format), jen.Id(sentinel)}, args...)...)
}

func (g *gen) genUDP(f *jen.File) {
	a4 := func() *jen.Statement { return jen.Index(jen.Lit(4)).Byte() }
	switch g.s.Transport.Checksum {
	case "wrapping16":
		f.Add(docf("DatagramChecksum returns the value of the checksum field of udp, a\nwhole UDP datagram: the 16-bit wrapping sum (no end-around carry) of the\n%s bytes after the UDP header, read as big-endian words with an odd last\nbyte padded with zero. This is the authors' scheme (spec checksum:\nwrapping16); it ignores the addresses, and any value, zero included, is a\nvalid sum.", g.view))
		f.Func().Id("DatagramChecksum").Params(jen.List(jen.Id("_"), jen.Id("_")).Add(a4()), jen.Id("udp").Index().Byte()).Uint16().Block(
			jen.Return(jen.Qual(pkgWire, "Wrapping16").Call(jen.Id("udp").Index(jen.Id("UDPHeaderLen"), jen.Empty()))),
		)
	default:
		f.Add(doc("DatagramChecksum returns the value of the checksum field of udp, a\nwhole UDP datagram from src to dst: the standard UDP checksum (RFC 768)\nover the IPv4 pseudo header and the datagram, with the checksum field\ntaken as zero. A computed zero is sent as 0xFFFF, as RFC 768 asks, so\nthe field is never zero."))
		f.Func().Id("DatagramChecksum").Params(jen.List(jen.Id("src"), jen.Id("dst")).Add(a4()), jen.Id("udp").Index().Byte()).Uint16().Block(
			jen.Return(jen.Qual(pkgWire, "UDPChecksum").Call(jen.Id("src"), jen.Id("dst"), jen.Id("udp"))),
		)
	}

	f.Add(docf("FinishUDP fills in the UDP header of udp, a datagram whose %s message\nis already in place after the first UDPHeaderLen bytes: ports, length and\nchecksum. It returns len(udp).", g.view))
	f.Func().Id("FinishUDP").Params(jen.Id("udp").Index().Byte(), jen.List(jen.Id("src"), jen.Id("dst")).Qual(pkgNetip, "AddrPort")).Params(jen.Int(), jen.Error()).Block(
		jen.If(jen.Op("!").Id("src").Dot("Addr").Call().Dot("Is4").Call().Op("||").Op("!").Id("dst").Dot("Addr").Call().Dot("Is4").Call()).Block(
			jen.Return(jen.Lit(0), errf("ErrNotIPv4", "%v -> %v", jen.Id("src"), jen.Id("dst"))),
		),
		jen.If(jen.Len(jen.Id("udp")).Op("<").Id("UDPHeaderLen")).Block(
			jen.Return(jen.Lit(0), jen.Id("shortBuffer").Call(jen.Lit("udp header"), jen.Id("UDPHeaderLen"), jen.Len(jen.Id("udp")))),
		),
		jen.If(jen.Len(jen.Id("udp")).Op(">").Add(hex(0xffff))).Block(
			jen.Return(jen.Lit(0), errf("ErrBadLength", "a %d-byte datagram does not fit UDP's 16-bit length", jen.Len(jen.Id("udp")))),
		),
		put16("udp", jen.Lit(0), jen.Id("src").Dot("Port").Call()),
		put16("udp", jen.Lit(2), jen.Id("dst").Dot("Port").Call()),
		put16("udp", jen.Lit(4), jen.Uint16().Call(jen.Len(jen.Id("udp")))),
		put16("udp", jen.Lit(6), jen.Id("DatagramChecksum").Call(jen.Id("src").Dot("Addr").Call().Dot("As4").Call(), jen.Id("dst").Dot("Addr").Call().Dot("As4").Call(), jen.Id("udp"))),
		jen.Return(jen.Len(jen.Id("udp")), jen.Nil()),
	)

	zero := jen.Null()
	if g.s.Transport.Checksum != "wrapping16" {
		zero = jen.If(jen.Id("got").Op("==").Lit(0)).Block(
			jen.Return(jen.Nil(), errf("ErrBadChecksum", "the UDP checksum is zero; the spec (checksum: udp) requires it")),
		)
	}
	f.Add(docf("DecodeUDP checks a UDP datagram from src to dst (addresses from the IPv4\nheader) and returns a view of the %s message it carries, aliasing udp.\nIt verifies the UDP length (a datagram longer than its length field, as\nwith Ethernet padding, is trimmed), the %s checksum, the constant\nfields, the stage and the stage's minimum length. Decode the message with\nits struct form, chosen by the view's %s. The ports are not checked.", g.view, g.s.Transport.Checksum, g.stageF.Go))
	f.Func().Id("DecodeUDP").Params(jen.List(jen.Id("src"), jen.Id("dst")).Qual(pkgNetip, "Addr"), jen.Id("udp").Index().Byte()).Params(jen.Id(g.view), jen.Error()).Block(
		jen.If(jen.Op("!").Id("src").Dot("Is4").Call().Op("||").Op("!").Id("dst").Dot("Is4").Call()).Block(
			jen.Return(jen.Nil(), errf("ErrNotIPv4", "%v -> %v", jen.Id("src"), jen.Id("dst"))),
		),
		jen.If(jen.Len(jen.Id("udp")).Op("<").Id("UDPHeaderLen")).Block(
			jen.Return(jen.Nil(), jen.Id("shortBuffer").Call(jen.Lit("udp header"), jen.Id("UDPHeaderLen"), jen.Len(jen.Id("udp")))),
		),
		jen.Id("n").Op(":=").Int().Call(be16("udp", jen.Lit(4))),
		jen.If(jen.Id("n").Op("<").Id("UDPHeaderLen").Op("||").Id("n").Op(">").Len(jen.Id("udp"))).Block(
			jen.Return(jen.Nil(), errf("ErrBadLength", "the UDP length field says %d, the datagram has %d bytes", jen.Id("n"), jen.Len(jen.Id("udp")))),
		),
		jen.Id("udp").Op("=").Id("udp").Index(jen.Empty(), jen.Id("n")),
		jen.Id("got").Op(":=").Add(be16("udp", jen.Lit(6))),
		zero,
		jen.If(jen.Id("want").Op(":=").Id("DatagramChecksum").Call(jen.Id("src").Dot("As4").Call(), jen.Id("dst").Dot("As4").Call(), jen.Id("udp")), jen.Id("got").Op("!=").Id("want")).Block(
			jen.Return(jen.Nil(), errf("ErrBadChecksum", "UDP checksum %#04x, want %#04x", jen.Id("got"), jen.Id("want"))),
		),
		jen.Id("h").Op(":=").Id(g.view).Call(jen.Id("udp").Index(jen.Id("UDPHeaderLen"), jen.Empty())),
		jen.If(jen.Err().Op(":=").Id("h").Dot("Validate").Call(), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Nil(), jen.Err())),
		jen.If(jen.List(jen.Id("need"), jen.Id("_")).Op(":=").Id("MinLen").Call(jen.Id("h").Dot(g.stageF.Go).Call()), jen.Len(jen.Id("h")).Op("<").Id("need")).Block(
			jen.Return(jen.Nil(), jen.Id("shortBuffer").Call(jen.Id("h").Dot(g.stageF.Go).Call().Dot("String").Call(), jen.Id("need"), jen.Len(jen.Id("h")))),
		),
		jen.Return(jen.Id("h"), jen.Nil()),
	)
}
