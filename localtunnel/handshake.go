package localtunnel

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ProtocolVersion is the handshake and stream protocol version this package speaks.
const ProtocolVersion = 1

// Handshake frames (all sizes fixed or bounded; big-endian lengths):
//
//	gateway → machine  hello:  "SMLT" version(1) nonce(32)
//	machine → gateway  auth:   "SMLA" version(1) publicKey(32) signature(64) labelLen(1) label(≤64)
//	gateway → machine  result: "SMLR" status(1: 0 accepted, 1 refused) msgLen(1) msg(≤255)
//
// The signature covers signContext, the version byte and the nonce, so it
// proves possession of the key for this connection only. On acceptance msg is
// the machine ID the gateway derived; on refusal it is the reason.
const (
	helloMagic  = "SMLT"
	authMagic   = "SMLA"
	resultMagic = "SMLR"
	nonceLen    = 32
	// MaxLabel is the longest machine label (a display name, e.g. the host name).
	MaxLabel    = 64
	signContext = "sandboxmesh local tunnel handshake\x00"
)

// DefaultHandshakeTimeout bounds a handshake when none is configured.
const DefaultHandshakeTimeout = 10 * time.Second

// ErrHandshake marks a failed handshake (bad frame, bad signature, version
// mismatch, refusal); the message says which.
var ErrHandshake = errors.New("local tunnel handshake failed")

// Peer is a machine as the gateway authenticated it.
type Peer struct {
	MachineID string
	PublicKey ed25519.PublicKey
	// Label is the machine's self-declared display name (unauthenticated).
	Label   string
	Version int
}

type hello struct {
	version byte
	nonce   [nonceLen]byte
}

type auth struct {
	version byte
	pub     [ed25519.PublicKeySize]byte
	sig     [ed25519.SignatureSize]byte
	label   string
}

type result struct {
	ok  bool
	msg string
}

func handshakeErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrHandshake, fmt.Sprintf(format, args...))
}

func readMagic(r io.Reader, want string) error {
	var m [4]byte
	if _, err := io.ReadFull(r, m[:]); err != nil {
		return handshakeErr("read frame: %v", err)
	}
	if string(m[:]) != want {
		return handshakeErr("frame starts with %q, want %q (is the peer a SandboxMesh local tunnel?)", m[:], want)
	}
	return nil
}

func readHello(r io.Reader) (hello, error) {
	var h hello
	if err := readMagic(r, helloMagic); err != nil {
		return h, err
	}
	var b [1 + nonceLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return h, handshakeErr("read hello: %v", err)
	}
	h.version = b[0]
	copy(h.nonce[:], b[1:])
	return h, nil
}

func (h hello) encode() []byte {
	return append(append([]byte(helloMagic), h.version), h.nonce[:]...)
}

func readAuth(r io.Reader) (auth, error) {
	var a auth
	if err := readMagic(r, authMagic); err != nil {
		return a, err
	}
	var b [1 + ed25519.PublicKeySize + ed25519.SignatureSize + 1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return a, handshakeErr("read auth: %v", err)
	}
	a.version = b[0]
	copy(a.pub[:], b[1:])
	copy(a.sig[:], b[1+ed25519.PublicKeySize:])
	n := int(b[len(b)-1])
	if n > MaxLabel {
		return a, handshakeErr("label of %d bytes (limit %d)", n, MaxLabel)
	}
	label := make([]byte, n)
	if _, err := io.ReadFull(r, label); err != nil {
		return a, handshakeErr("read label: %v", err)
	}
	if err := checkLabel(string(label)); err != nil {
		return a, handshakeErr("%v", err)
	}
	a.label = string(label)
	return a, nil
}

func checkLabel(s string) error {
	if len(s) > MaxLabel {
		return fmt.Errorf("label of %d bytes (limit %d)", len(s), MaxLabel)
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return fmt.Errorf("label %q: only printable ASCII without spaces", s)
		}
	}
	return nil
}

func (a auth) encode() []byte {
	b := append([]byte(authMagic), a.version)
	b = append(b, a.pub[:]...)
	b = append(b, a.sig[:]...)
	b = append(b, byte(len(a.label)))
	return append(b, a.label...)
}

func readResult(r io.Reader) (result, error) {
	var res result
	if err := readMagic(r, resultMagic); err != nil {
		return res, err
	}
	var b [2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return res, handshakeErr("read result: %v", err)
	}
	if b[0] > 1 {
		return res, handshakeErr("result status %d", b[0])
	}
	msg := make([]byte, b[1])
	if _, err := io.ReadFull(r, msg); err != nil {
		return res, handshakeErr("read result: %v", err)
	}
	for _, c := range msg {
		if c < 0x20 || c > 0x7e {
			return res, handshakeErr("result message is not printable ASCII")
		}
	}
	res.ok, res.msg = b[0] == 0, string(msg)
	return res, nil
}

func (r result) encode() []byte {
	msg := []byte(r.msg)
	if len(msg) > 255 {
		msg = msg[:255]
	}
	for i, c := range msg {
		if c < 0x20 || c > 0x7e {
			msg[i] = '?'
		}
	}
	st := byte(1)
	if r.ok {
		st = 0
	}
	return append(append([]byte(resultMagic), st, byte(len(msg))), msg...)
}

func signed(version byte, nonce [nonceLen]byte) []byte {
	return append(append([]byte(signContext), version), nonce[:]...)
}

// ServerHandshake runs the gateway side of the handshake on conn within
// timeout (DefaultHandshakeTimeout when 0): it sends a fresh nonce, checks the
// machine's version and signature, asks authorize (nil: everyone with a valid
// signature) and answers. It leaves conn open only on success.
func ServerHandshake(conn net.Conn, timeout time.Duration, authorize func(Peer) error) (Peer, error) {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	fail := func(reason string, err error) (Peer, error) {
		if reason != "" {
			_, _ = conn.Write(result{msg: reason}.encode())
		}
		conn.Close()
		return Peer{}, fmt.Errorf("machine at %s: %w", conn.RemoteAddr(), err)
	}
	h := hello{version: ProtocolVersion}
	if _, err := rand.Read(h.nonce[:]); err != nil {
		return fail("", fmt.Errorf("nonce: %w", err))
	}
	if _, err := conn.Write(h.encode()); err != nil {
		return fail("", handshakeErr("send hello: %v", err))
	}
	a, err := readAuth(conn)
	if err != nil {
		return fail("malformed auth frame", err)
	}
	if a.version != ProtocolVersion {
		err := handshakeErr("machine speaks protocol version %d; this gateway speaks %d", a.version, ProtocolVersion)
		return fail(fmt.Sprintf("unsupported protocol version %d (gateway speaks %d)", a.version, ProtocolVersion), err)
	}
	pub := ed25519.PublicKey(bytes.Clone(a.pub[:]))
	if !ed25519.Verify(pub, signed(a.version, h.nonce), a.sig[:]) {
		return fail("signature does not verify", handshakeErr("signature of key %s does not verify", MachineIDFor(pub)))
	}
	p := Peer{MachineID: MachineIDFor(pub), PublicKey: pub, Label: a.label, Version: int(a.version)}
	if authorize != nil {
		if err := authorize(p); err != nil {
			return fail("machine "+p.MachineID+" not authorized", fmt.Errorf("%w: machine %s not authorized: %w", ErrHandshake, p.MachineID, err))
		}
	}
	if _, err := conn.Write(result{ok: true, msg: p.MachineID}.encode()); err != nil {
		return fail("", handshakeErr("send result: %v", err))
	}
	_ = conn.SetDeadline(time.Time{})
	return p, nil
}

// ClientHandshake runs the machine side on conn within timeout
// (DefaultHandshakeTimeout when 0) and returns the machine ID the gateway
// derived. It closes conn on failure.
func ClientHandshake(conn net.Conn, id *Identity, label string, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if err := checkLabel(label); err != nil {
		conn.Close()
		return "", handshakeErr("%v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	fail := func(err error) (string, error) {
		conn.Close()
		return "", err
	}
	h, err := readHello(conn)
	if err != nil {
		return fail(err)
	}
	if h.version != ProtocolVersion {
		return fail(handshakeErr("gateway speaks protocol version %d; this machine speaks %d (upgrade the older side)", h.version, ProtocolVersion))
	}
	a := auth{version: ProtocolVersion, label: label}
	copy(a.pub[:], id.PublicKey())
	copy(a.sig[:], ed25519.Sign(id.priv, signed(a.version, h.nonce)))
	if _, err := conn.Write(a.encode()); err != nil {
		return fail(handshakeErr("send auth: %v", err))
	}
	res, err := readResult(conn)
	if err != nil {
		return fail(err)
	}
	if !res.ok {
		return fail(handshakeErr("gateway refused: %s", res.msg))
	}
	if res.msg != id.MachineID() {
		return fail(handshakeErr("gateway derived machine ID %q, want %q", res.msg, id.MachineID()))
	}
	_ = conn.SetDeadline(time.Time{})
	return res.msg, nil
}
