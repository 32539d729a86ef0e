package codec

import "github.com/dave/jennifer/jen"

func (g *gen) genTests(f *jen.File) {}
func (g *gen) genFuzz(f *jen.File)  {}
func (g *gen) genBench(f *jen.File) {}
