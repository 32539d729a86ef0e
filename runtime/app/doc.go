// Package app holds applications whose connections move between servers
// while in use, through runtime/migrate's Session API (Migratory TCP's
// get/set-state contract for blocking Go code):
//
//   - HTTPServer, an HTTP/1.1 server with its own keep-alive loop, request
//     reader and ResponseWriter. A connection is offered for migration
//     after each response and while it waits for the next request. Routes
//     that implement Resumable (the standard /bytes, /upload and /ping of
//     capyrun serve) also move in the middle of a body, every StepSize
//     bytes: /bytes resumes at its offset with a running SHA-256 of what
//     was sent, /upload with its byte count and a running SHA-256 of what
//     was received, and whichever server reads the last byte answers.
//     Other requests go to a plain http.Handler and move only between
//     requests.
//   - Echo, a byte-stream echo for nc and socat that moves at any read.
//
// What travels besides the TCP state is the application state: for HTTP,
// the bytes read from the connection and not yet parsed (pipelined
// requests, a partial next request: they left the TCP receive buffer, so
// nothing else carries them), the request's body and response framing,
// and the task's state; for Echo, the bytes read and not yet written back.
// The state is taken while the serving goroutine is parked in a quiescent
// point, and the code keeps its fields consistent at every such point: the
// read buffer is this package's own (not a bufio.Reader, whose buffer a
// state function could not read), and it changes only outside the reads
// that may migrate.
//
// Every state starts with a 4-byte magic and a version byte, and a server
// refuses (and resets) a connection whose state it cannot read, with an
// error wrapping ErrState that names the field; decoders never panic (see
// the fuzz tests). The HTTP state's version 2 added how long the server
// had waited for the client, so that IdleTimeout and BodyTimeout count
// across moves; version 1 is still read. A resumed task is also checked
// against the response framing it travelled with (ResumeChecker).
//
// Payload is testbed.Payload's deterministic stream made seekable, so a
// download resumes at any offset.
package app
