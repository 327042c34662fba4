package proxy

import (
	"bytes"
	"io"
)

// headGate makes net/http's server apply Config.MaxHeaderBytes exactly, as the fast path does. net/http
// counts the bytes it reads from the connection from the start of a request and answers 431 only past
// MaxHeaderBytes + 4 KiB ("bufio slop"), minus whatever it had already buffered (the h2c preface peek,
// read-ahead, its background read): about 69,632 bytes for a 64 KiB limit. The gate sits between the
// connection and net/http, follows the HTTP/1.1 message framing of the byte stream as net/http reads it
// (heads, Content-Length and chunked bodies, trailers), and counts every request head: request line,
// fields and the empty line that ends them, the same bytes the fast path's readHeaderBlock counts.
// Once a head passes the limit, net/http gets its first limit bytes followed by an endless field value
// instead of the rest, so it hits its own read limit and answers 431 itself, in order after any earlier
// response of the connection. Bytes are never held back: each Read returns what the connection gave.
// Whatever the gate does not follow (the h2c preface, CONNECT, Upgrade, a transfer coding other than
// chunked, a malformed head or chunk) turns it off for the rest of the connection; net/http then
// answers as it always did.
type headGate struct {
	src   io.Reader
	limit int
	state gateState
	buf   []byte // the current head (gateHead) or chunk line (chunk-size, chunk end, trailer)
	line  int    // start in buf of the current line (gateHead)
	left  int64  // body or chunk bytes left
}

type gateState uint8

const (
	gateHead      gateState = iota // reading a request head
	gateBody                       // a Content-Length body
	gateChunkSize                  // a chunk-size line
	gateChunkData                  // chunk data
	gateChunkEnd                   // the CRLF after chunk data
	gateTrailer                    // trailer lines up to the empty line
	gateOff                        // not followed: bytes pass untouched
	gateFill                       // a head passed the limit: net/http gets filler until its limit trips
)

// gateFiller is what net/http reads after a head passed the limit: a field value that never ends.
const gateFiller = 'x'

func newHeadGate(src io.Reader, limit int) *headGate {
	return &headGate{src: src, limit: limit}
}

// Read reads from the connection and advances the framing over the bytes it returns.
func (g *headGate) Read(p []byte) (int, error) {
	switch g.state {
	case gateOff:
		return g.src.Read(p)
	case gateFill:
		for i := range p {
			p[i] = gateFiller
		}
		return len(p), nil
	}
	n, err := g.src.Read(p)
	if keep := g.scan(p[:n]); keep < n {
		// A head passed the limit within these bytes: net/http gets the head's first limit bytes, then
		// filler; the connection's remaining bytes are never read.
		for i := keep; i < n; i++ {
			p[i] = gateFiller
		}
		return n, nil
	}
	return n, err
}

// scan advances the framing over b; it returns len(b), or the number of bytes to keep when a head passed
// the limit (the state is then gateFill).
func (g *headGate) scan(b []byte) int {
	i := 0
	for i < len(b) {
		switch g.state {
		case gateOff, gateFill:
			return len(b)
		case gateHead:
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j + 1
			}
			if room := g.limit - len(g.buf); end-i > room {
				g.state, g.buf = gateFill, nil
				return i + room
			}
			g.buf = append(g.buf, b[i:end]...)
			i = end
			if j < 0 {
				continue
			}
			if l := g.buf[g.line:]; len(l) == 1 || (len(l) == 2 && l[0] == '\r') {
				if g.line == 0 {
					// Empty lines before a request line (net/http skips a few after a POST, else
					// refuses them) are not part of a head.
					g.buf = g.buf[:0]
					continue
				}
				g.headDone()
				continue
			}
			g.line = len(g.buf)
		case gateBody, gateChunkData:
			k := int(min(g.left, int64(len(b)-i)))
			g.left -= int64(k)
			i += k
			if g.left == 0 {
				if g.state == gateBody {
					g.state = gateHead
				} else {
					g.state = gateChunkEnd
				}
			}
		default: // chunk-size, chunk end and trailer lines
			j := bytes.IndexByte(b[i:], '\n')
			end := len(b)
			if j >= 0 {
				end = i + j + 1
			}
			if len(g.buf)+end-i > maxChunkLine {
				g.off()
				return len(b)
			}
			g.buf = append(g.buf, b[i:end]...)
			i = end
			if j >= 0 {
				g.lineDone()
			}
		}
	}
	return len(b)
}

func (g *headGate) off() {
	g.state, g.buf = gateOff, nil
}

// lineDone handles a complete chunk-size, chunk-end or trailer line in g.buf.
func (g *headGate) lineDone() {
	l := g.buf
	g.buf = g.buf[:0]
	if len(l) < 2 || l[len(l)-2] != '\r' { // net/http refuses a bare LF in chunked bodies
		g.off()
		return
	}
	switch g.state {
	case gateChunkSize:
		n, err := parseChunkSize(l)
		switch {
		case err != nil:
			g.off()
		case n == 0:
			g.state = gateTrailer
		default:
			g.state, g.left = gateChunkData, n
		}
	case gateChunkEnd:
		if len(l) != 2 {
			g.off()
			return
		}
		g.state = gateChunkSize
	case gateTrailer:
		if len(l) == 2 {
			g.state = gateHead
		}
	}
}

// headDone reads the framing of the complete head in g.buf and moves to its body (or the next head).
func (g *headGate) headDone() {
	head := g.buf
	g.buf, g.line = g.buf[:0], 0
	if cap(g.buf) > 4<<10 {
		g.buf = nil // a large head's buffer is not kept for the connection's life
	}
	line, rest := nextLine(head)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		g.off()
		return
	}
	if m := line[:sp]; string(m) == "PRI" || string(m) == "CONNECT" {
		g.off()
		return
	}
	var cl int64 = -1
	chunked := false
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		name, value, ok := splitField(line)
		if !ok {
			g.off()
			return
		}
		switch {
		case eqFold(name, "content-length"):
			n, ok := parseContentLength(value)
			if !ok || (cl >= 0 && n != cl) {
				g.off()
				return
			}
			cl = n
		case eqFold(name, "transfer-encoding"):
			if chunked || !eqFold(value, "chunked") {
				g.off()
				return
			}
			chunked = true
		case eqFold(name, "upgrade"):
			g.off()
			return
		}
	}
	switch {
	case chunked && cl >= 0:
		g.off()
	case chunked:
		g.state = gateChunkSize
	case cl > 0:
		g.state, g.left = gateBody, cl
	default:
		g.state = gateHead
	}
}
