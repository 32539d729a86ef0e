package testbed

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/capygen/capygen/internal/tsharktest"
	"github.com/capygen/capygen/runtime/migrate"
)

// TestDissectorDecodesALiveMigration captures at the switch (capyrun
// switch -pcap) while a keep-alive HTTP connection from the kernel client
// moves from s1 to another server, and decodes the capture with tshark
// and the generated dissector: every stage of the migration shows under
// the spec's names, with the connection's addresses, the LOAD flag on the
// ACK the switch installs, and the state's length.
func TestDissectorDecodesALiveMigration(t *testing.T) {
	needNetns(t, "tshark")
	pcap := filepath.Join(t.TempDir(), "sw.pcap")
	bed := upMigration(t, Options{Args: map[string][]string{"switch": {"-pcap", pcap}}})
	srv := dialServers(t, bed)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := bed.DialContext("client")(ctx, "tcp4", originIP+":80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func() {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, "GET /ping HTTP/1.1\r\nHost: s1\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /ping: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	get()
	conn := srv.waitSession(t, "s1", "10.77.0.1")
	if rep := srv.migrateConn(t, "s1", conn); rep.Result != migrate.ResultMoved.String() {
		t.Fatalf("migrate %s: %+v", conn, rep)
	}
	get() // served by the target now
	bed.Proc("sw").Stop(5 * time.Second)

	lua, err := filepath.Abs(filepath.Join(repoRoot(t), "generated", "wireshark", "tcpmig.lua"))
	if err != nil {
		t.Fatal(err)
	}
	frames := tsharktest.Decode(t, lua, pcap)
	stages := map[string]int{}
	var sawLoadAck, sawState bool
	for _, m := range frames {
		field := func(name string) string { return tsharktest.First(m, name) }
		stage := field("tcpmig.stage")
		stages[stage]++
		if field("tcpmig.client_ip") != "10.77.0.1" && stage != "12" && stage != "13" {
			continue
		}
		switch stage {
		case "3": // prepare_mig_ack
			sawLoadAck = sawLoadAck || (field("tcpmig.load") == "1" && field("tcpmig.origin_ip") == originIP)
		case "4": // conn_state
			tl := field("tcpmig.conn_state.total_length")
			sawState = sawState || (tl != "" && tl != "0" && field("tcpmig.conn_state.data") != "")
		}
	}
	for name, stage := range map[string]string{"prepare_mig": "2", "prepare_mig_ack": "3", "conn_state": "4", "conn_state_ack": "5",
		"heartbeat_update": "12", "heartbeat_response": "13"} {
		if stages[stage] == 0 {
			t.Errorf("no %s (stage %s) decoded in the capture; stages seen: %v", name, stage, stages)
		}
	}
	if !sawLoadAck {
		t.Error("no prepare_mig_ack with load=1 for the client's connection")
	}
	if !sawState {
		t.Error("no conn_state with its total_length and data")
	}
}

// repoRoot is the module's root, two levels up from this file.
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Dir(filepath.Dir(file))
}
