// Package deps pins the project's dependencies in go.mod while the packages
// that use them are being written in parallel. Remove once every import is real.
package deps

import (
	_ "github.com/Masterminds/sprig/v3"
	_ "github.com/asavie/xdp"
	_ "github.com/dave/jennifer/jen"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/google/gopacket"
	_ "github.com/google/gopacket/layers"
	_ "github.com/p4lang/p4runtime/go/p4/config/v1"
	_ "github.com/p4lang/p4runtime/go/p4/v1"
	_ "github.com/pmezard/go-difflib/difflib"
	_ "golang.org/x/sys/unix"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/encoding/prototext"
	_ "gopkg.in/yaml.v3"
)
