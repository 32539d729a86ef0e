package pipeline

import "testing"

// TestMinWorkloadInitialValue: the register starts as {0, EmptyLoad}, so
// the rule holder == src || w < load (two comparisons) lets the first
// heartbeat take it, while a PREPARE before any heartbeat is still refused;
// writing a zero holder restores the empty value.
func TestMinWorkloadInitialValue(t *testing.T) {
	e := newEnv(t)
	if h, l := e.holder(); h != ([4]byte{}) || l != EmptyLoad {
		t.Fatalf("new register {%s, %#x}, want {0, EmptyLoad}", ipString(h), l)
	}
	r, _ := e.run(e.migFrame(ipA, ipNowere, mig{msg: "prepare_mig"}), portA)
	e.want(r, reply(portA))
	maxLoad := uint64(1)<<WorkloadBits - 1
	if WorkloadBits == 32 {
		maxLoad-- // a report of EmptyLoad itself is not below it
	}
	if got := e.heartbeatReply(ipB, portB, maxLoad); got != maxLoad {
		t.Fatalf("first heartbeat (the largest load) answered %d, want %d", got, maxLoad)
	}
	if h, _ := e.holder(); h != ipB {
		t.Fatalf("holder %s after the first heartbeat, want B", ipString(h))
	}
	if err := e.p.WriteMinWorkload([4]byte{}, 3); err != nil {
		t.Fatal(err)
	}
	if h, l := e.holder(); h != ([4]byte{}) || l != EmptyLoad {
		t.Fatalf("after writing a zero holder {%s, %#x}, want {0, EmptyLoad}", ipString(h), l)
	}
	if got := e.heartbeatReply(ipC, portC, 9); got != 9 {
		t.Fatalf("heartbeat after emptying answered %d, want 9", got)
	}
}
