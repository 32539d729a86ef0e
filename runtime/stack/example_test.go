package stack_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/stack"
)

// Two stacks joined by an in-memory cable: net/http serves on one and
// fetches from the other. Over AF_XDP only the endpoint changes.
func Example() {
	ea, eb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, 1500)
	server, err := stack.New(stack.Config{Addr: netip.MustParsePrefix("10.77.0.2/24")}, eb)
	if err != nil {
		panic(err)
	}
	client, err := stack.New(stack.Config{Addr: netip.MustParsePrefix("10.77.0.1/24")}, ea)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go server.Run(ctx)
	go client.Run(ctx)

	ln, err := server.Listen(80)
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "hello from the userspace stack")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext}}
	resp, err := hc.Get("http://10.77.0.2/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello from the userspace stack
}
