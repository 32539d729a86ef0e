// Package tsharktest decodes a capture with tshark and capygen's
// generated TCPMig dissector, for the tests that check what Wireshark
// shows: the dissector's own (generated/wireshark) and the testbed's live
// capture at the switch.
package tsharktest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// Decode runs tshark with the Lua dissector lua over pcap and returns, for
// each TCPMig frame, its fields by display-filter name (tcpmig.stage,
// tcpmig.conn_state.data, ...), each value as tshark prints it. A missing
// tshark skips tb, saying how to install it; a failing tshark, or a Lua
// error in the dissector, fails tb.
func Decode(tb testing.TB, lua, pcap string) []map[string][]string {
	tb.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		tb.Skip("tshark is not installed (apt-get install tshark; make deps installs it)")
	}
	cmd := exec.Command(tshark, "-n", "-X", "lua_script:"+lua, "-r", pcap, "-Y", "tcpmig", "-T", "json", "-J", "tcpmig")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.Contains(stderr.String(), "Lua") {
		tb.Fatalf("tshark -X lua_script:%s -r %s: %v\n%s", lua, pcap, err, stderr.String())
	}
	var frames []struct {
		Source struct {
			Layers map[string]json.RawMessage `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &frames); err != nil {
		tb.Fatalf("tshark's JSON for %s: %v\n%.2000s", pcap, err, out)
	}
	res := make([]map[string][]string, 0, len(frames))
	for _, f := range frames {
		fields := map[string][]string{}
		flatten(f.Source.Layers["tcpmig"], fields)
		res = append(res, fields)
	}
	return res
}

// flatten collects "name": "value" pairs (and arrays of values) from
// tshark's JSON tree, whatever the nesting.
func flatten(raw json.RawMessage, into map[string][]string) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return
	}
	for k, v := range obj {
		var s string
		var ss []string
		switch {
		case json.Unmarshal(v, &s) == nil:
			into[k] = append(into[k], s)
		case json.Unmarshal(v, &ss) == nil:
			into[k] = append(into[k], ss...)
		default:
			flatten(v, into)
		}
	}
}

// First is a field's first value, or "" when the frame has none.
func First(frame map[string][]string, field string) string {
	if v := frame[field]; len(v) > 0 {
		return v[0]
	}
	return ""
}
