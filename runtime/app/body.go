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

// unreadable reports whether discardBody will close the connection
// rather than read away the rest of the body, as far as that is known
// before the handler ends: the response header then says close.
func (b *bodyState) unreadable() bool {
	return !b.done() && (b.expect && !b.contSent || b.kind == bodyLength && b.left > maxDiscard)
}

// bodyReader decodes a request body from a connReader, keeping its
// progress in a bodyState.
type bodyReader struct {
	st *bodyState
	cr *connReader
	// sendContinue writes "100 Continue" (the fill flushes it).
	sendContinue func() error
	// answered reports whether the final response header was written: a
	// 100 Continue after it would land in the response's body.
	answered func() bool
	// wait and waited bracket each Read with the body's read deadline
	// (HTTPServer.BodyTimeout) and its clock, which travels with a move.
	wait   func()
	waited func()
	err    error // sticky failure
}

func (br *bodyReader) Read(p []byte) (int, error) {
	if br.err != nil {
		return 0, br.err
	}
	if br.wait != nil && len(p) > 0 && !br.st.done() {
		br.wait()
		defer br.waited()
	}
	n, err := br.read(p)
	if err != nil && err != io.EOF {
		br.err = err
	}
	return n, err
}

// failed reports whether a read failed: what is left of the body cannot
// be read away, so the connection closes.
func (br *bodyReader) failed() bool { return br.err != nil }

func (br *bodyReader) read(p []byte) (int, error) {
	st := br.st
	if st.done() {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if st.expect && !st.contSent && (br.answered == nil || !br.answered()) {
		// Once the final header is out, no 100 goes: contSent stays false
		// and the connection closes after the response (net/http's way).
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
			crlf, err := br.cr.peek(2)
			if err != nil {
				return 0, chunkErr(err, "CRLF after chunk data")
			}
			if string(crlf) != "\r\n" {
				return 0, fmt.Errorf("%w: %q after a chunk's data, want CRLF (the chunk is longer than its size line says, or its data ends in a bare LF)", errBadChunk, crlf)
			}
			br.cr.consume(2)
			st.stage = chunkSize
		case chunkTrailer:
			line, err := br.cr.line(maxChunkLine)
			if err != nil {
				return 0, chunkErr(err, "trailer line")
			}
			field, err := crlfLine(line, "trailer line")
			if err != nil {
				return 0, err
			}
			if len(field) > 0 && !validField(field) {
				return 0, fmt.Errorf("%w: trailer line %q: want a header field, name \":\" value, without control characters", errBadChunk, clip(line))
			}
			br.cr.consume(len(line))
			if len(field) == 0 {
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

// crlfLine strips the CRLF that must end line (RFC 9112 §7.1): a bare LF,
// or a CR anywhere else, is refused, as a front end may split the line
// elsewhere (a bare LF after a chunk size is CVE-2025-22871).
func crlfLine(line []byte, what string) ([]byte, error) {
	s, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok || bytes.IndexByte(s, '\r') >= 0 {
		return nil, fmt.Errorf("%w: %s %q: want it to end in CRLF, with no other CR", errBadChunk, what, clip(line))
	}
	return s, nil
}

// parseChunkSize reads "1*HEXDIG *(BWS ; BWS token [BWS = BWS (token /
// quoted-string)]) CRLF" (RFC 9112 §7.1, §7.1.1).
func parseChunkSize(line []byte) (int64, error) {
	s, err := crlfLine(line, "chunk-size line")
	if err != nil {
		return 0, err
	}
	digits := 0
	for digits < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[digits]) >= 0 {
		digits++
	}
	// ParseInt alone would take a sign: "-0" ended a body.
	if digits == 0 || digits > 15 {
		return 0, fmt.Errorf("%w: chunk-size line %q: want 1 to 15 hex digits", errBadChunk, clip(line))
	}
	if !validChunkExt(s[digits:]) {
		return 0, fmt.Errorf("%w: chunk-size line %q: want hex digits, then only extensions ;name or ;name=value (a token or a quoted string)", errBadChunk, clip(line))
	}
	v, err := strconv.ParseInt(string(s[:digits]), 16, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: chunk-size line %q: want hex digits", errBadChunk, clip(line))
	}
	return v, nil
}

// validChunkExt reports whether s is a chunk-ext: any number of ";name"
// or ";name=value", with optional blanks before ";" and around "=" and
// the name, none at the end.
func validChunkExt(s []byte) bool {
	for len(s) > 0 {
		s = trimBlank(s)
		if len(s) == 0 || s[0] != ';' {
			return false
		}
		s = trimBlank(s[1:])
		n := tokenLen(s)
		if n == 0 {
			return false
		}
		s = s[n:]
		if v := trimBlank(s); len(v) > 0 && v[0] == '=' {
			v = trimBlank(v[1:])
			if n = tokenLen(v); n == 0 {
				n = quotedLen(v)
			}
			if n == 0 {
				return false
			}
			s = v[n:]
		}
	}
	return true
}

func trimBlank(s []byte) []byte { return bytes.TrimLeft(s, " \t") }

// isTchar reports an RFC 9110 §5.6.2 token character.
func isTchar(c byte) bool {
	return c > ' ' && c < 0x7f && strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) < 0
}

// tokenLen is the length of the token that starts s.
func tokenLen(s []byte) int {
	n := 0
	for n < len(s) && isTchar(s[n]) {
		n++
	}
	return n
}

// quotedLen is the length of the quoted-string (RFC 9110 §5.6.4) that
// starts s, or 0.
func quotedLen(s []byte) int {
	if len(s) == 0 || s[0] != '"' {
		return 0
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 == len(s) || !fieldByte(s[i+1]) {
				return 0
			}
			i++
		case !fieldByte(c):
			return 0
		}
	}
	return 0
}

// fieldByte reports a byte a field value may hold: HTAB, SP, VCHAR or
// obs-text, never another control character.
func fieldByte(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f }

// validField reports whether line is "token: value" with no control
// characters in the value (RFC 9110 §5.5).
func validField(line []byte) bool {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 || tokenLen(name) != len(name) {
		return false
	}
	for _, c := range value {
		if !fieldByte(c) {
			return false
		}
	}
	return true
}

// clip shortens what an error quotes.
func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
