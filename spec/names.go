package spec

import "regexp"

// lowerSnake is the shape of every name in a spec: the emitters turn names
// into Go identifiers (CamelCase) and P4 identifiers (as is), so only
// lower-case letters, digits and single underscores are safe in both.
var lowerSnake = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// keywords are the Go and P4-16 reserved words; a name that is one would
// produce code that does not compile in one of the two languages.
var keywords = map[string]string{}

func init() {
	for _, k := range []string{"break", "case", "chan", "const", "continue", "default", "defer", "else",
		"fallthrough", "for", "func", "go", "goto", "if", "import", "interface", "map", "package", "range",
		"return", "select", "struct", "switch", "type", "var"} {
		keywords[k] = "Go"
	}
	for _, k := range []string{"abstract", "action", "actions", "apply", "bit", "bool", "control", "entries",
		"enum", "error", "exit", "extern", "false", "header", "header_union", "in", "inout", "int", "key",
		"list", "match_kind", "optional", "out", "parser", "priority", "state", "string", "table", "this",
		"transition", "true", "tuple", "typedef", "varbit", "verify", "void"} {
		if _, both := keywords[k]; !both {
			keywords[k] = "P4"
		}
	}
}

// nameProblem says why name is not a usable spec name, or "" if it is.
func nameProblem(name string) string {
	if name == "" {
		return "is empty; give it a lower_snake name"
	}
	if !lowerSnake.MatchString(name) {
		return "is not a lower_snake identifier (a-z, 0-9, single underscores, starting with a letter); rename it"
	}
	if lang, ok := keywords[name]; ok {
		return "is a " + lang + " keyword; rename it"
	}
	return ""
}
