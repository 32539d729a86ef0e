package spec

import (
	"math"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/capygen/capygen/internal/yamlstrict"
)

// decoder reads a spec or a target profile: its methods (load.go,
// machines.go, switchnames.go) are the schema, and yamlstrict walks the
// YAML and collects the diagnostics.
type decoder struct{ yamlstrict.Decoder }

// newDecoder reads file, a kind ("spec" or "target profile") of file.
func newDecoder(file, kind string) *decoder {
	return &decoder{yamlstrict.Decoder{File: file, Kind: kind, Start: "it must be a mapping starting with version: 1"}}
}

// object checks that n is a mapping with only allowed keys.
func (d *decoder) object(n *yaml.Node, path string, allowed ...string) *obj {
	return &obj{d.Object(n, path, "", allowed...), d}
}

// obj is a mapping of the spec, read the schema's way: each read says
// whether the key is required (a missing one is reported as "missing key
// k; add it") and returns whether a usable value was there. The spec
// gives no example per key, so a value of the wrong type is reported as
// "want X, got Y".
type obj struct {
	*yamlstrict.Object
	d *decoder
}

// need reports key when it is required and has no value.
func (o *obj) need(key string, required bool) {
	if required {
		o.Require(key, "")
	}
}

// read is every typed read of an obj: require key if asked, then get it.
func read[T any](o *obj, key string, required bool, get func(key, example string) (T, *yaml.Node)) (T, bool) {
	o.need(key, required)
	v, n := get(key, "")
	return v, n != nil
}

func (o *obj) str(key string, required bool) (string, bool) { return read(o, key, required, o.Str) }

// uint reads an unsigned 64-bit integer.
func (o *obj) uint(key string, required bool) (uint64, bool) { return read(o, key, required, o.Uint) }

// duration reads a Go duration string such as 5ms.
func (o *obj) duration(key string, required bool) (time.Duration, bool) {
	// The example goes into the message for a bare number (after: 10).
	return read(o, key, required, func(k, _ string) (time.Duration, *yaml.Node) { return o.Duration(k, "10ms") })
}

// bool reads an optional true or false.
func (o *obj) bool(key string) bool {
	b, _ := read(o, key, false, o.Bool)
	return b
}

// int reads a signed integer that fits 32 bits: every count, width and
// port of a spec does, and the emitters compute with int.
func (o *obj) int(key string, required bool) (int, bool) {
	x, ok := read(o, key, required, o.Int)
	if ok && (x > math.MaxInt32 || x < math.MinInt32) {
		o.d.Errorf(o.At(key), o.Sub(key), "%d does not fit an integer of 32 bits; use a smaller value", x)
		return 0, false
	}
	return int(x), ok
}

// get returns key's value (nil when absent).
func (o *obj) get(key string, required bool) *yaml.Node {
	o.need(key, required)
	return o.Value(key)
}

// list reads a sequence.
func (o *obj) list(key string, required bool) []*yaml.Node {
	l, _ := read(o, key, required, o.List)
	return l
}

// strings reads a list of strings, with their nodes.
func (o *obj) strings(key string, required bool) ([]string, []*yaml.Node) {
	o.need(key, required)
	return o.Strings(key, "")
}

// object reads a nested mapping; nil when absent.
func (o *obj) object(key string, required bool, allowed ...string) *obj {
	o.need(key, required)
	if v := o.Object.Object(key, "", allowed...); v != nil {
		return &obj{v, o.d}
	}
	return nil
}

// name reads a key whose value must be a lower_snake name.
func (o *obj) name(key string, required bool) (string, bool) {
	s, ok := o.str(key, required)
	if !ok {
		return "", false
	}
	if p := nameProblem(s); p != "" {
		o.d.Errorf(o.At(key), o.Sub(key), "%q %s", s, p)
		return s, false
	}
	return s, true
}

// itemPath names a list item by its name when it has a usable one
// (enums.stage), else by its index (enums[0]).
func itemPath(list string, i int, n *yaml.Node) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if k, v := n.Content[j], n.Content[j+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && lowerSnake.MatchString(v.Value) {
				return list + "." + v.Value
			}
		}
	}
	return yamlstrict.Index(list, i)
}
