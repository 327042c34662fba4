package localtunnel

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Identity is a machine's key pair. Its public key names the machine.
type Identity struct {
	priv ed25519.PrivateKey
}

// machineIDEncoding is lowercase base32 without padding: IDs are DNS labels.
var machineIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// MachineIDLen is the length of a machine ID.
const MachineIDLen = 16

// GenerateIdentity returns a new random identity.
func GenerateIdentity() (*Identity, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate machine key: %w", err)
	}
	return &Identity{priv: priv}, nil
}

// PublicKey returns the identity's public key.
func (i *Identity) PublicKey() ed25519.PublicKey { return i.priv.Public().(ed25519.PublicKey) }

// MachineID returns the identity's machine ID (MachineIDFor its public key).
func (i *Identity) MachineID() string { return MachineIDFor(i.PublicKey()) }

// MachineIDFor is the machine ID of a public key: the first 80 bits of its
// SHA-256 in lowercase base32 (16 characters, a valid DNS label). It is what
// a sandbox's localMachineID holds.
func MachineIDFor(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return machineIDEncoding.EncodeToString(sum[:10])
}

// ValidMachineID reports whether s has the shape of a machine ID.
func ValidMachineID(s string) error {
	if len(s) != MachineIDLen {
		return fmt.Errorf("machine ID %q: want %d characters, got %d", s, MachineIDLen, len(s))
	}
	if _, err := machineIDEncoding.DecodeString(s); err != nil {
		return fmt.Errorf("machine ID %q: not lowercase base32: %w", s, err)
	}
	return nil
}

const pemType = "PRIVATE KEY"

// MarshalPEM encodes the private key as PKCS#8 PEM.
func (i *Identity) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(i.priv)
	if err != nil {
		return nil, fmt.Errorf("encode machine key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParseIdentity decodes a PKCS#8 PEM ed25519 private key.
func ParseIdentity(b []byte) (*Identity, error) {
	blk, rest := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("machine key: no PEM block")
	}
	if blk.Type != pemType {
		return nil, fmt.Errorf("machine key: PEM block %q, want %q", blk.Type, pemType)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("machine key: data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("machine key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("machine key: %T, want an ed25519 key", k)
	}
	return &Identity{priv: priv}, nil
}

// LoadIdentity reads the key file at path. On Unix it refuses a file that
// group or others may read or write (like ssh does).
func LoadIdentity(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("machine key %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("machine key %s: %w", path, err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("machine key %s: mode %04o lets others read it; want 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	if st.Size() > 4096 {
		return nil, fmt.Errorf("machine key %s: %d bytes, too large for a key", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("machine key %s: %w", path, err)
	}
	id, err := ParseIdentity(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// LoadOrCreateIdentity loads the key file at path, creating it (mode 0600,
// its folder 0700) with a new identity when it does not exist; created says
// which happened.
func LoadOrCreateIdentity(path string) (id *Identity, created bool, err error) {
	id, err = LoadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, false, err
	}
	id, err = GenerateIdentity()
	if err != nil {
		return nil, false, err
	}
	b, err := id.MarshalPEM()
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("machine key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // created concurrently: use that one
			id, err = LoadIdentity(path)
			return id, false, err
		}
		return nil, false, fmt.Errorf("machine key %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("machine key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("machine key %s: %w", path, err)
	}
	return id, true, nil
}
