package codec

import (
	"fmt"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/spec"
)

// sampleValue is a deterministic, non-trivial value for field number i,
// in range for the field.
func (g *gen) sampleValue(fd *field, i int) jen.Code {
	switch fd.Type {
	case spec.TypeIPv4:
		return jen.Index(jen.Lit(4)).Byte().Values(jen.Lit(10), jen.Lit(77), jen.Lit(i/250), jen.Lit(i%250+1))
	case spec.TypeMAC:
		return jen.Index(jen.Lit(6)).Byte().Values(jen.Lit(2), jen.Lit(0), jen.Lit(0x5e), jen.Lit(0), jen.Lit(i/250), jen.Lit(i%250+1))
	case spec.TypeFlag:
		return jen.Lit(i%2 == 0)
	case spec.TypeEnum:
		return jen.Id(fd.enum.Values[i%len(fd.enum.Values)].Go)
	case spec.TypeBytes:
		return jen.Index().Byte().Call(jen.Lit(fmt.Sprintf("sample %s", fd.Name)))
	}
	v := (0xA5C3E1F00F1E3C5A + uint64(i)*0x0101010101010101) & mask(fd.Bits)
	return hex(v)
}

func (g *gen) genTests(f *jen.File) {
	f.Comment("pattern returns n bytes that differ from their neighbours, so a\nmisplaced copy shows.")
	f.Func().Id("pattern").Params(jen.Id("n").Int(), jen.Id("seed").Byte()).Index().Byte().Block(
		jen.Id("b").Op(":=").Make(jen.Index().Byte(), jen.Id("n")),
		jen.For(jen.Id("i").Op(":=").Range().Id("b")).Block(
			jen.Id("b").Index(jen.Id("i")).Op("=").Byte().Call(jen.Id("i")).Op("*").Lit(7).Op("+").Id("seed"),
		),
		jen.Return(jen.Id("b")),
	)
	f.Var().Defs(
		jen.Id("testSrc").Op("=").Qual(pkgNetip, "MustParseAddrPort").Call(jen.Lit("10.77.0.1:40000")),
		jen.Id("testDst").Op("=").Qual(pkgNetip, "MustParseAddrPort").Call(jen.Lit(fmt.Sprintf("10.77.0.2:%d", g.s.Transport.UDPPort))),
	)
	f.Comment("newMessage returns an empty struct form for a stage (tests only: it\nallocates).")
	f.Func().Id("newMessage").Params(jen.Id("s").Id(g.stage.Go)).Id("Message").BlockFunc(func(b *jen.Group) {
		b.Switch(jen.Id("s")).BlockFunc(func(sw *jen.Group) {
			for _, m := range g.sortedMsgs() {
				sw.Case(jen.Id(m.stage.Go)).Block(jen.Return(jen.New(jen.Id(m.Go))))
			}
		})
		b.Return(jen.Nil())
	})
	for _, m := range g.msgs {
		g.genSample(f, m)
		g.genRoundTrip(f, m)
	}
	g.genLayerTest(f)
}

// samples is a composite literal of every message's sample, as Messages.
func (g *gen) samples() *jen.Statement {
	return jen.Index().Id("Message").ValuesFunc(func(vs *jen.Group) {
		for _, m := range g.msgs {
			vs.Id("ptr").Call(jen.Id("sample" + m.Go).Call())
		}
	})
}

// genLayerTest checks that gopacket decodes every message inside
// Ethernet/IPv4/UDP on the spec's port, built with gopacket's own layers.
func (g *gen) genLayerTest(f *jen.File) {
	lay := func(name string) *jen.Statement { return jen.Qual(pkgLayers, name) }
	gp := func(name string) *jen.Statement { return jen.Qual(pkgGopacket, name) }
	f.Add(docf("TestGopacketLayer serializes every message behind gopacket's Ethernet,\nIPv4 and UDP layers (UDP checksum by gopacket) and decodes the frame with\ngopacket.NewPacket, which must find %s on port %d.", g.layer, g.s.Transport.UDPPort))
	f.Func().Id("TestGopacketLayer").Params(jen.Id("t").Op("*").Qual(pkgTesting, "T")).Block(
		jen.For(jen.List(jen.Id("_"), jen.Id("m")).Op(":=").Range().Add(g.samples())).Block(
			jen.Id("body").Op(":=").Id("encoded").Call(jen.Id("t"), jen.Id("m")),
			jen.Id("ip").Op(":=").Op("&").Add(lay("IPv4")).Values(jen.Dict{
				jen.Id("Version"): jen.Lit(4), jen.Id("TTL"): jen.Lit(64), jen.Id("Protocol"): lay("IPProtocolUDP"),
				jen.Id("SrcIP"): jen.Id("testSrc").Dot("Addr").Call().Dot("AsSlice").Call(), jen.Id("DstIP"): jen.Id("testDst").Dot("Addr").Call().Dot("AsSlice").Call(),
			}),
			jen.Id("udp").Op(":=").Op("&").Add(lay("UDP")).Values(jen.Dict{
				jen.Id("SrcPort"): lay("UDPPort").Call(jen.Id("testSrc").Dot("Port").Call()), jen.Id("DstPort"): lay("UDPPort").Call(jen.Id("UDPPort")),
			}),
			jen.If(jen.Err().Op(":=").Id("udp").Dot("SetNetworkLayerForChecksum").Call(jen.Id("ip")), jen.Err().Op("!=").Nil()).Block(jen.Id("t").Dot("Fatal").Call(jen.Err())),
			jen.Id("eth").Op(":=").Op("&").Add(lay("Ethernet")).Values(jen.Dict{
				jen.Id("SrcMAC"):       jen.Index().Byte().Values(jen.Lit(2), jen.Lit(0), jen.Lit(0), jen.Lit(0), jen.Lit(0), jen.Lit(1)),
				jen.Id("DstMAC"):       jen.Index().Byte().Values(jen.Lit(2), jen.Lit(0), jen.Lit(0), jen.Lit(0), jen.Lit(0), jen.Lit(2)),
				jen.Id("EthernetType"): lay("EthernetTypeIPv4"),
			}),
			jen.Id("l").Op(":=").Op("&").Id(g.layer).Values(jen.Dict{
				jen.Id(g.fieldsType): jen.Id(g.view).Call(jen.Id("body")).Dot("Fields").Call(),
				jen.Id(g.stageF.Go):  jen.Id("m").Dot("Stage").Call(),
			}),
			jen.Id("buf").Op(":=").Add(gp("NewSerializeBuffer")).Call(),
			jen.Id("opts").Op(":=").Add(gp("SerializeOptions")).Values(jen.Dict{jen.Id("FixLengths"): jen.True(), jen.Id("ComputeChecksums"): jen.True()}),
			jen.If(jen.Err().Op(":=").Add(gp("SerializeLayers")).Call(jen.Id("buf"), jen.Id("opts"), jen.Id("eth"), jen.Id("ip"), jen.Id("udp"), jen.Id("l"), gp("Payload").Call(jen.Id("body").Index(jen.Id("HeaderLen"), jen.Empty()))), jen.Err().Op("!=").Nil()).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("%v: SerializeLayers: %v"), jen.Id("m").Dot("Stage").Call(), jen.Err()),
			),
			jen.Id("p").Op(":=").Add(gp("NewPacket")).Call(jen.Id("buf").Dot("Bytes").Call(), lay("LayerTypeEthernet"), gp("Default")),
			jen.List(jen.Id("got"), jen.Id("ok")).Op(":=").Id("p").Dot("Layer").Call(jen.Id(g.layerType)).Assert(jen.Op("*").Id(g.layer)),
			jen.If(jen.Op("!").Id("ok").Op("||").Id("p").Dot("ErrorLayer").Call().Op("!=").Nil()).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("%v: NewPacket found no %s layer: %v"), jen.Id("m").Dot("Stage").Call(), jen.Lit(g.view), jen.Id("p")),
			),
			jen.Id("back").Op(":=").Id("newMessage").Call(jen.Id("got").Dot(g.stageF.Go)),
			jen.If(jen.Err().Op(":=").Id("back").Dot("Decode").Call(jen.Append(jen.Qual(pkgBytes, "Clone").Call(jen.Id("got").Dot("LayerContents").Call()), jen.Id("got").Dot("LayerPayload").Call().Op("..."))), jen.Err().Op("!=").Nil().Op("||").Op("!").Qual(pkgReflect, "DeepEqual").Call(jen.Id("back"), jen.Id("m"))).Block(
				jen.Id("t").Dot("Errorf").Call(jen.Lit("%v: decoded %+v, %v; want %+v"), jen.Id("m").Dot("Stage").Call(), jen.Id("back"), jen.Err(), jen.Id("m")),
			),
			jen.Comment("gopacket's UDP checksum is the one DecodeUDP verifies."),
			jen.If(jen.Id("ChecksumMode").Op("==").Lit("udp")).Block(
				jen.Id("u").Op(":=").Id("p").Dot("Layer").Call(lay("LayerTypeUDP")).Assert(jen.Op("*").Add(lay("UDP"))),
				jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("DecodeUDP").Call(jen.Id("testSrc").Dot("Addr").Call(), jen.Id("testDst").Dot("Addr").Call(), jen.Append(jen.Qual(pkgBytes, "Clone").Call(jen.Id("u").Dot("LayerContents").Call()), jen.Id("u").Dot("LayerPayload").Call().Op("..."))), jen.Err().Op("!=").Nil()).Block(
					jen.Id("t").Dot("Errorf").Call(jen.Lit("%v: DecodeUDP of gopacket's datagram: %v"), jen.Id("m").Dot("Stage").Call(), jen.Err()),
				),
			),
		),
	)
}

func (g *gen) genSample(f *jen.File, m *message) {
	f.Commentf("sample%s returns a %s with every field set.", m.Go, m.Name)
	f.Func().Id("sample" + m.Go).Params().Id(m.Go).BlockFunc(func(b *jen.Group) {
		b.Return(jen.Id(m.Go).Values(jen.DictFunc(func(d jen.Dict) {
			d[jen.Id(g.fieldsType)] = jen.Id(g.fieldsType).Values(jen.DictFunc(func(hd jen.Dict) {
				for i, fd := range g.publicHeader() {
					hd[jen.Id(fd.Go)] = g.sampleValue(fd, i)
				}
			}))
			for i, fd := range m.payload {
				if !fd.Reserved {
					d[jen.Id(fd.Go)] = g.sampleValue(fd, i+7)
				}
			}
			if m.Fragmented {
				d[jen.Id(dataField)] = jen.Id("pattern").Call(jen.Id(m.Go+"FragmentBytes"), jen.Lit(3))
			}
		})))
	})
}

func (g *gen) genRoundTrip(f *jen.File, m *message) {
	// The UDP checksum covers the whole datagram; the wrapping sum only the
	// bytes after the UDP header, but the length and checksum fields are
	// checked too.
	flipDoc, flipFrom := "A flipped bit anywhere in the datagram must not pass.", 0
	if g.s.Transport.Checksum == "wrapping16" {
		flipDoc, flipFrom = "A flipped bit after the ports (which wrapping16 does not cover) must\nnot pass.", 4
	}
	t := func(name string) *jen.Statement { return jen.Id("t").Dot(name) }
	f.Func().Id("TestRoundTrip"+m.Go).Params(jen.Id("t").Op("*").Qual(pkgTesting, "T")).Block(
		jen.Id("want").Op(":=").Id("sample"+m.Go).Call(),
		jen.Id("buf").Op(":=").Make(jen.Index().Byte(), jen.Id("want").Dot("EncodedLen").Call()),
		jen.List(jen.Id("n"), jen.Err()).Op(":=").Id("want").Dot("Encode").Call(jen.Id("buf")),
		jen.If(jen.Err().Op("!=").Nil().Op("||").Id("n").Op("!=").Len(jen.Id("buf"))).Block(
			t("Fatalf").Call(jen.Lit("Encode = %d, %v; want %d, nil"), jen.Id("n"), jen.Err(), jen.Len(jen.Id("buf"))),
		),
		jen.Var().Id("got").Id(m.Go),
		jen.If(jen.Err().Op(":=").Id("got").Dot("Decode").Call(jen.Id("buf")), jen.Err().Op("!=").Nil()).Block(
			t("Fatalf").Call(jen.Lit("Decode(Encode(m)) = %v"), jen.Err()),
		),
		jen.If(jen.Op("!").Qual(pkgReflect, "DeepEqual").Call(jen.Id("got"), jen.Id("want"))).Block(
			t("Errorf").Call(jen.Lit("Decode(Encode(m)) = %+v, want %+v"), jen.Id("got"), jen.Id("want")),
		),
		jen.Comment("Through UDP, with the spec's checksum."),
		jen.Id("dgram").Op(":=").Make(jen.Index().Byte(), jen.Id("UDPHeaderLen").Op("+").Id("want").Dot("EncodedLen").Call()),
		jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("want").Dot("EncodeUDP").Call(jen.Id("dgram"), jen.Id("testSrc"), jen.Id("testDst")), jen.Err().Op("!=").Nil()).Block(
			t("Fatalf").Call(jen.Lit("EncodeUDP: %v"), jen.Err()),
		),
		jen.List(jen.Id("h"), jen.Err()).Op(":=").Id("DecodeUDP").Call(jen.Id("testSrc").Dot("Addr").Call(), jen.Id("testDst").Dot("Addr").Call(), jen.Id("dgram")),
		jen.If(jen.Err().Op("!=").Nil()).Block(t("Fatalf").Call(jen.Lit("DecodeUDP(EncodeUDP(m)) = %v"), jen.Err())),
		jen.Id("got").Op("=").Id(m.Go).Values(),
		jen.If(jen.Err().Op(":=").Id("got").Dot("Decode").Call(jen.Id("h")), jen.Err().Op("!=").Nil().Op("||").Op("!").Qual(pkgReflect, "DeepEqual").Call(jen.Id("got"), jen.Id("want"))).Block(
			t("Errorf").Call(jen.Lit("Decode(DecodeUDP(EncodeUDP(m))) = %+v, %v; want %+v"), jen.Id("got"), jen.Err(), jen.Id("want")),
		),
		doc(flipDoc),
		jen.For(jen.Id("i").Op(":=").Lit(flipFrom), jen.Id("i").Op("<").Len(jen.Id("dgram")), jen.Id("i").Op("++")).Block(
			jen.Id("bad").Op(":=").Qual(pkgBytes, "Clone").Call(jen.Id("dgram")),
			jen.Id("bad").Index(jen.Id("i")).Op("^=").Lit(0x10),
			jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("DecodeUDP").Call(jen.Id("testSrc").Dot("Addr").Call(), jen.Id("testDst").Dot("Addr").Call(), jen.Id("bad")), jen.Err().Op("==").Nil()).Block(
				t("Errorf").Call(jen.Lit("DecodeUDP accepted the datagram with byte %d flipped"), jen.Id("i")),
			),
		),
		jen.Comment("The hot path allocates nothing."),
		jen.If(jen.Id("a").Op(":=").Qual(pkgTesting, "AllocsPerRun").Call(jen.Lit(100), jen.Func().Params().Block(
			jen.List(jen.Id("_"), jen.Id("_")).Op("=").Id("want").Dot("Encode").Call(jen.Id("buf")),
			jen.Id("_").Op("=").Id("got").Dot("Decode").Call(jen.Id("buf")),
			jen.List(jen.Id("_"), jen.Id("_")).Op("=").Id("want").Dot("EncodeUDP").Call(jen.Id("dgram"), jen.Id("testSrc"), jen.Id("testDst")),
			jen.List(jen.Id("_"), jen.Id("_")).Op("=").Id("DecodeUDP").Call(jen.Id("testSrc").Dot("Addr").Call(), jen.Id("testDst").Dot("Addr").Call(), jen.Id("dgram")),
		)), jen.Id("a").Op("!=").Lit(0)).Block(
			t("Errorf").Call(jen.Lit("Encode, Decode, EncodeUDP, DecodeUDP allocate %v times, want 0"), jen.Id("a")),
		),
	)
}

// reservedMask is the mask of reserved bits in the fixed part of m.
func (g *gen) reservedMask(m *message) []byte {
	hb := g.s.Header.Bytes
	mb := make([]byte, hb+m.fixed)
	mark := func(base int, fs []*field) {
		for _, fd := range fs {
			if !fd.Reserved {
				continue
			}
			for bit := fd.Offset; bit < fd.Offset+fd.Bits; bit++ {
				mb[base+bit/8] |= 0x80 >> (bit % 8)
			}
		}
	}
	mark(0, g.header)
	mark(hb, m.payload)
	return mb
}

func byteLits(b []byte) jen.Code {
	var vs []jen.Code
	for _, x := range b {
		vs = append(vs, hex(uint64(x)))
	}
	return jen.Index().Byte().Values(vs...)
}

func (g *gen) genFuzz(f *jen.File) {
	f.Comment("clearReserved zeroes the reserved bits of b, whose fixed part mask\ncovers, the way Encode writes them.")
	f.Func().Id("clearReserved").Params(jen.List(jen.Id("b"), jen.Id("mask")).Index().Byte()).Index().Byte().Block(
		jen.Id("b").Op("=").Qual(pkgBytes, "Clone").Call(jen.Id("b")),
		jen.For(jen.Id("i").Op(":=").Range().Id("mask")).Block(
			jen.If(jen.Id("i").Op("<").Len(jen.Id("b"))).Block(jen.Id("b").Index(jen.Id("i")).Op("&^=").Id("mask").Index(jen.Id("i"))),
		),
		jen.Return(jen.Id("b")),
	)
	f.Comment("reservedMasks holds, per stage, the reserved bits of the message's\nfixed part.")
	f.Var().Id("reservedMasks").Op("=").Map(jen.Id(g.stage.Go)).Index().Byte().Values(jen.DictFunc(func(d jen.Dict) {
		for _, m := range g.msgs {
			d[jen.Id(m.stage.Go)] = byteLits(g.reservedMask(m))
		}
	}))
	f.Comment("encoded returns the encoding of m, failing the test on error.")
	f.Func().Id("encoded").Params(jen.Id("t").Qual(pkgTesting, "TB"), jen.Id("m").Id("Message")).Index().Byte().Block(
		jen.Id("t").Dot("Helper").Call(),
		jen.Id("b").Op(":=").Make(jen.Index().Byte(), jen.Id("m").Dot("EncodedLen").Call()),
		jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("m").Dot("Encode").Call(jen.Id("b")), jen.Err().Op("!=").Nil()).Block(
			jen.Id("t").Dot("Fatalf").Call(jen.Lit("Encode(%+v): %v"), jen.Id("m"), jen.Err()),
		),
		jen.Return(jen.Id("b")),
	)
	for _, m := range g.msgs {
		f.Commentf("FuzzDecode%s: whatever %s.Decode accepts re-encodes to the same\nbytes (reserved bits cleared); nothing panics.", m.Go, m.Go)
		f.Func().Id("FuzzDecode"+m.Go).Params(jen.Id("f").Op("*").Qual(pkgTesting, "F")).Block(
			jen.Id("s").Op(":=").Id("sample"+m.Go).Call(),
			jen.Id("valid").Op(":=").Id("encoded").Call(jen.Id("f"), jen.Op("&").Id("s")),
			jen.Id("f").Dot("Add").Call(jen.Id("valid")),
			jen.Id("f").Dot("Add").Call(jen.Id("valid").Index(jen.Empty(), jen.Len(jen.Id("valid")).Op("-").Lit(1))),
			jen.Id("f").Dot("Add").Call(jen.Append(jen.Qual(pkgBytes, "Clone").Call(jen.Id("valid")), jen.Lit(0))),
			jen.Id("f").Dot("Add").Call(jen.Id("valid").Index(jen.Empty(), jen.Id("HeaderLen"))),
			jen.Id("f").Dot("Add").Call(jen.Index().Byte().Values()),
			jen.Id("f").Dot("Fuzz").Call(jen.Func().Params(jen.Id("t").Op("*").Qual(pkgTesting, "T"), jen.Id("b").Index().Byte()).Block(
				jen.Var().Id("m").Id(m.Go),
				jen.If(jen.Id("m").Dot("Decode").Call(jen.Id("b")).Op("!=").Nil()).Block(jen.Return()),
				jen.Id("out").Op(":=").Id("encoded").Call(jen.Id("t"), jen.Op("&").Id("m")),
				jen.If(jen.Id("want").Op(":=").Id("clearReserved").Call(jen.Id("b"), jen.Id("reservedMasks").Index(jen.Id(m.stage.Go))), jen.Op("!").Qual(pkgBytes, "Equal").Call(jen.Id("out"), jen.Id("want"))).Block(
					jen.Id("t").Dot("Fatalf").Call(jen.Lit("Encode(Decode(%x)) = %x"), jen.Id("want"), jen.Id("out")),
				),
			)),
		)
	}

	f.Comment("FuzzDecodeUDP: whatever DecodeUDP and the message's Decode accept\nre-encodes with EncodeUDP to the same datagram (reserved bits cleared,\nchecksum recomputed); nothing panics.")
	f.Func().Id("FuzzDecodeUDP").Params(jen.Id("f").Op("*").Qual(pkgTesting, "F")).BlockFunc(func(b *jen.Group) {
		b.For(jen.List(jen.Id("_"), jen.Id("m")).Op(":=").Range().Add(g.samples())).Block(
			jen.Id("d").Op(":=").Make(jen.Index().Byte(), jen.Id("UDPHeaderLen").Op("+").Id("m").Dot("EncodedLen").Call()),
			jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("m").Dot("EncodeUDP").Call(jen.Id("d"), jen.Id("testSrc"), jen.Id("testDst")), jen.Err().Op("!=").Nil()).Block(
				jen.Id("f").Dot("Fatal").Call(jen.Err()),
			),
			jen.Id("f").Dot("Add").Call(jen.Id("d")),
			jen.Id("f").Dot("Add").Call(jen.Id("d").Index(jen.Empty(), jen.Len(jen.Id("d")).Op("-").Lit(1))),
		)
		b.Id("f").Dot("Fuzz").Call(jen.Func().Params(jen.Id("t").Op("*").Qual(pkgTesting, "T"), jen.Id("d").Index().Byte()).Block(
			jen.List(jen.Id("h"), jen.Err()).Op(":=").Id("DecodeUDP").Call(jen.Id("testSrc").Dot("Addr").Call(), jen.Id("testDst").Dot("Addr").Call(), jen.Id("d")),
			jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return()),
			jen.Id("m").Op(":=").Id("newMessage").Call(jen.Id("h").Dot(g.stageF.Go).Call()),
			jen.If(jen.Id("m").Dot("Decode").Call(jen.Id("h")).Op("!=").Nil()).Block(jen.Return()),
			jen.Id("src").Op(":=").Qual(pkgNetip, "AddrPortFrom").Call(jen.Id("testSrc").Dot("Addr").Call(), jen.Qual(pkgBinary, "BigEndian").Dot("Uint16").Call(jen.Id("d"))),
			jen.Id("dst").Op(":=").Qual(pkgNetip, "AddrPortFrom").Call(jen.Id("testDst").Dot("Addr").Call(), jen.Qual(pkgBinary, "BigEndian").Dot("Uint16").Call(jen.Id("d").Index(jen.Lit(2), jen.Empty()))),
			jen.Id("out").Op(":=").Make(jen.Index().Byte(), jen.Id("UDPHeaderLen").Op("+").Id("m").Dot("EncodedLen").Call()),
			jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("m").Dot("EncodeUDP").Call(jen.Id("out"), jen.Id("src"), jen.Id("dst")), jen.Err().Op("!=").Nil()).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("EncodeUDP(%+v): %v"), jen.Id("m"), jen.Err()),
			),
			jen.Id("want").Op(":=").Id("clearReserved").Call(jen.Id("h"), jen.Id("reservedMasks").Index(jen.Id("h").Dot(g.stageF.Go).Call())),
			jen.If(jen.Op("!").Qual(pkgBytes, "Equal").Call(jen.Id("out").Index(jen.Id("UDPHeaderLen"), jen.Empty()), jen.Id("want"))).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("EncodeUDP(Decode(%x)) carries %x"), jen.Id("want"), jen.Id("out").Index(jen.Id("UDPHeaderLen"), jen.Empty())),
			),
			jen.If(jen.Qual(pkgBytes, "Equal").Call(jen.Id("want"), jen.Id("h")).Op("&&").Op("!").Qual(pkgBytes, "Equal").Call(jen.Id("out"), jen.Id("d").Index(jen.Empty(), jen.Len(jen.Id("out"))))).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("EncodeUDP(DecodeUDP(%x)) = %x"), jen.Id("d"), jen.Id("out")),
			),
		))
	})
	f.Comment("FuzzDecodeLayer: whatever the gopacket layer decodes serializes back to\nthe same header (reserved bits cleared); nothing panics.")
	f.Func().Id("FuzzDecodeLayer").Params(jen.Id("f").Op("*").Qual(pkgTesting, "F")).Block(
		jen.For(jen.List(jen.Id("_"), jen.Id("m")).Op(":=").Range().Add(g.samples())).Block(
			jen.Id("b").Op(":=").Id("encoded").Call(jen.Id("f"), jen.Id("m")),
			jen.Id("f").Dot("Add").Call(jen.Id("b")),
			jen.Id("f").Dot("Add").Call(jen.Id("b").Index(jen.Empty(), jen.Len(jen.Id("b")).Op("-").Lit(1))),
		),
		jen.Id("f").Dot("Fuzz").Call(jen.Func().Params(jen.Id("t").Op("*").Qual(pkgTesting, "T"), jen.Id("b").Index().Byte()).Block(
			jen.Var().Id("l").Id(g.layer),
			jen.If(jen.Id("l").Dot("DecodeFromBytes").Call(jen.Id("b"), jen.Qual(pkgGopacket, "NilDecodeFeedback")).Op("!=").Nil()).Block(jen.Return()),
			jen.Id("buf").Op(":=").Qual(pkgGopacket, "NewSerializeBuffer").Call(),
			jen.If(jen.Err().Op(":=").Qual(pkgGopacket, "SerializeLayers").Call(jen.Id("buf"), jen.Qual(pkgGopacket, "SerializeOptions").Values(jen.Dict{jen.Id("FixLengths"): jen.True()}), jen.Op("&").Id("l"), jen.Qual(pkgGopacket, "Payload").Call(jen.Id("l").Dot("LayerPayload").Call())), jen.Err().Op("!=").Nil()).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("SerializeTo(DecodeFromBytes(%x)): %v"), jen.Id("b"), jen.Err()),
			),
			jen.If(jen.Id("want").Op(":=").Id("clearReserved").Call(jen.Id("b"), jen.Id("reservedMasks").Index(jen.Id("l").Dot(g.stageF.Go)).Index(jen.Empty(), jen.Id("HeaderLen"))), jen.Op("!").Qual(pkgBytes, "Equal").Call(jen.Id("buf").Dot("Bytes").Call(), jen.Id("want"))).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("SerializeTo(DecodeFromBytes(%x)) = %x"), jen.Id("want"), jen.Id("buf").Dot("Bytes").Call()),
			),
		)),
	)
	f.Func().Id("ptr").Types(jen.Id("T").Any()).Params(jen.Id("v").Id("T")).Op("*").Id("T").Block(jen.Return(jen.Op("&").Id("v")))

	for _, m := range g.fragmented {
		g.genFuzzReassembler(f, m)
	}
}

func (g *gen) genFuzzReassembler(f *jen.File, m *message) {
	r := m.Go + "Reassembler"
	name := "FuzzReassembler"
	if len(g.fragmented) > 1 {
		name = "Fuzz" + r
	}
	f.Commentf("%s cuts a random message into fragments, delivers them in a\nrandom order with random duplicates, and checks that the message comes\nout intact and nothing stays held after the timeout. The raw input is also decoded as\nfragments and fed to a reassembler, which must never panic or return a\nmessage of the wrong length.", name)
	f.Func().Id(name).Params(jen.Id("f").Op("*").Qual(pkgTesting, "F")).Block(
		jen.Id("f").Dot("Add").Call(jen.Uint32().Call(jen.Lit(0)), jen.Uint64().Call(jen.Lit(1)), jen.Uint8().Call(jen.Lit(0)), jen.Index().Byte().Values()),
		jen.Id("f").Dot("Add").Call(jen.Uint32().Call(jen.Id(m.Go+"FragmentBytes")), jen.Uint64().Call(jen.Lit(2)), jen.Uint8().Call(jen.Lit(1)), jen.Index().Byte().Values()),
		jen.Id("f").Dot("Add").Call(jen.Uint32().Call(jen.Lit(5).Op("*").Id(m.Go+"FragmentBytes").Op("+").Lit(17)), jen.Uint64().Call(jen.Lit(3)), jen.Uint8().Call(jen.Lit(7)), jen.Id("encoded").Call(jen.Id("f"), jen.Id("ptr").Call(jen.Id("sample"+m.Go).Call()))),
		jen.Id("f").Dot("Add").Call(jen.Uint32().Call(jen.Lit(40).Op("*").Id(m.Go+"FragmentBytes")), jen.Uint64().Call(jen.Lit(4)), jen.Uint8().Call(jen.Lit(255)), jen.Index().Byte().Values()),
		jen.Id("f").Dot("Fuzz").Call(jen.Func().Params(jen.Id("t").Op("*").Qual(pkgTesting, "T"), jen.Id("size").Uint32(), jen.Id("seed").Uint64(), jen.Id("dups").Uint8(), jen.Id("raw").Index().Byte()).Block(
			jen.Id("rng").Op(":=").Qual(pkgRand, "New").Call(jen.Qual(pkgRand, "NewPCG").Call(jen.Id("seed"), jen.Lit(7))),
			jen.Comment("Keep a run short: at most 64 fragments."),
			jen.Id("n").Op(":=").Int().Call(jen.Id("size").Op("%").Uint32().Call(jen.Min(jen.Lit(64).Op("*").Id(m.Go+"FragmentBytes"), jen.Id(m.Go+"MaxBytes")).Op("+").Lit(1))),
			jen.Id("msg").Op(":=").Id("pattern").Call(jen.Id("n"), jen.Byte().Call(jen.Id("seed"))),
			jen.Var().Id("frags").Index().Id(m.Go),
			jen.Id("hdr").Op(":=").Id("sample"+m.Go).Call(),
			jen.Id("err").Op(":=").Id("Fragment"+m.Go).Call(jen.Op("&").Id("hdr"), jen.Id("msg"), jen.Func().Params(jen.Id("fr").Op("*").Id(m.Go)).Error().Block(
				jen.Id("c").Op(":=").Op("*").Id("fr"),
				jen.Id("c").Dot(dataField).Op("=").Qual(pkgBytes, "Clone").Call(jen.Id("fr").Dot(dataField)),
				jen.Id("frags").Op("=").Append(jen.Id("frags"), jen.Id("c")),
				jen.Return(jen.Nil()),
			)),
			jen.If(jen.Err().Op("!=").Nil()).Block(jen.Id("t").Dot("Fatalf").Call(jen.Lit("Fragment%s(%d bytes): %v"), jen.Lit(m.Go), jen.Id("n"), jen.Err())),
			jen.For(jen.Id("i").Op(":=").Range().Int().Call(jen.Id("dups"))).Block(
				jen.Id("frags").Op("=").Append(jen.Id("frags"), jen.Id("frags").Index(jen.Id("rng").Dot("IntN").Call(jen.Len(jen.Id("frags"))))),
				jen.Id("_").Op("=").Id("i"),
			),
			jen.Id("rng").Dot("Shuffle").Call(jen.Len(jen.Id("frags")), jen.Func().Params(jen.List(jen.Id("i"), jen.Id("j")).Int()).Block(
				jen.List(jen.Id("frags").Index(jen.Id("i")), jen.Id("frags").Index(jen.Id("j"))).Op("=").List(jen.Id("frags").Index(jen.Id("j")), jen.Id("frags").Index(jen.Id("i"))),
			)),
			jen.Id("r").Op(":=").Id("New"+r).Call(),
			jen.Id("done").Op(":=").Lit(0),
			jen.For(jen.List(jen.Id("i"), jen.Id("fr")).Op(":=").Range().Id("frags")).Block(
				jen.List(jen.Id("out"), jen.Err()).Op(":=").Id("r").Dot("Add").Call(jen.Qual(pkgTime, "Duration").Call(jen.Id("i")), jen.Op("&").Id("fr")),
				jen.If(jen.Err().Op("!=").Nil()).Block(jen.Id("t").Dot("Fatalf").Call(jen.Lit("Add(fragment %d of %d bytes): %v"), jen.Id("fr").Dot(m.index.Go), jen.Id("n"), jen.Err())),
				jen.If(jen.Id("out").Op("!=").Nil()).Block(
					jen.Id("done").Op("++"),
					jen.If(jen.Op("!").Qual(pkgBytes, "Equal").Call(jen.Id("out"), jen.Id("msg"))).Block(jen.Id("t").Dot("Fatalf").Call(jen.Lit("reassembled %d bytes differ from the %d sent"), jen.Len(jen.Id("out")), jen.Id("n"))),
				),
			),
			jen.If(jen.Id("done").Op("<").Lit(1)).Block(jen.Id("t").Dot("Fatalf").Call(jen.Lit("a %d-byte message in %d deliveries never completed"), jen.Id("n"), jen.Len(jen.Id("frags")))),
			jen.Comment("Duplicates after completion start the message again (a sender that\nlost the ack resends it all), so it may complete more than once, but\nnever with other bytes."),
			jen.Id("r").Dot("Expire").Call(jen.Id("r").Dot("Timeout").Op("+").Qual(pkgTime, "Duration").Call(jen.Len(jen.Id("frags")))),
			jen.If(jen.Id("r").Dot("Pending").Call().Op("!=").Lit(0).Op("||").Id("r").Dot("Buffered").Call().Op("!=").Lit(0)).Block(
				jen.Id("t").Dot("Fatalf").Call(jen.Lit("after Expire: %d pending, %d bytes held"), jen.Id("r").Dot("Pending").Call(), jen.Id("r").Dot("Buffered").Call()),
			),

			jen.Comment("Arbitrary fragments: cut raw into datagrams at its own length bytes."),
			jen.Id("r").Op("=").Id("New"+r).Call(),
			jen.For(jen.Id("now").Op(":=").Qual(pkgTime, "Duration").Call(jen.Lit(0)), jen.Len(jen.Id("raw")).Op(">").Lit(0), jen.Id("now").Op("+=").Qual(pkgTime, "Millisecond")).Block(
				jen.Id("k").Op(":=").Min(jen.Int().Call(jen.Id("raw").Index(jen.Lit(0))).Op("+").Id(m.Go+"Len"), jen.Len(jen.Id("raw"))),
				jen.Id("d").Op(":=").Id("raw").Index(jen.Empty(), jen.Id("k")),
				jen.Id("raw").Op("=").Id("raw").Index(jen.Id("k"), jen.Empty()),
				jen.Var().Id("fr").Id(m.Go),
				jen.If(jen.Id("fr").Dot("Decode").Call(jen.Id("d")).Op("!=").Nil()).Block(jen.Continue()),
				jen.List(jen.Id("out"), jen.Err()).Op(":=").Id("r").Dot("Add").Call(jen.Id("now"), jen.Op("&").Id("fr")),
				jen.If(jen.Err().Op("==").Nil().Op("&&").Id("out").Op("!=").Nil().Op("&&").Len(jen.Id("out")).Op("!=").Int().Call(jen.Id("fr").Dot(m.total.Go))).Block(
					jen.Id("t").Dot("Fatalf").Call(jen.Lit("reassembled %d bytes, the fragments said %d"), jen.Len(jen.Id("out")), jen.Id("fr").Dot(m.total.Go)),
				),
				jen.If(jen.Id("r").Dot("Buffered").Call().Op(">").Id("r").Dot("MaxBuffered").Op("||").Id("r").Dot("Pending").Call().Op(">").Id("r").Dot("MaxPending")).Block(
					jen.Id("t").Dot("Fatalf").Call(jen.Lit("limits passed: %d pending, %d bytes held"), jen.Id("r").Dot("Pending").Call(), jen.Id("r").Dot("Buffered").Call()),
				),
			),
		)),
	)
}

func (g *gen) genBench(f *jen.File) {
	for _, m := range g.msgs {
		f.Func().Id("BenchmarkEncode"+m.Go).Params(jen.Id("b").Op("*").Qual(pkgTesting, "B")).Block(
			jen.Id("m").Op(":=").Id("sample"+m.Go).Call(),
			jen.Id("buf").Op(":=").Make(jen.Index().Byte(), jen.Id("m").Dot("EncodedLen").Call()),
			jen.Id("b").Dot("SetBytes").Call(jen.Int64().Call(jen.Len(jen.Id("buf")))),
			jen.Id("b").Dot("ReportAllocs").Call(),
			jen.For(jen.Id("b").Dot("Loop").Call()).Block(
				jen.If(jen.List(jen.Id("_"), jen.Err()).Op(":=").Id("m").Dot("Encode").Call(jen.Id("buf")), jen.Err().Op("!=").Nil()).Block(jen.Id("b").Dot("Fatal").Call(jen.Err())),
			),
		)
		f.Func().Id("BenchmarkDecode"+m.Go).Params(jen.Id("b").Op("*").Qual(pkgTesting, "B")).Block(
			jen.Id("s").Op(":=").Id("sample"+m.Go).Call(),
			jen.Id("buf").Op(":=").Id("encoded").Call(jen.Id("b"), jen.Op("&").Id("s")),
			jen.Id("b").Dot("SetBytes").Call(jen.Int64().Call(jen.Len(jen.Id("buf")))),
			jen.Id("b").Dot("ReportAllocs").Call(),
			jen.Var().Id("m").Id(m.Go),
			jen.For(jen.Id("b").Dot("Loop").Call()).Block(
				jen.If(jen.Err().Op(":=").Id("m").Dot("Decode").Call(jen.Id("buf")), jen.Err().Op("!=").Nil()).Block(jen.Id("b").Dot("Fatal").Call(jen.Err())),
			),
		)
	}
	f.Comment("BenchmarkGopacketTCPDecode is the yardstick: gopacket's own TCP layer\ndecoding a typical segment (20-byte header, timestamp option, 100 bytes\nof data) with DecodeFromBytes, its allocation-free path.")
	f.Func().Id("BenchmarkGopacketTCPDecode").Params(jen.Id("b").Op("*").Qual(pkgTesting, "B")).Block(
		jen.Id("seg").Op(":=").Op("&").Qual(pkgLayers, "TCP").Values(jen.Dict{
			jen.Id("SrcPort"): jen.Lit(40000), jen.Id("DstPort"): jen.Lit(80), jen.Id("Seq"): jen.Lit(1000), jen.Id("Ack"): jen.Lit(2000),
			jen.Id("ACK"): jen.True(), jen.Id("PSH"): jen.True(), jen.Id("Window"): jen.Lit(65535),
			jen.Id("Options"): jen.Index().Qual(pkgLayers, "TCPOption").Values(
				jen.Values(jen.Dict{jen.Id("OptionType"): jen.Qual(pkgLayers, "TCPOptionKindNop")}),
				jen.Values(jen.Dict{jen.Id("OptionType"): jen.Qual(pkgLayers, "TCPOptionKindNop")}),
				jen.Values(jen.Dict{jen.Id("OptionType"): jen.Qual(pkgLayers, "TCPOptionKindTimestamps"), jen.Id("OptionLength"): jen.Lit(10), jen.Id("OptionData"): jen.Make(jen.Index().Byte(), jen.Lit(8))}),
			),
		}),
		jen.Id("buf").Op(":=").Qual(pkgGopacket, "NewSerializeBuffer").Call(),
		jen.If(jen.Err().Op(":=").Qual(pkgGopacket, "SerializeLayers").Call(jen.Id("buf"), jen.Qual(pkgGopacket, "SerializeOptions").Values(jen.Dict{jen.Id("FixLengths"): jen.True()}), jen.Id("seg"), jen.Qual(pkgGopacket, "Payload").Call(jen.Id("pattern").Call(jen.Lit(100), jen.Lit(1)))), jen.Err().Op("!=").Nil()).Block(
			jen.Id("b").Dot("Fatal").Call(jen.Err()),
		),
		jen.Id("data").Op(":=").Id("buf").Dot("Bytes").Call(),
		jen.Id("b").Dot("SetBytes").Call(jen.Int64().Call(jen.Len(jen.Id("data")))),
		jen.Id("b").Dot("ReportAllocs").Call(),
		jen.Var().Id("tcp").Qual(pkgLayers, "TCP"),
		jen.For(jen.Id("b").Dot("Loop").Call()).Block(
			jen.If(jen.Err().Op(":=").Id("tcp").Dot("DecodeFromBytes").Call(jen.Id("data"), jen.Qual(pkgGopacket, "NilDecodeFeedback")), jen.Err().Op("!=").Nil()).Block(jen.Id("b").Dot("Fatal").Call(jen.Err())),
		),
	)
}
