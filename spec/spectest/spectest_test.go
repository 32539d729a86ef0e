package spectest

import (
	"strings"
	"testing"
)

func TestEdit(t *testing.T) {
	y := string(EditYAML(t, "udp_port: 7071", "udp_port: 7072", "mtu: 1500", "mtu: 9000"))
	if strings.Contains(y, "udp_port: 7071") || !strings.Contains(y, "udp_port: 7072") || !strings.Contains(y, "mtu: 9000") {
		t.Errorf("EditYAML did not apply both edits")
	}
	s := Edit(t, "udp_port: 7071", "udp_port: 7072")
	if s.Transport.UDPPort != 7072 || s.Source != EditedName {
		t.Errorf("Edit = port %d from %q, want 7072 from %q", s.Transport.UDPPort, s.Source, EditedName)
	}
	if d := Default(t); d.Transport.UDPPort != 7071 {
		t.Errorf("Default port = %d after an edit, want 7071 (edits must not leak)", d.Transport.UDPPort)
	}
}

func TestEditRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(tb testing.TB)
		want string
	}{
		{"missing", func(tb testing.TB) { EditYAML(tb, "udp_port: 1234", "udp_port: 7072") }, `edit "udp_port: 1234" occurs 0 times`},
		{"ambiguous", func(tb testing.TB) { EditYAML(tb, "final: true", "final: false") }, `edit "final: true" occurs`},
		{"empty", func(tb testing.TB) { EditYAML(tb, "", "x") }, `edit "" occurs`},
		{"odd", func(tb testing.TB) { EditYAML(tb, "udp_port: 7071") }, "1 strings, want old, new pairs"},
		{"invalid", func(tb testing.TB) { Edit(tb, "udp_port: 7071", "udp_port: 0") }, "edited spec: " + EditedName},
	} {
		if got := Failure(t, tc.f); !strings.Contains(got, tc.want) {
			t.Errorf("%s: failed with %q, want it to contain %q", tc.name, got, tc.want)
		}
	}
}
