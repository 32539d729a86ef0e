package yamlstrict_test

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/capygen/capygen/internal/yamlstrict"
)

var errBad = errors.New("bad pets file")

// readPets is a loader of a toy format, as a caller writes one: the
// schema only, with examples and fixes where it has them.
func readPets(data []byte) error {
	d := &yamlstrict.Decoder{File: "pets.yaml", Kind: "pets", Start: "start it with version: 1, then pets"}
	root := d.Document(data)
	if root == nil {
		return d.Err(errBad)
	}
	o := d.Object(root, "", "", "version", "pets", "owner", "tags")
	o.Require("version", "add version: 1 as the first line")
	if v, n := o.Int("version", "version: 1"); n != nil && v != 1 {
		d.Errorf(n, "version", "%d is not supported; set version: 1", v)
	}
	o.Strings("tags", "write tags as a list of words, like [calm, old]")
	if ow := o.Object("owner", "write it like {name: ada}", "name", "since"); ow != nil {
		ow.Require("name", "")
		ow.Str("name", "")
		ow.Duration("since", "")
	}
	items, _ := o.List("pets", "write one pet per item, like - {name: rex}")
	o.Require("pets", "add a list of pets, like pets: [{name: rex}]")
	for i, n := range items {
		p := d.Object(n, yamlstrict.Index("pets", i), "", "name", "age", "legs", "chipped")
		if p.Bad() {
			continue
		}
		p.Require("name", "add a name, like name: rex")
		p.Str("name", "name: rex")
		p.Int("age", "")
		p.Uint("legs", "legs: 4")
		p.Bool("chipped", "chipped: true")
	}
	return d.Err(errBad)
}

const pets = `version: 1
owner: {name: ada, since: 3h}
tags: [calm]
pets:
  - {name: rex, age: 3, legs: 4, chipped: true}
  - name: tom
`

// petEdits are edits of pets and the exact error each must give.
var petEdits = []struct {
	name, old, new, want string
}{
	// The file as a whole.
	{"empty file", pets, "", `pets.yaml:1:1: the file is empty; start it with version: 1, then pets`},
	{"comments only", pets, "# nothing\n", `pets.yaml:1:1: the file is empty; start it with version: 1, then pets`},
	{"empty document", pets, "---\n", `pets.yaml:1:1: the document is empty; start it with version: 1, then pets`},
	{"root list", pets, "- 1\n", `pets.yaml:1:1: the file holds a list, not a mapping; start it with version: 1, then pets`},
	{"root scalar", pets, "7\n", `pets.yaml:1:1: the file holds the integer 7, not a mapping; start it with version: 1, then pets`},
	// Syntax errors are placed on the line of the construct left open
	// (yaml.v3 numbers its parser's lines from 0, its scanner's from 1).
	{"syntax", "tags: [calm]", "tags: [calm", `pets.yaml:3:1: yaml: did not find expected ',' or ']'; fix the YAML syntax`},
	{"syntax, flow mapping", "{name: ada, since: 3h}", "{name: ada, since: 3h", `pets.yaml:2:1: yaml: did not find expected ',' or '}'; fix the YAML syntax`},
	{"syntax, block mapping", "  - name: tom\n", "  - name: tom\n age: 3\n", `pets.yaml:7:1: yaml: did not find expected key; fix the YAML syntax`},
	{"syntax, tag handle", "tags: [calm]", "tags: !x!calm", `pets.yaml:3:1: yaml: found undefined tag handle; fix the YAML syntax`},
	{"syntax, directive", pets, "%YAML 1.1\n%YAML 1.1\n---\n" + pets, `pets.yaml:2:1: yaml: found duplicate %YAML directive; fix the YAML syntax`},
	{"syntax, at the end", "  - name: tom\n", "  - name: tom\nx: [\n", `pets.yaml:7:1: yaml: did not find expected node content; fix the YAML syntax`},
	{"syntax, scanner", "tags: [calm]", "tags: &x[calm]", `pets.yaml:3:1: yaml: did not find expected alphabetic or numeric character; fix the YAML syntax`},
	{"syntax, scanner tab", "tags: [calm]\n", "tags: [calm]\n\tx: 1\n", `pets.yaml:4:1: yaml: found character that cannot start any token; fix the YAML syntax`},
	{"second document", "name: tom\n", "name: tom\n---\nversion: 1\n",
		`pets.yaml:7:1: a second YAML document starts here; a pets file holds one, so remove it`},
	// Keys.
	{"unknown key", "tags:", "colour: red\ntags:", `pets.yaml:3:1: colour: unknown key; allowed keys are version, pets, owner, tags`},
	{"duplicate key", "age: 3,", "age: 3, age: 4,", `pets.yaml:5:25: pets[0].age: duplicate key (first at line 5); remove one`},
	{"complex key", "tags: [calm]", "[a]: 1", `pets.yaml:3:1: want a plain key, got a list; use one of version, pets, owner, tags`},
	{"alias value", "age: 3, legs: 4,", "age: &a 3, legs: *a,", `pets.yaml:5:34: pets[0].legs: YAML aliases are not supported; write the value out`},
	{"alias item", "  - name: tom\n", "  - &t {name: tom}\n  - *t\n", `pets.yaml:7:5: pets[2]: YAML aliases are not supported; write the value out`},
	// Required keys.
	{"missing at the top", "version: 1\n", "", `pets.yaml:1:1: version: missing; add version: 1 as the first line`},
	{"missing inside", "  - name: tom\n", "  - age: 2\n", `pets.yaml:6:5: pets[1]: missing key name; add a name, like name: rex`},
	{"missing, default fix", "{name: ada, since: 3h}", "{since: 3h}", `pets.yaml:2:8: owner: missing key name; add it`},
	{"no value", "name: tom", "name:", `pets.yaml:6:10: pets[1].name: has no value; add a name, like name: rex`},
	{"no value, default fix", "{name: ada,", "{name: ,", `pets.yaml:2:15: owner.name: has no value; set it`},
	{"no value of an optional key", "age: 3,", "age: ,", ""},
	// Types.
	{"mapping wanted", "{name: ada, since: 3h}", "[ada]", `pets.yaml:2:8: owner: want a mapping, got a list; write it like {name: ada}`},
	{"mapping wanted, default fix", "  - name: tom\n", "  - tom\n", `pets.yaml:6:5: pets[1]: want a mapping, got "tom"; write it as key: value pairs with keys among name, age, legs, chipped`},
	{"string wanted", "name: tom", "name: [tom]", `pets.yaml:6:11: pets[1].name: want a string, got a list; write it like name: rex`},
	{"string wanted, no example", "{name: ada,", "{name: 1.5,", `pets.yaml:2:15: owner.name: want a string, got the number 1.5`},
	{"integer wanted", "version: 1", "version: one", `pets.yaml:1:10: version: want an integer, got "one"; write it like version: 1`},
	{"integer beyond 64 bits", "version: 1", "version: 0xffffffffffffffff", `pets.yaml:1:10: version: 0xffffffffffffffff is not an integer of at most 64 bits; write it like version: 1`},
	{"integer beyond 64 bits, no example", "age: 3,", "age: 0xffffffffffffffff,", `pets.yaml:5:22: pets[0].age: 0xffffffffffffffff is not an integer of at most 64 bits; use a smaller value`},
	{"negative uint", "legs: 4", "legs: -4", `pets.yaml:5:31: pets[0].legs: -4 is not a non-negative integer of at most 64 bits; use 0 up to 0xffffffffffffffff`},
	// YAML reads these as integers in a base the writer rarely meant.
	{"octal", "age: 3,", "age: 010,", `pets.yaml:5:22: pets[0].age: 010 is not a decimal or 0x hex integer (YAML reads a leading 0 as octal); write it in decimal or 0x hex`},
	{"octal uint", "legs: 4", "legs: 04", `pets.yaml:5:31: pets[0].legs: 04 is not a decimal or 0x hex integer (YAML reads a leading 0 as octal); write it in decimal or 0x hex, like legs: 4`},
	{"negative octal", "age: 3,", "age: -03,", `pets.yaml:5:22: pets[0].age: -03 is not a decimal or 0x hex integer (YAML reads a leading 0 as octal); write it in decimal or 0x hex`},
	{"0o", "legs: 4", "legs: 0o4", `pets.yaml:5:31: pets[0].legs: 0o4 is not a decimal or 0x hex integer (YAML reads 0o as octal); write it in decimal or 0x hex, like legs: 4`},
	{"0b", "legs: 4", "legs: 0b100", `pets.yaml:5:31: pets[0].legs: 0b100 is not a decimal or 0x hex integer (YAML reads 0b as binary); write it in decimal or 0x hex, like legs: 4`},
	{"separators", "version: 1", "version: 1_0", `pets.yaml:1:10: version: 1_0 is not a decimal or 0x hex integer (no _ separators); write it in decimal or 0x hex, like version: 1`},
	{"hex", "legs: 4", "legs: 0x4", ""},
	{"upper-case hex", "legs: 4", "legs: 0X4", ""},
	{"signs", "age: 3,", "age: -3,", ""},
	{"zero", "legs: 4", "legs: 0", ""},
	{"bool wanted", "chipped: true", "chipped: null", ""},
	{"bool wanted, got a word", "chipped: true", "chipped: yes", `pets.yaml:5:43: pets[0].chipped: want true or false, got "yes"; write it like chipped: true`},
	{"duration", "since: 3h", "since: 3 hours", `pets.yaml:2:27: owner.since: "3 hours" is not a duration; write it like 5ms or 1s`},
	{"list wanted", "tags: [calm]", "tags: calm", `pets.yaml:3:7: tags: want a list, got "calm"; write tags as a list of words, like [calm, old]`},
	{"string items", "tags: [calm]", "tags: [calm, 3, ~]",
		"pets.yaml:3:14: tags[1]: want a string, got the integer 3; write tags as a list of words, like [calm, old]\n" +
			"pets.yaml:3:17: tags[2]: want a string, got nothing (null); write tags as a list of words, like [calm, old]"},
	// Every problem at once, sorted by position whatever the order found.
	{"sorted", "version: 1\n", "version: 2\ncolour: red\n",
		"pets.yaml:1:10: version: 2 is not supported; set version: 1\n" +
			"pets.yaml:2:1: colour: unknown key; allowed keys are version, pets, owner, tags"},
}

func TestPetEdits(t *testing.T) {
	if err := readPets([]byte(pets)); err != nil {
		t.Fatalf("readPets(pets) = %v, want nil", err)
	}
	for _, tc := range petEdits {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(pets, tc.old, tc.new, 1)
			if src == pets {
				t.Fatalf("the edit changes nothing (no %q)", tc.old)
			}
			err := readPets([]byte(src))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("readPets(%s) = %v, want nil", tc.name, err)
				}
				return
			}
			if !errors.Is(err, errBad) {
				t.Fatalf("readPets(%s) = %v, want an error wrapping errBad", tc.name, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("readPets(%s) =\n%s\nwant\n%s", tc.name, got, tc.want)
			}
		})
	}
}

// Int and Uint read decimal and 0x hex, and no other base.
func TestIntForms(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want int64
		ok   bool
	}{
		{"1500", 1500, true}, {"+1500", 1500, true}, {"-12", -12, true}, {"0", 0, true}, {"-0", 0, true},
		{"0x5dc", 1500, true}, {"0X5DC", 1500, true}, {"-0x10", -16, true},
		{"01500", 0, false}, {"00", 0, false}, {"0o17", 0, false}, {"0b101", 0, false}, {"1_500", 0, false},
	} {
		d := &yamlstrict.Decoder{File: "x.yaml"}
		o := d.Object(d.Document([]byte("n: "+tc.src+"\nu: "+tc.src+"\n")), "", "", "n", "u")
		v, n := o.Int("n", "")
		if (n != nil) != tc.ok || v != tc.want {
			t.Errorf("Int(n: %s) = %d, %v, want %d, ok %v", tc.src, v, n != nil, tc.want, tc.ok)
		}
		if tc.want >= 0 {
			u, n := o.Uint("u", "")
			if (n != nil) != tc.ok || u != uint64(tc.want) {
				t.Errorf("Uint(u: %s) = %d, %v, want %d, ok %v", tc.src, u, n != nil, tc.want, tc.ok)
			}
		}
		if err := d.Err(errBad); (err == nil) != tc.ok {
			t.Errorf("reading %s reported %v", tc.src, err)
		}
	}
}

// The getters return the value's node, the one to blame in the caller's
// own checks, and nothing for an absent or null key.
func TestGetterNodes(t *testing.T) {
	d := &yamlstrict.Decoder{File: "x.yaml"}
	root := d.Document([]byte("a: hi\nb: 7\nc:\nd: [x]\n"))
	o := d.Object(root, "", "", "a", "b", "c", "d", "e")
	if s, n := o.Str("a", ""); s != "hi" || n == nil || n.Line != 1 || n.Column != 4 {
		t.Errorf(`Str("a") = %q, %v, want "hi" at 1:4`, s, n)
	}
	if v, n := o.Int("b", ""); v != 7 || n == nil || n.Line != 2 {
		t.Errorf(`Int("b") = %d, %v, want 7 at line 2`, v, n)
	}
	for _, k := range []string{"c", "e"} {
		if s, n := o.Str(k, ""); s != "" || n != nil {
			t.Errorf("Str(%q) = %q, %v, want nothing", k, s, n)
		}
		if o.Has(k) {
			t.Errorf("Has(%q) = true, want false", k)
		}
	}
	if o.Raw("c") == nil || o.Raw("e") != nil {
		t.Errorf(`Raw("c"), Raw("e") = %v, %v, want the null node and nil`, o.Raw("c"), o.Raw("e"))
	}
	if o.Key("a") == nil || o.Key("a").Column != 1 || o.At("e") != root {
		t.Errorf(`Key("a") = %v, At("e") = %v, want the key at column 1 and the mapping`, o.Key("a"), o.At("e"))
	}
	if items, n := o.List("d", ""); len(items) != 1 || n == nil {
		t.Errorf(`List("d") = %v, %v, want one item`, items, n)
	}
	if o.Object("e", "") != nil {
		t.Error(`Object("e") of an absent key is not nil`)
	}
	if len(d.Diagnostics) != 0 {
		t.Errorf("reads of a good file reported %v", d.Diagnostics)
	}
	if err := d.Err(errBad); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}

// A mapping that is not one reports once: its lookups find nothing and
// Require stays quiet.
func TestBadObjectReportsOnce(t *testing.T) {
	d := &yamlstrict.Decoder{File: "x.yaml"}
	o := d.Object(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "x", Line: 2, Column: 3}, "owner", "write it like {name: ada}", "name")
	o.Require("name", "")
	if _, n := o.Str("name", ""); n != nil || !o.Bad() || o.Path() != "owner" || o.Sub("name") != "owner.name" {
		t.Errorf("a bad object read a value or lost its path")
	}
	want := `x.yaml:2:3: owner: want a mapping, got "x"; write it like {name: ada}`
	if got := d.Err(errBad).Error(); got != want {
		t.Errorf("Err() =\n%s\nwant\n%s", got, want)
	}
}

// Root takes a document node or its top node, as a caller that edited the
// tree has it; a node made by hand without a position is placed at 1:1.
func TestRoot(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\n"), &doc); err != nil {
		t.Fatal(err)
	}
	d := &yamlstrict.Decoder{File: "x.yaml", Start: "add a"}
	if r := d.Root(&doc); r != doc.Content[0] {
		t.Errorf("Root(document) = %v, want its mapping", r)
	}
	if r := d.Root(doc.Content[0]); r != doc.Content[0] {
		t.Errorf("Root(mapping) = %v, want the mapping", r)
	}
	for _, n := range []*yaml.Node{nil, {}, {Kind: yaml.DocumentNode}} {
		d := &yamlstrict.Decoder{File: "x.yaml", Start: "add a"}
		if r := d.Root(n); r != nil || d.Err(errBad).Error() != "x.yaml:1:1: the file is empty; add a" {
			t.Errorf("Root(%v) = %v, %v, want the empty-file error", n, r, d.Err(errBad))
		}
	}
	d = &yamlstrict.Decoder{File: "x.yaml", Start: "add a"}
	d.Root(&yaml.Node{Kind: yaml.SequenceNode})
	if got, want := d.Err(errBad).Error(), "x.yaml:1:1: the file holds a list, not a mapping; add a"; got != want {
		t.Errorf("Root(list without position) = %s, want %s", got, want)
	}
}

func TestSortAndErrorList(t *testing.T) {
	at := func(file string, line, col int, msg string) yamlstrict.Diagnostic {
		return yamlstrict.Diagnostic{Pos: yamlstrict.Pos{File: file, Line: line, Col: col}, Msg: msg}
	}
	ds := []yamlstrict.Diagnostic{at("b.yaml", 1, 1, "z"), at("a.yaml", 9, 1, "y"), at("a.yaml", 2, 7, "b"), at("a.yaml", 2, 7, "a"), at("a.yaml", 2, 3, "c")}
	yamlstrict.Sort(ds)
	var got []string
	for _, d := range ds {
		got = append(got, d.String())
	}
	want := "a.yaml:2:3: c\na.yaml:2:7: a\na.yaml:2:7: b\na.yaml:9:1: y\nb.yaml:1:1: z"
	if g := strings.Join(got, "\n"); g != want {
		t.Errorf("Sort =\n%s\nwant\n%s", g, want)
	}
	el := &yamlstrict.ErrorList{Errors: ds, Err: errBad}
	var as *yamlstrict.ErrorList
	if el.Error() != want || !errors.Is(el, errBad) || !errors.As(error(el), &as) {
		t.Errorf("ErrorList = %q, Is(errBad) %v, want the lines, wrapping errBad", el.Error(), errors.Is(el, errBad))
	}
	if empty := (&yamlstrict.ErrorList{Err: errBad}); empty.Error() != errBad.Error() {
		t.Errorf("empty ErrorList says %q, want the sentinel's %q", empty.Error(), errBad.Error())
	}
}

// positioned is what every line of an error must look like.
var positioned = regexp.MustCompile(`^pets\.yaml:[1-9][0-9]*:[1-9][0-9]*: [^\n]+$`)

func FuzzDocument(f *testing.F) {
	f.Add([]byte(pets))
	for _, tc := range petEdits {
		f.Add([]byte(strings.Replace(pets, tc.old, tc.new, 1)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readPets(data)
		if err == nil {
			return
		}
		if !errors.Is(err, errBad) {
			t.Fatalf("error %v does not wrap the sentinel", err)
		}
		lines := max(bytes.Count(data, []byte("\n"))+1, 1)
		for _, line := range strings.Split(err.Error(), "\n") {
			if !positioned.MatchString(line) {
				t.Fatalf("error line %q is not file:line:col: message", line)
			}
			var at int
			fmt.Sscanf(strings.TrimPrefix(line, "pets.yaml:"), "%d", &at)
			if at > lines {
				t.Fatalf("error %q is past the file's %d lines", line, lines)
			}
		}
	})
}
