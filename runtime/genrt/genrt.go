// Package genrt is the runtime under capygen's generated Go, as protoimpl is
// under protoc-gen-go's output: what does not vary with the spec lives in
// its subpackages (bit fields and checksums, the state-machine engine, the
// switch's control-plane tables), and the generated packages hold only
// what the spec decides.
//
// Generated code and this runtime move together. Every generated package
// declares
//
//	const (
//		_ = genrt.EnforceVersion(N - genrt.MinVersion)
//		_ = genrt.EnforceVersion(genrt.MaxVersion - N)
//	)
//
// where N is the GenVersion of the capygen that wrote it (gen/genfile). EnforceVersion is
// unsigned, so when N is outside MinVersion..MaxVersion one of the two
// constants is negative and the package does not compile: a stale
// generated/ against a new runtime, or the reverse, fails at build time
// with the constant named, instead of misbehaving.
package genrt

// EnforceVersion is the type of the generated code's version check.
type EnforceVersion uint

const (
	// MinVersion is the oldest generated code this runtime still serves;
	// raise it when the runtime drops something old generated code uses.
	MinVersion = 1
	// MaxVersion is the newest generated code this runtime serves; raise
	// it with gen/genfile's GenVersion when generated code starts to need
	// something new from the runtime.
	MaxVersion = 1
)
