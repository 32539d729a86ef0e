package codec

import (
	"fmt"
	"github.com/capygen/capygen/spec"
	"time"

	"github.com/dave/jennifer/jen"
)

// duration renders d as a constant expression in its largest exact unit.
func duration(d time.Duration) *jen.Statement {
	units := []struct {
		d    time.Duration
		name string
	}{{time.Hour, "Hour"}, {time.Minute, "Minute"}, {time.Second, "Second"}, {time.Millisecond, "Millisecond"}, {time.Microsecond, "Microsecond"}}
	for _, u := range units {
		if d%u.d == 0 {
			return jen.Lit(int(d/u.d)).Op("*").Qual(pkgTime, u.name)
		}
	}
	return jen.Qual(pkgTime, "Duration").Call(jen.Lit(int64(d)))
}

func (g *gen) genFragment(f *jen.File) {
	for _, m := range g.fragmented {
		g.genFragmentOf(f, m)
	}
}

func (g *gen) genFragmentOf(f *jen.File, m *message) {
	fr := m.Fragmentation
	fb, maxB, maxP, to := m.Go+"FragmentBytes", m.Go+"MaxBytes", m.Go+"MaxPending", m.Go+"Timeout"
	tot, idx, more := m.total.Go, m.index.Go, m.more.Go
	f.Add(docf("Fragmentation limits of %s, from the spec.", m.Name))
	f.Const().Defs(
		docf("%s is the most bytes of the whole message one fragment carries:\nMTU - 20 (IPv4) - 8 (UDP) - %sLen.", fb, m.Go),
		jen.Id(fb).Op("=").Lit(fr.FragmentBytes),
		docf("%s caps the %s of one message.", maxB, m.total.Name),
		jen.Id(maxB).Op("=").Lit(fr.MaxBytes),
		docf("%s caps how many messages may be in reassembly at once.", maxP),
		jen.Id(maxP).Op("=").Lit(fr.MaxPending),
		docf("%s drops a message still incomplete this long after its first\nfragment arrived.", to),
		jen.Id(to).Op("=").Add(duration(fr.Timeout)),
	)

	f.Add(docf("%sFragments returns how many fragments a message of n bytes takes (an\nempty message still takes one).", m.Go))
	f.Func().Id(m.Go+"Fragments").Params(jen.Id("n").Int()).Int().Block(
		jen.If(jen.Id("n").Op("<=").Lit(0)).Block(jen.Return(jen.Lit(1))),
		jen.Return(jen.Parens(jen.Id("n").Op("+").Id(fb).Op("-").Lit(1)).Op("/").Id(fb)),
	)

	f.Add(docf("Fragment%[1]s cuts msg into fragments and calls fn with each in order.\nm supplies the other fields; for each fragment Fragment%[1]s sets its\n%[2]s, %[3]s, %[4]s and %[5]s (aliasing msg) and passes m itself, so\nnothing is allocated. It stops at fn's first error and returns it.", m.Go, tot, idx, more, dataField))
	f.Func().Id("Fragment"+m.Go).Params(jen.Id("m").Op("*").Id(m.Go), jen.Id("msg").Index().Byte(), jen.Id("fn").Func().Params(jen.Id("frag").Op("*").Id(m.Go)).Error()).Error().Block(
		jen.If(jen.Len(jen.Id("msg")).Op(">").Id(maxB)).Block(
			jen.Return(errf("ErrBadLength", fmt.Sprintf("a %%d-byte %s is over the %%d-byte cap", m.Name), jen.Len(jen.Id("msg")), jen.Id(maxB))),
		),
		jen.Id("n").Op(":=").Id(m.Go+"Fragments").Call(jen.Len(jen.Id("msg"))),
		jen.Id("m").Dot(tot).Op("=").Id(uintType(m.total.Bits)).Call(jen.Len(jen.Id("msg"))),
		jen.For(jen.Id("i").Op(":=").Range().Id("n")).Block(
			jen.Id("lo").Op(":=").Id("i").Op("*").Id(fb),
			jen.Id("hi").Op(":=").Min(jen.Id("lo").Op("+").Id(fb), jen.Len(jen.Id("msg"))),
			jen.Id("m").Dot(idx).Op("=").Id(uintType(m.index.Bits)).Call(jen.Id("i")),
			jen.Id("m").Dot(more).Op("=").Id("i").Op("<").Id("n").Op("-").Lit(1),
			jen.Id("m").Dot(dataField).Op("=").Id("msg").Index(jen.Id("lo"), jen.Id("hi"), jen.Id("hi")),
			jen.If(jen.Err().Op(":=").Id("fn").Call(jen.Id("m")), jen.Err().Op("!=").Nil()).Block(jen.Return(jen.Err())),
		),
		jen.Return(jen.Nil()),
	)

	r := m.Go + "Reassembler"
	part := spec.GoUnexported(m.Go) + "Partial"
	f.Add(docf(`%[1]s puts fragmented %[2]s messages back together with bounded
memory. Fragments may come in any order; a fragment received twice with the
same bytes is ignored, with other bytes it is refused (the first copy wins).
Messages are keyed by ReassemblyKey.

Limits:
  - MaxBytes caps one message's %[3]s;
  - MaxPending caps the messages in progress and MaxBuffered the bytes they
    hold together. A fragment that would start a message over either limit
    is refused with ErrReassemblyFull, after expiring stale messages.
    Nothing in progress is evicted, so a burst of bogus first fragments
    cannot destroy a transfer under way; the refused sender retries.
  - Timeout drops a message still incomplete that long after its first
    fragment. Time is passed in (now, on any monotonic clock); the
    reassembler never reads a clock.

The zero value refuses everything; use New%[1]s. It is not safe for
concurrent use.`, r, m.Name, m.total.Name))
	f.Type().Id(r).Struct(
		jen.Id("MaxBytes").Int(),
		jen.Id("MaxPending").Int(),
		jen.Id("MaxBuffered").Int(),
		jen.Id("Timeout").Qual(pkgTime, "Duration"),
		jen.Comment("Alloc, when set, gives the buffer of a whole message of n bytes (a"),
		jen.Comment("caller that reuses buffers sets it); nil makes a new one."),
		jen.Id("Alloc").Func().Params(jen.Id("n").Int()).Index().Byte(),
		jen.Line(),
		jen.Id("pending").Map(jen.Id("ReassemblyKey")).Op("*").Id(part),
		jen.Id("buffered").Int(),
	)
	f.Add(docf("%s is one message in reassembly.", part))
	f.Type().Id(part).Struct(
		jen.Id("start").Qual(pkgTime, "Duration"),
		jen.Id("total").Int(),
		jen.Id("frags").Int(),
		jen.Id("got").Int(),
		jen.Id("seen").Index().Uint64().Comment("a bit per fragment index"),
		jen.Id("buf").Index().Byte(),
	)
	f.Add(docf("New%s returns a reassembler with the spec's limits; MaxBuffered is\nset to MaxBytes.", r))
	f.Func().Id("New" + r).Params().Op("*").Id(r).Block(
		jen.Return(jen.Op("&").Id(r).Values(jen.Dict{
			jen.Id("MaxBytes"):    jen.Id(maxB),
			jen.Id("MaxPending"):  jen.Id(maxP),
			jen.Id("MaxBuffered"): jen.Id(maxB),
			jen.Id("Timeout"):     jen.Id(to),
			jen.Id("pending"):     jen.Map(jen.Id("ReassemblyKey")).Op("*").Id(part).Values(),
		})),
	)
	rv := func() *jen.Statement { return jen.Id("r").Op("*").Id(r) }
	f.Add(doc("alloc is an n-byte buffer for a whole message, from Alloc when set."))
	f.Func().Params(rv()).Id("alloc").Params(jen.Id("n").Int()).Index().Byte().Block(
		jen.If(jen.Id("r").Dot("Alloc").Op("!=").Nil()).Block(
			jen.If(jen.Id("b").Op(":=").Id("r").Dot("Alloc").Call(jen.Id("n")), jen.Cap(jen.Id("b")).Op(">=").Id("n")).Block(
				jen.Return(jen.Id("b").Index(jen.Empty(), jen.Id("n"))),
			),
		),
		jen.Return(jen.Make(jen.Index().Byte(), jen.Id("n"))),
	)
	f.Add(doc("Pending returns how many messages are in reassembly."))
	f.Func().Params(rv()).Id("Pending").Params().Int().Block(jen.Return(jen.Len(jen.Id("r").Dot("pending"))))
	f.Add(doc("Buffered returns how many bytes the messages in reassembly hold."))
	f.Func().Params(rv()).Id("Buffered").Params().Int().Block(jen.Return(jen.Id("r").Dot("buffered")))

	f.Add(docf(`Add takes the fragment m, received at now. It returns the whole message
when m completes one (a slice the caller owns, from Alloc when set,
non-nil even when empty), and nil while fragments are missing or when m repeats one already
held. A fragment whose %[1]s, index, size or %[2]s flag contradicts its
message's length is refused with ErrBadLength; one that contradicts a
fragment already held with ErrFragmentConflict. A refused fragment leaves
the messages in progress as they were (stale ones may have expired).
m.%[3]s is copied, not kept.`, m.total.Name, m.more.Name, dataField))
	f.Func().Params(rv()).Id("Add").Params(jen.Id("now").Qual(pkgTime, "Duration"), jen.Id("m").Op("*").Id(m.Go)).Params(jen.Index().Byte(), jen.Error()).Block(
		jen.Id("total").Op(":=").Int().Call(jen.Id("m").Dot(tot)),
		jen.If(jen.Id("total").Op(">").Id("r").Dot("MaxBytes")).Block(
			jen.Return(jen.Nil(), errf("ErrBadLength", fmt.Sprintf("%s %s %%d is over the %%d-byte cap", m.Name, m.total.Name), jen.Id("total"), jen.Id("r").Dot("MaxBytes"))),
		),
		jen.Id("n").Op(":=").Id(m.Go+"Fragments").Call(jen.Id("total")),
		jen.Id("i").Op(":=").Int().Call(jen.Id("m").Dot(idx)),
		jen.If(jen.Id("i").Op(">=").Id("n")).Block(
			jen.Return(jen.Nil(), errf("ErrBadLength", fmt.Sprintf("%s fragment %%d of a %%d-byte message, which has %%d fragments", m.Name), jen.Id("i"), jen.Id("total"), jen.Id("n"))),
		),
		jen.Id("size").Op(":=").Id(fb),
		jen.If(jen.Id("i").Op("==").Id("n").Op("-").Lit(1)).Block(jen.Id("size").Op("=").Id("total").Op("-").Id("i").Op("*").Id(fb)),
		jen.If(jen.Len(jen.Id("m").Dot(dataField)).Op("!=").Id("size")).Block(
			jen.Return(jen.Nil(), errf("ErrBadLength", fmt.Sprintf("%s fragment %%d carries %%d bytes, want %%d of a %%d-byte message", m.Name), jen.Id("i"), jen.Len(jen.Id("m").Dot(dataField)), jen.Id("size"), jen.Id("total"))),
		),
		jen.If(jen.Id("m").Dot(more).Op("!=").Parens(jen.Id("i").Op("<").Id("n").Op("-").Lit(1))).Block(
			jen.Return(jen.Nil(), errf("ErrBadLength", fmt.Sprintf("%s fragment %%d of %%d has %s=%%v", m.Name, m.more.Name), jen.Id("i"), jen.Id("n"), jen.Id("m").Dot(more))),
		),
		jen.Id("key").Op(":=").Id("m").Dot("ReassemblyKey").Call(),
		jen.Id("p").Op(":=").Id("r").Dot("pending").Index(jen.Id("key")),
		jen.If(jen.Id("p").Op("!=").Nil().Op("&&").Id("now").Op("-").Id("p").Dot("start").Op(">=").Id("r").Dot("Timeout")).Block(
			jen.Id("r").Dot("drop").Call(jen.Id("key"), jen.Id("p")),
			jen.Id("p").Op("=").Nil(),
		),
		jen.If(jen.Id("p").Op("!=").Nil().Op("&&").Id("p").Dot("total").Op("!=").Id("total")).Block(
			jen.Return(jen.Nil(), errf("ErrFragmentConflict", fmt.Sprintf("%s fragment %%d says %s %%d, the message in progress has %%d", m.Name, m.total.Name), jen.Id("i"), jen.Id("total"), jen.Id("p").Dot("total"))),
		),
		jen.If(jen.Id("p").Op("==").Nil()).Block(
			jen.If(jen.Id("n").Op("==").Lit(1)).Block(
				doc("A single fragment is a whole message: nothing to hold."),
				jen.Id("out").Op(":=").Id("r").Dot("alloc").Call(jen.Id("total")),
				jen.Copy(jen.Id("out"), jen.Id("m").Dot(dataField)),
				jen.Return(jen.Id("out"), jen.Nil()),
			),
			jen.If(jen.Len(jen.Id("r").Dot("pending")).Op(">=").Id("r").Dot("MaxPending").Op("||").Id("r").Dot("buffered").Op("+").Id("total").Op(">").Id("r").Dot("MaxBuffered")).Block(
				jen.Id("r").Dot("Expire").Call(jen.Id("now")),
			),
			jen.If(jen.Len(jen.Id("r").Dot("pending")).Op(">=").Id("r").Dot("MaxPending")).Block(
				jen.Return(jen.Nil(), errf("ErrReassemblyFull", fmt.Sprintf("%%d %s messages in progress, the limit", m.Name), jen.Len(jen.Id("r").Dot("pending")))),
			),
			jen.If(jen.Id("r").Dot("buffered").Op("+").Id("total").Op(">").Id("r").Dot("MaxBuffered")).Block(
				jen.Return(jen.Nil(), errf("ErrReassemblyFull", fmt.Sprintf("%%d bytes of %s in progress; %%d more would pass the %%d-byte limit", m.Name), jen.Id("r").Dot("buffered"), jen.Id("total"), jen.Id("r").Dot("MaxBuffered"))),
			),
			jen.If(jen.Id("r").Dot("pending").Op("==").Nil()).Block(
				jen.Id("r").Dot("pending").Op("=").Map(jen.Id("ReassemblyKey")).Op("*").Id(part).Values(),
			),
			jen.Id("p").Op("=").Op("&").Id(part).Values(jen.Dict{
				jen.Id("start"): jen.Id("now"),
				jen.Id("total"): jen.Id("total"),
				jen.Id("frags"): jen.Id("n"),
				jen.Id("seen"):  jen.Make(jen.Index().Uint64(), jen.Parens(jen.Id("n").Op("+").Lit(63)).Op("/").Lit(64)),
				jen.Id("buf"):   jen.Id("r").Dot("alloc").Call(jen.Id("total")),
			}),
			jen.Id("r").Dot("pending").Index(jen.Id("key")).Op("=").Id("p"),
			jen.Id("r").Dot("buffered").Op("+=").Id("total"),
		),
		jen.Id("lo").Op(":=").Id("i").Op("*").Id(fb),
		jen.Id("bit").Op(":=").Uint64().Call(jen.Lit(1)).Op("<<").Parens(jen.Id("i").Op("%").Lit(64)),
		jen.If(jen.Id("p").Dot("seen").Index(jen.Id("i").Op("/").Lit(64)).Op("&").Id("bit").Op("!=").Lit(0)).Block(
			jen.If(jen.Op("!").Qual(pkgBytes, "Equal").Call(jen.Id("p").Dot("buf").Index(jen.Id("lo"), jen.Id("lo").Op("+").Id("size")), jen.Id("m").Dot(dataField))).Block(
				jen.Return(jen.Nil(), errf("ErrFragmentConflict", fmt.Sprintf("%s fragment %%d came twice with different bytes", m.Name), jen.Id("i"))),
			),
			jen.Return(jen.Nil(), jen.Nil()),
		),
		jen.Id("p").Dot("seen").Index(jen.Id("i").Op("/").Lit(64)).Op("|=").Id("bit"),
		jen.Copy(jen.Id("p").Dot("buf").Index(jen.Id("lo"), jen.Empty()), jen.Id("m").Dot(dataField)),
		jen.Id("p").Dot("got").Op("++"),
		jen.If(jen.Id("p").Dot("got").Op("<").Id("p").Dot("frags")).Block(jen.Return(jen.Nil(), jen.Nil())),
		jen.Id("r").Dot("drop").Call(jen.Id("key"), jen.Id("p")),
		jen.Return(jen.Id("p").Dot("buf"), jen.Nil()),
	)

	f.Add(doc("Expire drops every message whose first fragment arrived Timeout or more\nbefore now, and returns how many it dropped."))
	f.Func().Params(rv()).Id("Expire").Params(jen.Id("now").Qual(pkgTime, "Duration")).Int().Block(
		jen.Id("n").Op(":=").Lit(0),
		jen.For(jen.List(jen.Id("key"), jen.Id("p")).Op(":=").Range().Id("r").Dot("pending")).Block(
			jen.If(jen.Id("now").Op("-").Id("p").Dot("start").Op(">=").Id("r").Dot("Timeout")).Block(
				jen.Id("r").Dot("drop").Call(jen.Id("key"), jen.Id("p")),
				jen.Id("n").Op("++"),
			),
		),
		jen.Return(jen.Id("n")),
	)
	f.Func().Params(rv()).Id("drop").Params(jen.Id("key").Id("ReassemblyKey"), jen.Id("p").Op("*").Id(part)).Block(
		jen.Delete(jen.Id("r").Dot("pending"), jen.Id("key")),
		jen.Id("r").Dot("buffered").Op("-=").Id("p").Dot("total"),
	)
}
