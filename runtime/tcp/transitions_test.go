package tcp

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStateChokePoint checks that setState is the only code that changes
// a Conn's state: no other assignment to a state field, and no composite
// literal that sets one, in the package's non-test sources.
func TestStateChokePoint(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			inSetState := fn.Name.Name == "setState" && fn.Recv != nil
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				var targets []ast.Expr
				switch n := n.(type) {
				case *ast.AssignStmt:
					targets = n.Lhs
				case *ast.IncDecStmt:
					targets = []ast.Expr{n.X}
				case *ast.KeyValueExpr:
					if id, ok := n.Key.(*ast.Ident); ok && id.Name == "state" {
						t.Errorf("%v: a composite literal sets state; use setState", fset.Position(n.Pos()))
					}
				}
				for _, x := range targets {
					if sel, ok := x.(*ast.SelectorExpr); ok && sel.Sel.Name == "state" {
						if inSetState {
							found++
						} else {
							t.Errorf("%v: %s assigns .state; every transition must go through setState", fset.Position(x.Pos()), fn.Name.Name)
						}
					}
				}
				return true
			})
		}
	}
	if found != 1 {
		t.Errorf("setState assigns .state %d times, want 1", found)
	}
}

// TestTransitions checks the states each end reports entering, through a
// handshake and a close, and that Transitions forgets what it returned.
func TestTransitions(t *testing.T) {
	set := func(states ...State) StateSet {
		var s StateSet
		for _, st := range states {
			s |= 1 << st
		}
		return s
	}
	now := Time(time.Second)
	a := Dial(Config{DelayedACK: -1}, ID{Local: addrA, Remote: addrB}, 1000, now)
	syn := only(t, "SYN", emitted(a, now))
	b, err := Accept(Config{DelayedACK: -1}, ID{Local: addrB, Remote: addrA}, &syn, 5000, now)
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, wantA, wantB StateSet) {
		t.Helper()
		if got := a.Transitions(); got != wantA {
			t.Errorf("after %s: A.Transitions() = %v, want %v", step, got, wantA)
		}
		if got := b.Transitions(); got != wantB {
			t.Errorf("after %s: B.Transitions() = %v, want %v", step, got, wantB)
		}
	}
	check("Dial and Accept", set(StateSynSent), set(StateSynReceived))
	check("nothing", 0, 0)
	feed(a, now, emitted(b, now)) // SYN-ACK
	check("the SYN-ACK", set(StateEstablished), 0)
	feed(b, now, emitted(a, now)) // ACK
	check("the handshake's ACK", 0, set(StateEstablished))

	a.Close()
	check("A's Close", set(StateFinWait1), 0)
	feed(b, now, emitted(a, now)) // FIN
	check("A's FIN", 0, set(StateCloseWait))
	feed(a, now, emitted(b, now)) // ACK of the FIN
	check("the ACK of A's FIN", set(StateFinWait2), 0)
	b.Close()
	check("B's Close", 0, set(StateLastAck))
	feed(a, now, emitted(b, now)) // FIN
	check("B's FIN", set(StateTimeWait), 0)
	feed(b, now, emitted(a, now)) // ACK of the FIN
	check("the ACK of B's FIN", 0, set(StateClosed))
	now += a.cfg.TimeWait
	emitted(a, now)
	check("2MSL", set(StateClosed), 0)
}

// TestTransitionsInOneInput: a segment that completes the handshake and
// carries the peer's FIN moves B through two states in one Input; both
// are reported, and a simultaneous open reports SYN-RECEIVED on the way.
func TestTransitionsInOneInput(t *testing.T) {
	now := Time(time.Second)
	a := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1000, now)
	syn := only(t, "SYN", emitted(a, now))
	b, err := Accept(Config{}, ID{Local: addrB, Remote: addrA}, &syn, 5000, now)
	if err != nil {
		t.Fatal(err)
	}
	b.Transitions()
	synack := only(t, "SYN-ACK", emitted(b, now))
	fin := Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: 1001, Ack: synack.Seq + 1, Flags: FlagACK | FlagFIN, Window: 1000}
	b.Input(now, &fin)
	want := StateSet(1<<StateEstablished | 1<<StateCloseWait)
	if got := b.Transitions(); got != want {
		t.Errorf("ACK+FIN in SYN-RECEIVED: B.Transitions() = %v, want %v", got, want)
	}

	// Simultaneous open: both dial, each takes the other's SYN.
	x := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1000, now)
	y := Dial(Config{}, ID{Local: addrB, Remote: addrA}, 7000, now)
	x.Transitions()
	y.Transitions()
	sx, sy := emitted(x, now), emitted(y, now)
	feed(x, now, sy)
	feed(y, now, sx)
	pingPong(x, y, now)
	want = StateSet(1<<StateSynReceived | 1<<StateEstablished)
	if gx, gy := x.Transitions(), y.Transitions(); gx != want || gy != want {
		t.Errorf("simultaneous open: Transitions() = %v and %v, want %v", gx, gy, want)
	}
}
