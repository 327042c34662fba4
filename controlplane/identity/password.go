package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters of a password hash.
type Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// KeyLen is the length of the derived key in bytes.
	KeyLen uint32
}

// DefaultParams are OWASP's recommended minimum for argon2id (19 MiB, 2
// passes, 1 thread), with a 32-byte key.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32}

// Bounds of a parsed hash: a stored hash with larger parameters is refused
// rather than run (it would take the server's memory or time).
const (
	maxMemory  = 1 << 21 // KiB: 2 GiB
	maxTime    = 64
	maxThreads = 64
	saltLen    = 16
	minKeyLen  = 16
	maxKeyLen  = 128
	maxPHCLen  = 512
)

// ErrBadHash means a stored password hash is not an argon2id PHC string
// this package can verify.
var ErrBadHash = errors.New("malformed password hash")

var b64 = base64.RawStdEncoding

// HashPassword hashes password with argon2id and a random salt, as a PHC
// string: $argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<key>.
func HashPassword(password string, p Params) (string, error) {
	if p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 || p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen || p.Memory > maxMemory || p.Time > maxTime || p.Threads > maxThreads {
		return "", fmt.Errorf("hash password: invalid argon2id parameters %+v", p)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed argon2id hash.
type phc struct {
	params    Params
	salt, key []byte
}

// parsePHC parses an argon2id PHC string, refusing other algorithms and
// versions, and parameters beyond the bounds above.
func parsePHC(s string) (phc, error) {
	if len(s) > maxPHCLen {
		return phc{}, fmt.Errorf("%w: longer than %d bytes", ErrBadHash, maxPHCLen)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return phc{}, fmt.Errorf("%w: want $argon2id$v=19$m=…,t=…,p=…$salt$key", ErrBadHash)
	}
	if parts[1] != "argon2id" {
		return phc{}, fmt.Errorf("%w: algorithm %q, want argon2id", ErrBadHash, parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("%w: version %q, want v=%d", ErrBadHash, parts[2], argon2.Version)
	}
	var h phc
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return phc{}, fmt.Errorf("%w: parameters %q", ErrBadHash, parts[3])
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return phc{}, fmt.Errorf("%w: parameter %s=%q", ErrBadHash, k, v)
		}
		switch k {
		case "m":
			h.params.Memory = uint32(n)
		case "t":
			h.params.Time = uint32(n)
		case "p":
			if n > maxThreads {
				return phc{}, fmt.Errorf("%w: p=%d above %d", ErrBadHash, n, maxThreads)
			}
			h.params.Threads = uint8(n)
		default:
			return phc{}, fmt.Errorf("%w: unknown parameter %q", ErrBadHash, k)
		}
	}
	p := h.params
	switch {
	case !seen["m"] || !seen["t"] || !seen["p"]:
		return phc{}, fmt.Errorf("%w: want m, t and p", ErrBadHash)
	case p.Threads < 1 || p.Time < 1 || p.Time > maxTime || p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return phc{}, fmt.Errorf("%w: parameters m=%d,t=%d,p=%d out of bounds", ErrBadHash, p.Memory, p.Time, p.Threads)
	}
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 || len(h.salt) > 64 {
		return phc{}, fmt.Errorf("%w: salt", ErrBadHash)
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) < minKeyLen || len(h.key) > maxKeyLen {
		return phc{}, fmt.Errorf("%w: key", ErrBadHash)
	}
	h.params.KeyLen = uint32(len(h.key))
	return h, nil
}

// VerifyPassword checks password against a PHC string in constant time.
// rehash is true when the password is right but the hash was made with
// other parameters than want: the caller stores HashPassword(password, want).
func VerifyPassword(hash, password string, want Params) (ok, rehash bool, err error) {
	h, err := parsePHC(hash)
	if err != nil {
		return false, false, err
	}
	key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.Memory, h.params.Threads, uint32(len(h.key)))
	if subtle.ConstantTimeCompare(key, h.key) != 1 {
		return false, false, nil
	}
	return true, h.params != want, nil
}
