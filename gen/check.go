package gen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

// checkGo reads the generated Go back for the clashes a spec's names can
// cause and the emitters cannot all foresee: a spec name that becomes an
// identifier the generator declares too (a message err_bad_magic against
// the ErrBadMagic sentinel), and a codec package name that a local name
// hides (header.name w, where a function's w is the writer). Either would
// reach the user as a compile error in generated code; this says which
// spec name to change.
func checkGo(s *spec.Spec, files genfile.Files) error {
	type pkgKey struct{ dir, pkg string }
	decls := map[pkgKey]map[string]string{} // name -> first file
	var errs []string
	for _, name := range files.Names() {
		if !strings.HasSuffix(name, ".go") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, files[name], 0)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s does not parse: %v", name, err))
			continue
		}
		k := pkgKey{path.Dir(name), f.Name.Name}
		if decls[k] == nil {
			decls[k] = map[string]string{}
		}
		for _, id := range topLevel(f) {
			if first, dup := decls[k][id]; dup {
				errs = append(errs, fmt.Sprintf("%s and %s both declare %s: a name in the spec becomes an identifier the generated code has already; rename it", first, name, id))
				continue
			}
			decls[k][id] = name
		}
		imported := map[string]bool{}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			n := path.Base(p)
			if im.Name != nil {
				n = im.Name.Name
			}
			imported[n] = true
		}
		hidden := map[string]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok && id.Obj != nil && imported[id.Name] && !hidden[id.Name] {
				hidden[id.Name] = true
				fix := "rename the spec name that became " + id.Name
				if id.Name == s.Header.Name {
					fix = "give header.name another name"
				}
				errs = append(errs, fmt.Sprintf("%s declares %s, which hides the imported package %s; %s", name, id.Name, id.Name, fix))
			}
			return true
		})
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Strings(errs)
	return fmt.Errorf("spec %s: the generated Go would not compile:\n  %s", s.Name, strings.Join(errs, "\n  "))
}

// topLevel lists a file's package-level names; methods as Type.Method.
func topLevel(f *ast.File) []string {
	var out []string
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil || len(d.Recv.List) == 0 {
				if d.Name.Name != "init" && d.Name.Name != "_" {
					out = append(out, d.Name.Name)
				}
				continue
			}
			out = append(out, recvType(d.Recv.List[0].Type)+"."+d.Name.Name)
		case *ast.GenDecl:
			for _, sp := range d.Specs {
				switch sp := sp.(type) {
				case *ast.TypeSpec:
					out = append(out, sp.Name.Name)
				case *ast.ValueSpec:
					for _, n := range sp.Names {
						if n.Name != "_" {
							out = append(out, n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// recvType is a method receiver's type name.
func recvType(e ast.Expr) string {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.Ident:
			return t.Name
		default:
			return fmt.Sprintf("%T", e)
		}
	}
}

// p4Decl matches a top-level P4 declaration: typedef, const, header or
// struct, and the name it declares.
var p4Decl = regexp.MustCompile(`(?m)^(?:typedef\s+[^;]*?\s(\w+)\s*;|const\s+[\w<>]+\s+(\w+)\s*=|header\s+(\w+)\s*\{|struct\s+(\w+)\s*\{)`)

// checkP4 refuses a P4 program that declares a name twice at top level
// (the program includes headers.p4): an enum named role or ip, or an enum
// value like protocols_tcp, becomes a typedef or constant the templates
// declare too, which p4c rejects.
func checkP4(s *spec.Spec, files genfile.Files) error {
	first := map[string]string{}
	var errs []string
	for _, name := range files.Names() {
		if !strings.HasSuffix(name, ".p4") {
			continue
		}
		src := string(files[name])
		for _, m := range p4Decl.FindAllStringSubmatchIndex(src, -1) {
			var id string
			for g := 2; g < len(m); g += 2 {
				if m[g] >= 0 {
					id = src[m[g]:m[g+1]]
				}
			}
			at := fmt.Sprintf("%s:%d", name, strings.Count(src[:m[0]], "\n")+1)
			if prev, dup := first[id]; dup {
				errs = append(errs, fmt.Sprintf("%s and %s both declare %s: a spec name (an enum or its value, a message) becomes a name the P4 program has already; rename it", prev, at, id))
				continue
			}
			first[id] = at
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("spec %s: the generated P4 would not compile:\n  %s", s.Name, strings.Join(errs, "\n  "))
}
