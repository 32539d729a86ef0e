package p4rt

import (
	"strings"
	"testing"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"

	p4 "github.com/capygen/capygen/generated/p4"
)

// Every table of the generated p4info is bound: the exact-match ones and
// the keyless ones with their const default action.
func TestBindServesEveryTable(t *testing.T) {
	info, err := p4.P4Info()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bind(info)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.tableOrder) != len(info.Tables) {
		t.Fatalf("bound %d tables, the p4info has %d", len(b.tableOrder), len(info.Tables))
	}
	for i, tb := range info.Tables {
		got := b.tables[b.tableOrder[i]]
		if got.id != tb.Preamble.Id || got.keyless != (len(tb.MatchFields) == 0) {
			t.Errorf("table %d bound as %+v, want %s (keyless %t)", i, got, tb.Preamble.Name, len(tb.MatchFields) == 0)
		}
		if got.keyless && got.miss != tb.ConstDefaultActionId {
			t.Errorf("%s: default action %d, want the const one %d", tb.Preamble.Name, got.miss, tb.ConstDefaultActionId)
		}
	}
}

// A table the pipeline model does not have fails bind, named.
func TestBindRefusesAnUnknownTable(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(info *p4configv1.P4Info, keyless *p4configv1.Table)
		want string
	}{
		{"match field", func(_ *p4configv1.P4Info, k *p4configv1.Table) {
			k.MatchFields = []*p4configv1.MatchField{{Id: 1, Name: "f", Bitwidth: 8}}
		}, "is not one the pipeline model has"},
		{"an entry action", func(_ *p4configv1.P4Info, k *p4configv1.Table) {
			k.ActionRefs = append(k.ActionRefs, &p4configv1.ActionRef{Id: k.ConstDefaultActionId})
		}, "is not one the pipeline model has"},
		{"no const default", func(_ *p4configv1.P4Info, k *p4configv1.Table) { k.ConstDefaultActionId = 0 }, "is not one the pipeline model has"},
		{"default with params", func(info *p4configv1.P4Info, k *p4configv1.Table) {
			for _, a := range info.Actions {
				if a.Preamble.Id == k.ConstDefaultActionId {
					a.Params = []*p4configv1.Action_Param{{Id: 1, Name: "x", Bitwidth: 8}}
				}
			}
		}, "has parameters"},
	} {
		info, err := p4.P4Info()
		if err != nil {
			t.Fatal(err)
		}
		var k *p4configv1.Table
		for _, tb := range info.Tables {
			if len(tb.MatchFields) == 0 {
				k = tb
			}
		}
		c.mod(info, k)
		_, err = bind(info)
		if err == nil || !strings.Contains(err.Error(), k.Preamble.Name) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: bind = %v, want an error naming %s and saying %q", c.name, err, k.Preamble.Name, c.want)
		}
	}
}
