package pipeline

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ReadTables sees what the control plane wrote, and is a copy.
func TestReadTables(t *testing.T) {
	p := New()
	mac := [6]byte{2, 0, 0, 0, 0, 0x0b}
	if err := p.SetPortRole(3, RoleServer); err != nil {
		t.Fatal(err)
	}
	if err := p.SetHost([4]byte{10, 77, 0, 11}, 3, mac); err != nil {
		t.Fatal(err)
	}
	if err := p.SetL2(mac, 3); err != nil {
		t.Fatal(err)
	}
	got := p.ReadTables()
	want := Tables{
		PortRoles: map[Port]Role{3: RoleServer},
		Hosts:     map[[4]byte]HostAction{{10, 77, 0, 11}: {Port: 3, MAC: mac}},
		L2:        map[[6]byte]Port{mac: 3},
	}
	if !cmp.Equal(got, want) {
		t.Errorf("ReadTables() = %+v, want %+v", got, want)
	}
	got.PortRoles[4] = RoleClient
	delete(got.Hosts, [4]byte{10, 77, 0, 11})
	if again := p.ReadTables(); !cmp.Equal(again, want) {
		t.Errorf("changing a copy changed the pipeline: %+v", again)
	}
	if err := p.DeletePortRole(3); err != nil {
		t.Fatal(err)
	}
	if n := len(p.ReadTables().PortRoles); n != 0 {
		t.Errorf("%d port roles after the delete, want 0", n)
	}
}

// Raw cells are written and read as they are, each register on its own.
func TestDirectoryCells(t *testing.T) {
	p := New()
	if err := p.WriteDirectoryKey(Levels-1, 7, KeyCell{IP: 0x0a4d0001, Port: 0x2_0005}); err != nil {
		t.Fatal(err)
	}
	k, a, err := p.ReadDirectoryCells(Levels-1, 7)
	if err != nil || k != (KeyCell{IP: 0x0a4d0001, Port: 0x2_0005}) || a != (AddrCell{}) {
		t.Errorf("ReadDirectoryCells = %v %v %v", k, a, err)
	}
	if err := p.WriteDirectoryAddr(Levels-1, 7, AddrCell{Origin: 1, Target: 2}); err != nil {
		t.Fatal(err)
	}
	if k2, a2, _ := p.ReadDirectoryCells(Levels-1, 7); k2 != k || a2 != (AddrCell{Origin: 1, Target: 2}) {
		t.Errorf("after the addr write: %v %v", k2, a2)
	}
	for _, bad := range [][2]int{{-1, 0}, {Levels, 0}, {0, Slots}, {0, -1}} {
		if err := p.WriteDirectoryKey(bad[0], bad[1], KeyCell{}); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("WriteDirectoryKey(%d, %d) = %v, want ErrOutOfRange", bad[0], bad[1], err)
		}
		if _, _, err := p.ReadDirectoryCells(bad[0], bad[1]); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("ReadDirectoryCells(%d, %d) = %v, want ErrOutOfRange", bad[0], bad[1], err)
		}
	}
}

// WriteMinWorkloadCell keeps a zero holder's load, unlike WriteMinWorkload.
func TestMinWorkloadCell(t *testing.T) {
	p := New()
	if err := p.WriteMinWorkloadCell([4]byte{}, 5); err != nil {
		t.Fatal(err)
	}
	if h, l := p.ReadMinWorkload(); h != ([4]byte{}) || l != 5 {
		t.Errorf("min_workload = %v %d, want 0 5", h, l)
	}
	if err := p.WriteMinWorkload([4]byte{}, 5); err != nil {
		t.Fatal(err)
	}
	if _, l := p.ReadMinWorkload(); l != EmptyLoad {
		t.Errorf("WriteMinWorkload(0, 5) left load %d, want EmptyLoad", l)
	}
}
