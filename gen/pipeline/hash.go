package pipeline

import (
	"fmt"

	"github.com/dave/jennifer/jen"
)

// emitHash writes one table-driven CRC per directory level, the index of
// every level for a key, and the exported Index.
func (m *model) emitHash(f *jen.File) {
	for i, c := range m.levels {
		typ, size := crcType(c.Width)
		digits := (c.Width + 3) / 4
		table := fmt.Sprintf("crc%dTable", i)
		fn := fmt.Sprintf("crc%d", i)
		t := crcTable(c)
		vals := make([]jen.Code, len(t))
		for j, v := range t {
			vals[j] = hex(v, digits)
		}
		order := "MSB first"
		if c.Reversed {
			order = "LSB first (reflected input and output)"
		}
		f.Commentf("%s is the byte table of level %d's CRC %s: width %d, poly %#x, %s, init %#x, xor_out %#x.",
			table, i, c.Name, c.Width, c.Poly, order, c.Init, c.XorOut)
		f.Var().Id(table).Op("=").Index(jen.Lit(256)).Id(typ).ValuesFunc(func(g *jen.Group) {
			for j, v := range vals {
				if j%8 == 0 {
					g.Line().Add(v)
				} else {
					g.Add(v)
				}
			}
			g.Line()
		})
		f.Line()

		var step jen.Code
		mask := uint64(1)<<(uint(c.Width)-1)<<1 - 1
		switch {
		case c.Reversed:
			step = jen.Id("crc").Op("=").Id("crc").Op(">>").Lit(8).Op("^").Id(table).Index(jen.Id("byte").Call(jen.Id("crc")).Op("^").Id("b"))
		default:
			next := jen.Id("crc").Op("<<").Lit(8).Op("^").Id(table).Index(jen.Id("byte").Call(jen.Id("crc").Op(">>").Lit(c.Width - 8)).Op("^").Id("b"))
			if c.Width == 8 {
				// Shifting a uint8 by 8 leaves nothing: the table is all.
				next = jen.Id(table).Index(jen.Id("crc").Op("^").Id("b"))
			}
			if c.Width != size {
				next = jen.Parens(next).Op("&").Add(hex(mask, digits))
			}
			step = jen.Id("crc").Op("=").Add(next)
		}
		ret := jen.Id("crc")
		if c.XorOut != 0 {
			ret = jen.Id("crc").Op("^").Add(hex(c.XorOut&mask, digits))
		}
		f.Commentf("%s is level %d's CRC of a directory key; it equals spec.CRC.Sum.", fn, i)
		f.Func().Id(fn).Params(jen.Id("k").Op("*").Index(jen.Lit(6)).Byte()).Id(typ).Block(
			jen.Id("crc").Op(":=").Id(typ).Call(hex(crcInit(c), digits)),
			jen.For(jen.List(jen.Id("_"), jen.Id("b")).Op(":=").Range().Id("k")).Block(step),
			jen.Return(ret),
		)
		f.Line()
	}

	f.Comment("levelIndexes returns the slot of key k on every level: the level's CRC")
	f.Comment("truncated to IndexBits, as the switch's Hash externs compute it.")
	f.Func().Id("levelIndexes").Params(jen.Id("k").Op("*").Index(jen.Lit(6)).Byte()).Index(jen.Id("Levels")).Uint32().Block(
		jen.Return(jen.Index(jen.Id("Levels")).Uint32().ValuesFunc(func(g *jen.Group) {
			for i := range m.levels {
				g.Line().Uint32().Call(jen.Id(fmt.Sprintf("crc%d", i)).Call(jen.Id("k"))).Op("&").Id("indexMask")
			}
			g.Line()
		})),
	)
	f.Line()

	f.Comment("levelCRC is the full-width CRC of level on key k, before truncation to")
	f.Comment("IndexBits: what the parity tests compare with spec.CRC.Sum.")
	f.Func().Id("levelCRC").Params(jen.Id("level").Int(), jen.Id("k").Op("*").Index(jen.Lit(6)).Byte()).Uint64().Block(
		jen.Switch(jen.Id("level")).BlockFunc(func(g *jen.Group) {
			for i := range m.levels {
				g.Case(jen.Lit(i)).Return(jen.Uint64().Call(jen.Id(fmt.Sprintf("crc%d", i)).Call(jen.Id("k"))))
			}
		}),
		jen.Return(jen.Lit(0)),
	)
	f.Line()

	f.Comment("keyBytes is what the directory hashes: the client's IPv4 address then")
	f.Comment("its port, big-endian.")
	f.Func().Id("keyBytes").Params(jen.Id("ip").Uint32(), jen.Id("port").Uint16()).Index(jen.Lit(6)).Byte().Block(
		jen.Return(jen.Index(jen.Lit(6)).Byte().Values(
			jen.Byte().Call(jen.Id("ip").Op(">>").Lit(24)), jen.Byte().Call(jen.Id("ip").Op(">>").Lit(16)),
			jen.Byte().Call(jen.Id("ip").Op(">>").Lit(8)), jen.Byte().Call(jen.Id("ip")),
			jen.Byte().Call(jen.Id("port").Op(">>").Lit(8)), jen.Byte().Call(jen.Id("port")),
		)),
	)
	f.Line()

	f.Comment("Index returns the slot of the client key (ip, port) on a directory level.")
	f.Func().Id("Index").Params(jen.Id("level").Int(), jen.Id("ip").Index(jen.Lit(4)).Byte(), jen.Id("port").Uint16()).Params(jen.Uint32(), jen.Error()).Block(
		jen.If(jen.Id("level").Op("<").Lit(0).Op("||").Id("level").Op(">=").Id("Levels")).Block(
			jen.Return(jen.Lit(0), jen.Qual("fmt", "Errorf").Call(jen.Lit("index on level %d: %w (levels are 0..%d)"), jen.Id("level"), jen.Id("ErrOutOfRange"), jen.Id("Levels").Op("-").Lit(1))),
		),
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Qual(binaryPkg, "BigEndian").Dot("Uint32").Call(jen.Id("ip").Index(jen.Op(":"))), jen.Id("port")),
		jen.Return(jen.Id("levelIndexes").Call(jen.Op("&").Id("k")).Index(jen.Id("level")), jen.Nil()),
	)
}
