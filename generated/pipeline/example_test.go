package pipeline_test

import (
	"fmt"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// A switch with one client port and one server port: the control plane
// fills the tables, then every frame goes through Process.
func Example() {
	p := pipeline.New()
	client, server := pipeline.Port(1), pipeline.Port(2)
	for _, err := range []error{
		p.SetPortRole(client, pipeline.RoleClient),
		p.SetPortRole(server, pipeline.RoleServer),
		p.SetHost([4]byte{10, 77, 1, 1}, server, [6]byte{2, 0, 0, 0, 0, 2}),
	} {
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	// An ARP request (broadcast) from the client is flooded.
	arp := make([]byte, 60)
	copy(arp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	r := p.Process(arp, client)
	fmt.Println(r.Verdict)

	// A frame from a port without a role is dropped and counted.
	r = p.Process(arp, 7)
	fmt.Println(r.Verdict, r.Drop, p.Counters().Drops[pipeline.DropUnknownPort])
	// Output:
	// flood
	// drop unknown_port 1
}
