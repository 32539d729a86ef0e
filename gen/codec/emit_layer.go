package codec

import (
	"fmt"

	"github.com/dave/jennifer/jen"
)

func (g *gen) genLayer(f *jen.File) {
	l, lt := g.layer, g.layerType
	gp := func(name string) *jen.Statement { return jen.Qual(pkgGopacket, name) }
	f.Add(docf("LayerTypeNumber is the gopacket layer type of %s. gopacket keeps\n1000-1999 for custom layers; the number is 1000 + UDPPort mod 1000, so that\npackages generated for specs on ports that differ mod 1000 can share a\nbinary. Two whose ports agree mod 1000 (7071 and 8071) cannot: gopacket\npanics on a number registered twice.", g.view))
	f.Const().Id("LayerTypeNumber").Op("=").Lit(g.layerNum)
	f.Add(docf("%s is %s's gopacket layer type. The package's init binds it to\nUDPPort with layers.RegisterUDPPortLayerType, so gopacket.NewPacket decodes\n%s inside UDP (by destination port, then source port).", lt, g.view, g.view))
	f.Var().Id(lt).Op("=").Add(gp("RegisterLayerType")).Call(jen.Id("LayerTypeNumber"), gp("LayerTypeMetadata").Values(jen.Dict{
		jen.Id("Name"):    jen.Lit(g.view),
		jen.Id("Decoder"): gp("DecodeFunc").Call(jen.Id("decode" + l)),
	}))
	f.Func().Id("init").Params().Block(
		jen.Qual(pkgLayers, "RegisterUDPPortLayerType").Call(jen.Qual(pkgLayers, "UDPPort").Call(jen.Id("UDPPort")), jen.Id(lt)),
	)
	f.Var().Defs(
		jen.Id("_").Add(gp("Layer")).Op("=").Parens(jen.Op("*").Id(l)).Parens(jen.Nil()),
		jen.Id("_").Add(gp("DecodingLayer")).Op("=").Parens(jen.Op("*").Id(l)).Parens(jen.Nil()),
		jen.Id("_").Add(gp("SerializableLayer")).Op("=").Parens(jen.Op("*").Id(l)).Parens(jen.Nil()),
	)
	f.Add(docf("%s is the %s header as a gopacket layer. Contents is the header;\nPayload is the message after it, which gopacket decodes as a Payload layer.\nDecode it with the message's struct form when the fields are needed.", l, g.view))
	f.Type().Id(l).Struct(
		jen.Qual(pkgLayers, "BaseLayer"),
		jen.Id(g.fieldsType),
		doc("Stage selects the message."),
		jen.Id(g.stageF.Go).Id(g.stage.Go),
	)
	rv := func() *jen.Statement { return jen.Id("l").Op("*").Id(l) }
	f.Add(docf("LayerType returns %s.", lt))
	f.Func().Params(rv()).Id("LayerType").Params().Add(gp("LayerType")).Block(jen.Return(jen.Id(lt)))
	f.Add(docf("CanDecode returns %s.", lt))
	f.Func().Params(rv()).Id("CanDecode").Params().Add(gp("LayerClass")).Block(jen.Return(jen.Id(lt)))
	f.Add(doc("NextLayerType returns gopacket.LayerTypePayload: the message body."))
	f.Func().Params(rv()).Id("NextLayerType").Params().Add(gp("LayerType")).Block(jen.Return(gp("LayerTypePayload")))

	f.Add(docf("DecodeFromBytes decodes the header in data, checking the constant\nfields, the stage and the stage's minimum length; short input calls\ndf.SetTruncated. Contents and Payload alias data."))
	f.Func().Params(rv()).Id("DecodeFromBytes").Params(jen.Id("data").Index().Byte(), jen.Id("df").Add(gp("DecodeFeedback"))).Error().Block(
		jen.If(jen.Len(jen.Id("data")).Op("<").Id("HeaderLen")).Block(
			jen.Id("df").Dot("SetTruncated").Call(),
			jen.Return(jen.Id("shortBuffer").Call(jen.Lit(g.s.Header.Name+" header"), jen.Id("HeaderLen"), jen.Len(jen.Id("data")))),
		),
		jen.Id("h").Op(":=").Id(g.view).Call(jen.Id("data")),
		jen.If(jen.Err().Op(":=").Id("h").Dot("Validate").Call(), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Err())),
		jen.Id("stage").Op(":=").Id("h").Dot(g.stageF.Go).Call(),
		jen.If(jen.List(jen.Id("need"), jen.Id("_")).Op(":=").Id("MinLen").Call(jen.Id("stage")), jen.Len(jen.Id("data")).Op("<").Id("need")).Block(
			jen.Id("df").Dot("SetTruncated").Call(),
			jen.Return(jen.Id("shortBuffer").Call(jen.Id("stage").Dot("String").Call(), jen.Id("need"), jen.Len(jen.Id("data")))),
		),
		jen.Id("l").Dot(g.fieldsType).Op("=").Id("h").Dot("Fields").Call(),
		jen.Id("l").Dot(g.stageF.Go).Op("=").Id("stage"),
		jen.Id("l").Dot("BaseLayer").Op("=").Qual(pkgLayers, "BaseLayer").Values(jen.Dict{
			jen.Id("Contents"): jen.Id("data").Index(jen.Empty(), jen.Id("HeaderLen"), jen.Id("HeaderLen")),
			jen.Id("Payload"):  jen.Id("data").Index(jen.Id("HeaderLen"), jen.Empty()),
		}),
		jen.Return(jen.Nil()),
	)

	f.Add(docf("SerializeTo prepends the header to b, which already holds the message\nbody. %s has no length field of its own (UDP's covers it), so FixLengths\nhas nothing to rewrite; with it the layer instead refuses a body shorter\nthan its stage's fixed payload, which a receiver would drop. Without it\nthe body is not checked, so tests can build malformed packets.", g.view))
	f.Func().Params(rv()).Id("SerializeTo").Params(jen.Id("b").Add(gp("SerializeBuffer")), jen.Id("opts").Add(gp("SerializeOptions"))).Error().Block(
		jen.List(jen.Id("need"), jen.Id("ok")).Op(":=").Id("MinLen").Call(jen.Id("l").Dot(g.stageF.Go)),
		jen.If(jen.Op("!").Id("ok")).Block(jen.Return(errf("ErrUnknownStage", fmt.Sprintf("%s %%d", g.stageF.Name), jen.Id("l").Dot(g.stageF.Go)))),
		jen.Do(func(st *jen.Statement) {
			if g.headerChecked() {
				st.If(jen.Err().Op(":=").Id("l").Dot(g.fieldsType).Dot("check").Call(), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Err()))
			}
		}),
		jen.If(jen.Id("body").Op(":=").Len(jen.Id("b").Dot("Bytes").Call()), jen.Id("opts").Dot("FixLengths").Op("&&").Id("HeaderLen").Op("+").Id("body").Op("<").Id("need")).Block(
			jen.Return(errf("ErrBadLength", "a %v body of %d bytes is shorter than its %d-byte fixed payload", jen.Id("l").Dot(g.stageF.Go), jen.Id("body"), jen.Id("need").Op("-").Id("HeaderLen"))),
		),
		jen.List(jen.Id("h"), jen.Err()).Op(":=").Id("b").Dot("PrependBytes").Call(jen.Id("HeaderLen")),
		jen.If(jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Err())),
		jen.Id(g.view).Call(jen.Id("h")).Dot("Encode").Call(jen.Op("&").Id("l").Dot(g.fieldsType), jen.Id("l").Dot(g.stageF.Go)),
		jen.Return(jen.Nil()),
	)

	f.Func().Id("decode"+l).Params(jen.Id("data").Index().Byte(), jen.Id("p").Add(gp("PacketBuilder"))).Error().Block(
		jen.Id("l").Op(":=").Op("&").Id(l).Values(),
		jen.If(jen.Err().Op(":=").Id("l").Dot("DecodeFromBytes").Call(jen.Id("data"), jen.Id("p")), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Err())),
		jen.Id("p").Dot("AddLayer").Call(jen.Id("l")),
		jen.Return(jen.Id("p").Dot("NextDecoder").Call(jen.Id("l").Dot("NextLayerType").Call())),
	)
}
