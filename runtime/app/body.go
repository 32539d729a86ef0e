package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// bodyKind is how a request body is delimited.
type bodyKind uint8

const (
	bodyNone    bodyKind = iota // no body
	bodyLength                  // Content-Length bytes
	bodyChunked                 // Transfer-Encoding: chunked
	numBodyKinds
)

// chunkStage is where a chunked body's decoder stands.
type chunkStage uint8

const (
	chunkSize    chunkStage = iota // expecting a chunk-size line
	chunkData                      // inside a chunk's data: left bytes to go
	chunkCRLF                      // expecting the CRLF after a chunk's data
	chunkTrailer                   // reading trailer lines up to the empty one
	chunkDone                      // the body is over
	numChunkStages
)

// bodyState is a request body's framing as far as it was read. It is plain
// data because it travels with a migration: every change to it happens
// between fills, so at a quiescent point it and the read buffer agree.
type bodyState struct {
	kind  bodyKind
	stage chunkStage // bodyChunked only
	left  int64      // bodyLength: bytes to go; chunkData: bytes of the chunk to go
	read  int64      // body bytes delivered so far
	// expect is set when the client waits for "100 Continue" before
	// sending the body, and contSent once it went out.
	expect, contSent bool
}

// done reports whether the whole body was read.
func (b *bodyState) done() bool {
	switch b.kind {
	case bodyLength:
		return b.left == 0
	case bodyChunked:
		return b.stage == chunkDone
	}
	return true
}

// maxChunkLine bounds a chunk-size or trailer line.
const maxChunkLine = 4096

// errBadChunk is wrapped by the decoder's refusals.
var errBadChunk = errors.New("app: malformed chunked request body")

// bodyReader decodes a request body from a connReader, keeping its
// progress in a bodyState.
type bodyReader struct {
	st *bodyState
	cr *connReader
	// sendContinue writes "100 Continue" (the fill flushes it).
	sendContinue func() error
	err          error // sticky failure
}

func (br *bodyReader) Read(p []byte) (int, error) {
	if br.err != nil {
		return 0, br.err
	}
	n, err := br.read(p)
	if err != nil && err != io.EOF {
		br.err = err
	}
	return n, err
}

func (br *bodyReader) read(p []byte) (int, error) {
	st := br.st
	if st.done() {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if st.expect && !st.contSent {
		if br.sendContinue != nil {
			if err := br.sendContinue(); err != nil {
				return 0, err
			}
		}
		st.contSent = true
	}
	if st.kind == bodyLength {
		n, err := br.cr.Read(p[:min(int64(len(p)), st.left)])
		st.left -= int64(n)
		st.read += int64(n)
		if n == 0 {
			return 0, unexpected(err)
		}
		return n, nil
	}
	for {
		switch st.stage {
		case chunkSize:
			line, err := br.cr.line(maxChunkLine)
			if err != nil {
				return 0, chunkErr(err, "chunk-size line")
			}
			size, err := parseChunkSize(line)
			if err != nil {
				return 0, err
			}
			br.cr.consume(len(line))
			if size == 0 {
				st.stage = chunkTrailer
			} else {
				st.stage, st.left = chunkData, size
			}
		case chunkData:
			n, err := br.cr.Read(p[:min(int64(len(p)), st.left)])
			st.left -= int64(n)
			st.read += int64(n)
			if st.left == 0 {
				st.stage = chunkCRLF
			}
			if n == 0 {
				return 0, unexpected(err)
			}
			return n, nil
		case chunkCRLF:
			line, err := br.cr.line(maxChunkLine)
			if err != nil {
				return 0, chunkErr(err, "CRLF after chunk data")
			}
			if len(bytes.TrimRight(line, "\r\n")) != 0 {
				return 0, fmt.Errorf("%w: %q after a chunk's data, want CRLF (the chunk is longer than its size line says)", errBadChunk, clip(line))
			}
			br.cr.consume(len(line))
			st.stage = chunkSize
		case chunkTrailer:
			line, err := br.cr.line(maxChunkLine)
			if err != nil {
				return 0, chunkErr(err, "trailer line")
			}
			br.cr.consume(len(line))
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				st.stage = chunkDone
			}
		case chunkDone:
			return 0, io.EOF
		default:
			return 0, fmt.Errorf("%w: decoder in unknown stage %d", errBadChunk, st.stage)
		}
	}
}

// unexpected turns a clean end of the connection inside a body into
// io.ErrUnexpectedEOF; other errors (migrate.ErrMoved included) pass.
func unexpected(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func chunkErr(err error, what string) error {
	switch {
	case errors.Is(err, errLineTooLong):
		return fmt.Errorf("%w: %s longer than %d bytes", errBadChunk, what, maxChunkLine)
	case err == io.EOF:
		return fmt.Errorf("%w: connection ended before the %s: %w", errBadChunk, what, io.ErrUnexpectedEOF)
	}
	return err
}

// parseChunkSize reads "<hex>[;ext]CRLF".
func parseChunkSize(line []byte) (int64, error) {
	s := bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = bytes.TrimRight(s, " \t")
	if len(s) == 0 || len(s) > 15 {
		return 0, fmt.Errorf("%w: chunk-size line %q: want 1 to 15 hex digits", errBadChunk, clip(line))
	}
	if bytes.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune("0123456789abcdefABCDEF", r) }) {
		// ParseInt takes a sign: "-0" ended a body (RFC 9112 §7.1: 1*HEXDIG).
		return 0, fmt.Errorf("%w: chunk-size line %q: want hex digits", errBadChunk, clip(line))
	}
	v, err := strconv.ParseInt(string(s), 16, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: chunk-size line %q: want hex digits", errBadChunk, clip(line))
	}
	return v, nil
}

// clip shortens what an error quotes.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
