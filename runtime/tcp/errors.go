package tcp

import "errors"

// Connection errors, returned by Read, Write and Err (wrap-free: compare
// with errors.Is or ==).
var (
	ErrReset   = errors.New("tcp: connection reset by peer")
	ErrTimeout = errors.New("tcp: connection timed out")
	ErrClosed  = errors.New("tcp: connection closed")
	ErrRefused = errors.New("tcp: connection refused")
	// ErrNotSYN is returned by Accept for a segment that cannot open a connection.
	ErrNotSYN = errors.New("tcp: segment is not a connection request")
)

// Snapshot errors, wrapped by Restore with the field that failed.
var (
	ErrSnapshotTruncated = errors.New("tcp: snapshot truncated")
	ErrSnapshotMagic     = errors.New("tcp: not a tcp snapshot")
	ErrSnapshotVersion   = errors.New("tcp: unsupported snapshot version")
	ErrSnapshotCorrupt   = errors.New("tcp: snapshot corrupt")
	ErrSnapshotTooLarge  = errors.New("tcp: snapshot buffers over the restore limit")
)
