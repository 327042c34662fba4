package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
)

// This file holds the HTTP/1.1 wire parsers of the fast path (h1fast.go). They are strict: anything they
// do not fully understand makes the fast path hand the connection to net/http, which then answers it
// (400, 431, 100-continue, upgrades...). They never allocate for a well-formed request.

var (
	errHeaderTooLarge = errors.New("header block too large")
	errBadChunk       = errors.New("malformed chunked encoding")
	errBadResponse    = errors.New("malformed upstream response")
)

// readHeaderBlock appends one header block (start line, fields, empty line) read from br to dst. It
// returns errHeaderTooLarge, with what was read so far, once the block exceeds limit bytes.
func readHeaderBlock(br *bufio.Reader, dst []byte, limit int) ([]byte, error) {
	start := len(dst)
	partial := false // the previous read ended inside a line
	for {
		line, err := br.ReadSlice('\n')
		dst = append(dst, line...)
		if len(dst)-start > limit {
			return dst, errHeaderTooLarge
		}
		switch {
		case err == bufio.ErrBufferFull:
			partial = true
			continue
		case err != nil:
			if err == io.EOF && len(dst) > start {
				err = io.ErrUnexpectedEOF
			}
			return dst, err
		}
		// A complete line; an empty one (CRLF or a bare LF, as net/http accepts) ends the block. An empty
		// line before the start line also ends it: the parser refuses that block and net/http decides.
		if !partial && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return dst, nil
		}
		partial = false
	}
}

// hfield is one header field; name and value point into the header block.
type hfield struct {
	name, value []byte
	skip        bool  // not forwarded (hop-by-hop, proxy headers, Connection-named)
	key         int32 // 1 + index of the routing-key header this is (0: none)
}

// fastReq is a parsed request head.
type fastReq struct {
	method, target []byte
	fields         []hfield
	host           []byte
	contentLength  int64 // -1: none
	chunked        bool
	closeAfter     bool // Connection: close
	teTrailers     bool // TE: trailers
	ownHop         bool // the hop header names this sidecar's workload
	hopValue       string
	captureOn      bool // capture is on: a request with a capture id goes to net/http
	keyFields      int  // fields that may carry a routing key
	requestID      []byte
	// indexes into fields of the client's proxy headers (kept only from trusted peers)
	xff, xfh, xfp, fwd []int
}

func (r *fastReq) reset() {
	fields, xff, xfh, xfp, fwd := r.fields[:0], r.xff[:0], r.xfh[:0], r.xfp[:0], r.fwd[:0]
	hop, capOn := r.hopValue, r.captureOn
	*r = fastReq{fields: fields, xff: xff, xfh: xfh, xfp: xfp, fwd: fwd, contentLength: -1, hopValue: hop, captureOn: capOn}
}

// tchar reports the token characters of RFC 9110 §5.6.2.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-32] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// validValue reports a field value without control characters (HTAB allowed), as net/http requires.
func validValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports a Host value net/http would accept (httpguts.ValidHostHeader's character set).
func validHost(b []byte) bool {
	for _, c := range b {
		if !hostChar[c] {
			return false
		}
	}
	return true
}

var hostChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = tchar[c] || c >= 0x80
	}
	for _, c := range "!$&'()*+,;=:[]<>\"%" {
		t[c] = true
	}
	return t
}()

// eqFold compares b with the lowercase ASCII string s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextLine splits the first line (without its CRLF or LF) off b.
func nextLine(b []byte) (line, rest []byte) {
	for i, c := range b {
		if c == '\n' {
			line = b[:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			return line, b[i+1:]
		}
	}
	return b, nil
}

// forEachToken calls f with every comma-separated, trimmed, non-empty element of v.
func forEachToken(v []byte, f func([]byte)) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if t := trimOWS(v[:i]); len(t) > 0 {
			f(t)
		}
		if i == len(v) {
			return
		}
		v = v[i+1:]
	}
}

// parseContentLength parses a Content-Length value (digits only, no sign, bounded).
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseRequest parses a request head for the fast path. keyHeader gives the index of a header name that
// may carry a routing key (-1: none), remembered in the field. It returns false for anything the fast path leaves to net/http: other versions,
// CONNECT, absolute-form targets, upgrades, Expect, unusual framing, a missing or repeated Host, every
// malformed line, and (capture on) a request that may carry a capture id.
func parseRequest(block []byte, r *fastReq, keyHeader func([]byte) int) bool {
	line, rest := nextLine(block)
	sp1 := -1
	for i, c := range line {
		if c == ' ' {
			sp1 = i
			break
		}
	}
	if sp1 <= 0 || len(line) < sp1+2+9 {
		return false
	}
	r.method = line[:sp1]
	if !isToken(r.method) || string(r.method) == "CONNECT" || string(r.method) == "PRI" {
		return false
	}
	if string(line[len(line)-9:]) != " HTTP/1.1" {
		return false
	}
	r.target = line[sp1+1 : len(line)-9]
	if len(r.target) == 0 || r.target[0] != '/' {
		return false
	}
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	hosts, cls, tes := 0, 0, 0
	var conn [4][]byte
	nconn := 0
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, ok := splitField(line)
		if !ok {
			return false
		}
		f := hfield{name: name, value: value}
		switch len(name) {
		case 2:
			if eqFold(name, "te") {
				f.skip = true
				forEachToken(value, func(t []byte) {
					if eqFold(t, "trailers") {
						r.teTrailers = true
					}
				})
			}
		case 4:
			if eqFold(name, "host") {
				hosts++
				r.host = value
			}
		case 6:
			if eqFold(name, "expect") {
				return false
			}
		case 7:
			if eqFold(name, "upgrade") {
				return false
			}
			f.skip = eqFold(name, "trailer")
			if r.captureOn && !f.skip && eqFold(name, "baggage") && capture.MaybeBaggageID(value) {
				return false // may carry a capture id: recorded on the net/http path
			}
		case 9:
			if eqFold(name, "forwarded") {
				f.skip = true
				r.fwd = append(r.fwd, len(r.fields))
			}
		case 10:
			switch {
			case eqFold(name, "connection"):
				f.skip = true
				if nconn == len(conn) {
					return false
				}
				conn[nconn] = value
				nconn++
			case eqFold(name, "keep-alive"):
				f.skip = true
			}
		case 12:
			if eqFold(name, "x-request-id") {
				r.requestID = value
			}
		case 14:
			if eqFold(name, "content-length") {
				cls++
				n, ok := parseContentLength(value)
				if !ok {
					return false
				}
				r.contentLength = n
			}
		case 15:
			if eqFold(name, "x-forwarded-for") {
				f.skip = true
				r.xff = append(r.xff, len(r.fields))
			}
		case 16:
			switch {
			case eqFold(name, "proxy-connection"):
				f.skip = true
			case eqFold(name, "x-forwarded-host"):
				f.skip = true
				r.xfh = append(r.xfh, len(r.fields))
			}
		case 17:
			switch {
			case eqFold(name, "transfer-encoding"):
				tes++
				if !eqFold(value, "chunked") {
					return false
				}
				f.skip, r.chunked = true, true
			case eqFold(name, "x-forwarded-proto"):
				f.skip = true
				r.xfp = append(r.xfp, len(r.fields))
			case eqFold(name, "x-sandboxmesh-hop"):
				f.skip = true
				if string(value) == r.hopValue {
					r.ownHop = true
				}
			}
		case 18:
			f.skip = f.skip || eqFold(name, "proxy-authenticate")
		case 21:
			if r.captureOn && eqFold(name, "x-sandboxmesh-capture") {
				return false // a capture id: recorded on the net/http path
			}
		case 19:
			f.skip = f.skip || eqFold(name, "proxy-authorization")
		}
		if !f.skip {
			if k := keyHeader(name); k >= 0 {
				f.key = int32(k) + 1
				r.keyFields++
			}
		}
		r.fields = append(r.fields, f)
	}
	if hosts != 1 || !validHost(r.host) || cls > 1 || tes > 1 || (cls == 1 && tes == 1) {
		return false
	}
	for _, v := range conn[:nconn] {
		ok := true
		forEachToken(v, func(t []byte) {
			switch {
			case eqFold(t, "close"):
				r.closeAfter = true
			case eqFold(t, "keep-alive"):
			case eqFold(t, "upgrade"):
				ok = false
			default:
				skipNamed(r.fields, t)
			}
		})
		if !ok {
			return false
		}
	}
	return true
}

// splitField splits a header field line (without its line end) into a token name and a value without
// surrounding whitespace; ok is false for a malformed line (no colon, a name that is not a token, control
// characters in the value).
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name, value = line[:colon], trimOWS(line[colon+1:])
	return name, value, isToken(name) && validValue(value)
}

// skipNamed marks the fields a Connection header names (hop-by-hop by declaration).
func skipNamed(fields []hfield, name []byte) {
	for i := range fields {
		if bytes.EqualFold(fields[i].name, name) {
			fields[i].skip = true
		}
	}
}

// fastResp is a parsed upstream response head.
type fastResp struct {
	status        int
	reason        []byte
	fields        []hfield
	contentLength int64 // -1: none
	chunked       bool
	closeAfter    bool // Connection: close, or an HTTP/1.0 response
}

// parseResponse parses an upstream response head.
func parseResponse(block []byte, r *fastResp) error {
	fields := r.fields[:0]
	*r = fastResp{fields: fields, contentLength: -1}
	line, rest := nextLine(block)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '1' && line[7] != '0') || line[8] != ' ' {
		return errBadResponse
	}
	http10 := line[7] == '0'
	r.closeAfter = http10
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return errBadResponse
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if r.status < 100 {
		return errBadResponse
	}
	if len(line) > 12 {
		if line[12] != ' ' {
			return errBadResponse
		}
		r.reason = line[13:]
	}
	if !validValue(r.reason) {
		return errBadResponse
	}
	cls, tes := 0, 0
	var conn [4][]byte
	nconn := 0
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, ok := splitField(line)
		if !ok {
			return errBadResponse
		}
		f := hfield{name: name, value: value}
		switch len(name) {
		case 2:
			f.skip = eqFold(name, "te")
		case 7:
			f.skip = eqFold(name, "upgrade")
		case 10:
			switch {
			case eqFold(name, "connection"):
				f.skip = true
				if nconn == len(conn) {
					return errBadResponse
				}
				conn[nconn] = value
				nconn++
			case eqFold(name, "keep-alive"):
				f.skip = true
			}
		case 14:
			if eqFold(name, "content-length") {
				n, ok := parseContentLength(value)
				if !ok || (cls > 0 && n != r.contentLength) {
					return errBadResponse
				}
				cls++
				r.contentLength = n
				f.skip = cls > 1 // repeated identical values collapse into one
			}
		case 16:
			f.skip = eqFold(name, "proxy-connection")
		case 17:
			if eqFold(name, "transfer-encoding") {
				tes++
				if !eqFold(value, "chunked") {
					return errBadResponse
				}
				r.chunked = true
			}
		}
		fields = append(fields, f)
	}
	r.fields = fields
	if tes > 1 || (tes == 1 && (cls > 0 || http10)) { // net/http ignores chunked in HTTP/1.0
		return errBadResponse
	}
	for _, v := range conn[:nconn] {
		forEachToken(v, func(t []byte) {
			switch {
			case eqFold(t, "close"):
				r.closeAfter = true
			case eqFold(t, "keep-alive"):
			default:
				skipNamed(r.fields, t)
			}
		})
	}
	return nil
}

// maxChunkLine bounds a chunk-size line (with extensions) and each trailer line.
const maxChunkLine = 4 << 10

// readLine reads one CRLF-terminated line (net/http refuses a bare LF in chunked bodies) of at most
// maxChunkLine bytes; it is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && (len(line) > maxChunkLine || len(line) < 2 || line[len(line)-2] != '\r')) {
		return nil, errBadChunk
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return line, err
}

// parseChunkSize parses a chunk-size line: hex digits, then optional extensions, then CRLF.
func parseChunkSize(line []byte) (int64, error) {
	line, _ = nextLine(line)
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, errBadChunk
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, errBadChunk
	}
	rest := trimOWS(line[i:])
	if len(rest) > 0 && (rest[0] != ';' || !validValue(rest)) {
		return 0, errBadChunk
	}
	return n, nil
}

// relayChunked copies one chunked body from src to dst, re-framing each chunk (extensions are dropped)
// and relaying trailer fields that are well-formed. flush is called before every read that may block,
// so that a streamed body is never held back.
func relayChunked(dst *bufio.Writer, src *bufio.Reader, buf []byte, flush func() error) (int64, error) {
	var total int64
	var hexbuf [20]byte
	for {
		if src.Buffered() == 0 {
			if err := flush(); err != nil {
				return total, err
			}
		}
		line, err := readLine(src)
		if err != nil {
			return total, err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return total, err
		}
		if size == 0 {
			if _, err := dst.WriteString("0\r\n"); err != nil {
				return total, err
			}
			for trailer := 0; ; trailer++ {
				if src.Buffered() == 0 {
					if err := flush(); err != nil {
						return total, err
					}
				}
				line, err := readLine(src)
				if err != nil {
					return total, err
				}
				l, _ := nextLine(line)
				if len(l) == 0 {
					_, err = dst.WriteString("\r\n")
					return total, err
				}
				if _, _, ok := splitField(l); !ok || trailer >= 64 {
					return total, errBadChunk
				}
				_, _ = dst.Write(l)
				_, _ = dst.WriteString("\r\n")
			}
		}
		_, _ = dst.Write(strconv.AppendInt(hexbuf[:0], size, 16))
		_, _ = dst.WriteString("\r\n")
		if err := copyN(dst, src, size, buf, flush); err != nil {
			return total, err
		}
		total += size
		line, err = readLine(src)
		if err != nil {
			return total, err
		}
		if l, _ := nextLine(line); len(l) != 0 {
			return total, errBadChunk
		}
		if _, err := dst.WriteString("\r\n"); err != nil {
			return total, err
		}
	}
}

// copyN copies exactly n bytes from src to dst, calling flush before a read that may block. Big bodies
// bypass both buffers (buf is the copy buffer).
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64, buf []byte, flush func() error) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		m := int64(len(buf))
		if m > n {
			m = n
		}
		k, err := src.Read(buf[:m])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if err != nil {
			if n > 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			return nil
		}
	}
	return nil
}

// copyChunkedUntilEOF reads src to its end and writes it to dst as a chunked body (an upstream
// response delimited by the connection's close, relayed to a keep-alive client).
func copyChunkedUntilEOF(dst *bufio.Writer, src *bufio.Reader, buf []byte, flush func() error) error {
	var hexbuf [20]byte
	for {
		if src.Buffered() == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		k, err := src.Read(buf)
		if k > 0 {
			_, _ = dst.Write(strconv.AppendInt(hexbuf[:0], int64(k), 16))
			_, _ = dst.WriteString("\r\n")
			_, _ = dst.Write(buf[:k])
			if _, werr := dst.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			_, err = dst.WriteString("0\r\n\r\n")
			return err
		}
		if err != nil {
			return err
		}
	}
}

// bodyless reports responses that never have a body (RFC 9112 §6.3).
func bodyless(method []byte, status int) bool {
	return status/100 == 1 || status == http.StatusNoContent || status == http.StatusNotModified || string(method) == "HEAD"
}
