// Package artifacts owns the blob storage of job artifacts: the files a job
// names in uploadArtifact (user space) and its stdout/stderr (system space).
// A Store keeps blobs by key (see Key) with their size, content type and
// SHA-256; NewFS keeps them in a local folder (the default), NewS3 in an
// S3-compatible object store, and Open picks one from a URL. Metadata rows
// (which artifacts a job has, their user metadata) live in the database, not
// here.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Info describes a stored blob.
type Info struct {
	// Size is the blob's length in bytes.
	Size int64
	// ContentType is the type given to Put ("application/octet-stream" when
	// none was given).
	ContentType string
	// SHA256 is the hex SHA-256 of the blob, computed while it was written.
	SHA256 string
}

// Store keeps artifact blobs by key. Implementations are safe for concurrent
// use; a Put that fails leaves nothing behind and an existing blob under the
// same key unchanged.
type Store interface {
	// Put stores r under key. size is the exact length of r, or -1 when
	// unknown; a body longer than size or than the store's maximum fails with
	// ErrTooLarge, a shorter one with ErrShortBody.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error)
	// Get opens the blob of key; the caller closes it. A missing blob is
	// ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes the blob of key; a missing blob is ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes every blob whose key starts with prefix, which must be
	// a folder of keys ("org/job/", see Prefix); nothing to delete is not an
	// error.
	Delete(ctx context.Context, prefix string) error
}

// Errors of Store operations (wrapped with the key).
var (
	ErrNotFound  = errors.New("artifact not found")
	ErrTooLarge  = errors.New("artifact too large")
	ErrShortBody = errors.New("artifact body shorter than its announced size")
	ErrBadKey    = errors.New("invalid artifact key")
)

// Spaces of a job attempt's artifacts.
const (
	// SpaceUser holds the files the job named in uploadArtifact.
	SpaceUser = "user"
	// SpaceSystem holds the attempt's stdout and stderr.
	SpaceSystem = "system"
)

// DefaultContentType is the content type of a blob stored without one.
const DefaultContentType = "application/octet-stream"

// DefaultMaxBytes is the largest blob a store accepts unless MaxBytes says
// otherwise (the control plane's --max-artifact-bytes default).
const DefaultMaxBytes int64 = 100 << 20

// maxEscapedBytes bounds one escaped key segment (an org or job name): one
// file name, at most 255 bytes on common file systems.
const maxEscapedBytes = 255

// Option configures a store.
type Option func(*options)

type options struct {
	maxBytes int64
}

// MaxBytes sets the largest blob a store accepts (n <= 0: DefaultMaxBytes).
func MaxBytes(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.maxBytes = n
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{maxBytes: DefaultMaxBytes}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Key returns the storage key of one artifact:
// org/job/attempt/space/<hex SHA-256 of path>. org and job are escaped into
// one segment each, and the path (checked by apitypes.ParseArtifactPath) is
// hashed, so no artifact path reaches a backend and every key of a job stays
// under its Prefix whatever the names hold. space is SpaceUser or SpaceSystem.
func Key(org, job string, attempt int64, space, path string) (string, error) {
	prefix, err := Prefix(org, job)
	if err != nil {
		return "", err
	}
	if attempt < 0 {
		return "", fmt.Errorf("%w: attempt %d is negative", ErrBadKey, attempt)
	}
	if space != SpaceUser && space != SpaceSystem {
		return "", fmt.Errorf("%w: space %q is not %q or %q", ErrBadKey, space, SpaceUser, SpaceSystem)
	}
	if _, err := apitypes.ParseArtifactPath(path); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	h := sha256.Sum256([]byte(path))
	return prefix + strconv.FormatInt(attempt, 10) + "/" + space + "/" + hex.EncodeToString(h[:]), nil
}

// Prefix returns the key folder of every artifact of one job ("org/job/"),
// the argument of Store.Delete when the job is deleted.
func Prefix(org, job string) (string, error) {
	o, err := segment("org", org)
	if err != nil {
		return "", err
	}
	j, err := segment("job", job)
	if err != nil {
		return "", err
	}
	return o + "/" + j + "/", nil
}

// segment escapes s into one key segment: no "/", never "." or "..", never a
// leading "." (file stores keep their temporary files there).
func segment(field, s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrBadKey, field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", fmt.Errorf("%w: %s %q holds NUL", ErrBadKey, field, s)
	}
	e := url.PathEscape(s)
	if e[0] == '.' {
		e = "%2E" + e[1:]
	}
	if len(e) > maxEscapedBytes {
		return "", fmt.Errorf("%w: %s is %d bytes long once escaped (at most %d)", ErrBadKey, field, len(e), maxEscapedBytes)
	}
	return e, nil
}

// checkKey refuses a key that Key or Prefix could not have made: empty, with
// empty, "." or ".." segments, a leading "/", NUL or a backslash. folder says
// whether key is a Prefix (ends with "/").
func checkKey(key string, folder bool) error {
	k := key
	if folder {
		if !strings.HasSuffix(k, "/") {
			return fmt.Errorf("%w: prefix %q does not end with /", ErrBadKey, key)
		}
		k = strings.TrimSuffix(k, "/")
	}
	if k == "" {
		return fmt.Errorf("%w: key is empty", ErrBadKey)
	}
	if strings.ContainsAny(k, "\x00\\") {
		return fmt.Errorf("%w: key %q holds NUL or a backslash", ErrBadKey, key)
	}
	for _, s := range strings.Split(k, "/") {
		if s == "" || s[0] == '.' {
			return fmt.Errorf("%w: key %q has an empty or dot segment", ErrBadKey, key)
		}
	}
	return nil
}
