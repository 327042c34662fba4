package routingkey

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// MaxKeyLen is the maximum length of a routing key (a DNS label).
const MaxKeyLen = 63

// ErrInvalidKey is wrapped by [Validate] for a value that is not a routing key.
var ErrInvalidKey = errors.New("invalid routing key")

// keyChar[c] is 1 for [a-z0-9], 2 for '-'.
var keyChar = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	t['-'] = 2
	return t
}()

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns a new random routing key: 16 characters of lowercase base32
// (a-z, 2-7) encoding 80 bits from crypto/rand. It is a valid DNS label.
func New() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead).
	return keyEncoding.EncodeToString(b[:])
}

// validKey reports whether s matches ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$.
func validKey(s string) bool {
	n := len(s)
	if n == 0 || n > MaxKeyLen || keyChar[s[0]] != 1 || keyChar[s[n-1]] != 1 {
		return false
	}
	for i := 1; i < n-1; i++ {
		if keyChar[s[i]] == 0 {
			return false
		}
	}
	return true
}

// Validate returns nil if key is a valid routing key: 1 to 63 characters of
// lowercase letters, digits and '-', starting and ending with a letter or
// digit (^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$). Otherwise the error wraps
// [ErrInvalidKey].
func Validate(key string) error {
	if validKey(key) {
		return nil
	}
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidKey, len(key), MaxKeyLen)
	case strings.HasPrefix(key, "-") || strings.HasSuffix(key, "-"):
		return fmt.Errorf("%w %q: must start and end with a lowercase letter or digit", ErrInvalidKey, key)
	default:
		return fmt.Errorf("%w %q: only lowercase letters, digits and '-' allowed", ErrInvalidKey, key)
	}
}
