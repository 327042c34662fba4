package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fsStore keeps each blob as one file dir/<key>: the data followed by a JSON
// trailer (size, content type, SHA-256), the trailer's length (4 bytes, big
// endian) and fsMagic. Writing one file and renaming it into place makes a
// Put atomic, data and metadata together.
type fsStore struct {
	dir string
	opt options
}

const fsMagic = "SMA1"

type fsTrailer struct {
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
	SHA256      string `json:"sha256"`
}

// NewFS returns a Store keeping blobs under dir (created 0700 when missing).
func NewFS(dir string, opts ...Option) (Store, error) {
	if dir == "" {
		return nil, errors.New("artifacts: file store folder is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: file store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("artifacts: file store %s: %w", abs, err)
	}
	return &fsStore{dir: abs, opt: buildOptions(opts)}, nil
}

func (s *fsStore) path(key string) string { return filepath.Join(s.dir, filepath.FromSlash(key)) }

func (s *fsStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error) {
	if err := checkKey(key, false); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	if contentType == "" {
		contentType = DefaultContentType
	}
	if size > s.opt.maxBytes {
		return Info{}, fmt.Errorf("artifact %s: %w: %d bytes (at most %d)", key, ErrTooLarge, size, s.opt.maxBytes)
	}
	dst := s.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	info, err := copyLimited(ctx, tmp, r, size, s.opt.maxBytes)
	if err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	info.ContentType = contentType
	tr, _ := json.Marshal(fsTrailer{Size: info.Size, ContentType: info.ContentType, SHA256: info.SHA256})
	tail := binary.BigEndian.AppendUint32(tr, uint32(len(tr)))
	tail = append(tail, fsMagic...)
	if _, err := tmp.Write(tail); err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	ok = true
	return info, nil
}

// copyLimited copies r into w, hashing it, refusing more than size (when >=
// 0) or max bytes and fewer than size.
func copyLimited(ctx context.Context, w io.Writer, r io.Reader, size, max int64) (Info, error) {
	limit := max
	if size >= 0 && size < limit {
		limit = size
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(ctxReader{ctx, r}, limit+1))
	if err != nil {
		return Info{}, err
	}
	switch {
	case n > limit && limit == max:
		return Info{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	case n > limit:
		return Info{}, fmt.Errorf("%w: more than the announced %d bytes", ErrTooLarge, size)
	case size >= 0 && n < size:
		return Info{}, fmt.Errorf("%w: %d of %d bytes", ErrShortBody, n, size)
	}
	return Info{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *fsStore) open(key string) (*os.File, Info, error) {
	if err := checkKey(key, false); err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(s.path(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
		return nil, Info{}, fmt.Errorf("artifact %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	info, err := readTrailer(f)
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("artifact %s: %w", key, err)
	}
	return f, info, nil
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

func readTrailer(f *os.File) (Info, error) {
	st, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	if st.IsDir() {
		return Info{}, ErrNotFound
	}
	end := st.Size()
	var foot [8]byte
	if end < 8 {
		return Info{}, errors.New("corrupt blob file (no trailer)")
	}
	if _, err := f.ReadAt(foot[:], end-8); err != nil {
		return Info{}, fmt.Errorf("read trailer: %w", err)
	}
	if string(foot[4:]) != fsMagic {
		return Info{}, errors.New("corrupt blob file (bad magic)")
	}
	n := int64(binary.BigEndian.Uint32(foot[:4]))
	if n > 4096 || n > end-8 {
		return Info{}, errors.New("corrupt blob file (bad trailer length)")
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, end-8-n); err != nil {
		return Info{}, fmt.Errorf("read trailer: %w", err)
	}
	var t fsTrailer
	if err := json.Unmarshal(buf, &t); err != nil {
		return Info{}, fmt.Errorf("corrupt blob file trailer: %w", err)
	}
	if t.Size != end-8-n {
		return Info{}, fmt.Errorf("corrupt blob file (trailer says %d bytes, file holds %d)", t.Size, end-8-n)
	}
	return Info{Size: t.Size, ContentType: t.ContentType, SHA256: t.SHA256}, nil
}

func (s *fsStore) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	f, info, err := s.open(key)
	if err != nil {
		return nil, Info{}, err
	}
	return &sectionCloser{SectionReader: io.NewSectionReader(f, 0, info.Size), f: f}, info, nil
}

type sectionCloser struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionCloser) Close() error { return s.f.Close() }

func (s *fsStore) Stat(ctx context.Context, key string) (Info, error) {
	f, info, err := s.open(key)
	if err != nil {
		return Info{}, err
	}
	f.Close()
	return info, nil
}

func (s *fsStore) Delete(ctx context.Context, prefix string) error {
	if err := checkKey(prefix, true); err != nil {
		return err
	}
	if err := os.RemoveAll(s.path(prefix)); err != nil {
		return fmt.Errorf("artifacts %s: %w", prefix, err)
	}
	return nil
}
