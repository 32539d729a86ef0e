package main

import (
	"os"
	"testing"

	"github.com/capygen/capygen/testbed/experiment"
)

// -from takes only a result of its own experiment with something in it:
// anything else would be written back over the run in -out.
func TestDecodeResultRefusesOtherResults(t *testing.T) {
	skew, err := os.ReadFile("../../results/reference/skew/skew.json")
	if err != nil {
		t.Fatal(err)
	}
	fig1, err := os.ReadFile("../../results/reference/fig1/fig1.json")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := decodeResult[experiment.SkewResult](skew); err != nil || len(res.Runs) == 0 {
		t.Fatalf("the reference skew.json: %v", err)
	}
	for name, b := range map[string][]byte{
		"fig1's result": fig1,
		"null":          []byte("null"),
		"empty object":  []byte("{}"),
		"two values":    append(append([]byte(nil), skew...), skew...),
		"not JSON":      []byte("skew"),
	} {
		if _, err := decodeResult[experiment.SkewResult](b); err == nil {
			t.Errorf("%s decoded as a skew result", name)
		}
	}
}
