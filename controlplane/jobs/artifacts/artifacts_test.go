package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

const testMax = 1 << 20

// TestFSConformance runs the Store conformance test on a folder.
func TestFSConformance(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFS(dir, MaxBytes(testMax))
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s, func(t *testing.T) []string {
		var left []string
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				left = append(left, strings.TrimPrefix(p, dir+"/"))
			}
			return nil
		})
		return left
	})
}

// TestS3Conformance runs the Store conformance test against a real S3 HTTP
// server on loopback (gofakes3 with its in-memory backend), through Open.
func TestS3Conformance(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket("artifacts"); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Setenv(EnvAccessKey, "test-access")
	t.Setenv(EnvSecretKey, "test-secret")
	s, err := Open("s3://artifacts/pre/fix?endpoint="+ln.Addr().String()+"&region=us-east-1&secure=false", MaxBytes(testMax))
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s, func(t *testing.T) []string {
		res, err := backend.ListBucket("artifacts", nil, gofakes3.ListBucketPage{})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, c := range res.Contents {
			if !strings.HasPrefix(c.Key, "pre/fix/") {
				t.Errorf("object %s outside the store's prefix", c.Key)
			}
			left = append(left, c.Key)
		}
		return left
	})
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// conformance checks what every Store promises; objects lists what the store
// holds underneath (files, objects).
func conformance(t *testing.T, s Store, objects func(*testing.T) []string) {
	ctx := context.Background()
	key := func(job, path string) string {
		k, err := Key("acme", job, 0, SpaceUser, path)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes
	t.Run("put get stat round trip", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, ct string
			data           []byte
			size           int64
			wantCT         string
		}{
			{"known size", "report.xml", "application/xml", []byte("<ok/>"), 5, "application/xml"},
			{"unknown size", "/tmp/out/log.txt", "text/plain", []byte("hello\nworld\n"), -1, "text/plain"},
			{"empty blob", "empty", "", nil, 0, DefaultContentType},
			{"large", "big.bin", "application/octet-stream", big, int64(len(big)), "application/octet-stream"},
			{"odd name", "a b/ü?#%.txt", "text/plain", []byte("x"), 1, "text/plain"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				k := key("rt", tc.path)
				info, err := s.Put(ctx, k, bytes.NewReader(tc.data), tc.size, tc.ct)
				if err != nil {
					t.Fatal(err)
				}
				want := Info{Size: int64(len(tc.data)), ContentType: tc.wantCT, SHA256: sum(tc.data)}
				if info != want {
					t.Fatalf("Put info %+v, want %+v", info, want)
				}
				st, err := s.Stat(ctx, k)
				if err != nil || st != want {
					t.Fatalf("Stat %+v %v, want %+v", st, err, want)
				}
				rc, gi, err := s.Get(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, tc.data) || gi != want {
					t.Fatalf("Get %d bytes %+v %v, want %d bytes %+v", len(got), gi, err, len(tc.data), want)
				}
			})
		}
	})
	t.Run("overwrite replaces", func(t *testing.T) {
		k := key("ow", "f")
		for _, d := range []string{"first version", "second"} {
			if _, err := s.Put(ctx, k, strings.NewReader(d), int64(len(d)), "text/plain"); err != nil {
				t.Fatal(err)
			}
		}
		rc, info, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "second" || info.Size != 6 {
			t.Fatalf("got %q %+v", b, info)
		}
	})
	t.Run("concurrent overwrites stay consistent", func(t *testing.T) {
		k := key("race", "f")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				d := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
				if _, err := s.Put(ctx, k, bytes.NewReader(d), int64(len(d)), "text/plain"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		rc, info, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if int64(len(b)) != info.Size || sum(b) != info.SHA256 || len(b) == 0 || !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) {
			t.Fatalf("blob of %d bytes with info %+v: data and metadata of different puts", len(b), info)
		}
	})
	t.Run("missing is ErrNotFound", func(t *testing.T) {
		k := key("none", "nothing")
		if _, err := s.Stat(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Stat: %v", err)
		}
		if _, _, err := s.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
	})
	t.Run("failed put leaves nothing", func(t *testing.T) {
		before := objects(t)
		k := key("fail", "f")
		for _, tc := range []struct {
			name string
			r    io.Reader
			size int64
			want error
		}{
			{"longer than announced", strings.NewReader("123456"), 5, ErrTooLarge},
			{"shorter than announced", strings.NewReader("1234"), 5, ErrShortBody},
			{"announced over max", strings.NewReader("x"), testMax + 1, ErrTooLarge},
			{"unknown size over max", bytes.NewReader(make([]byte, testMax+1)), -1, ErrTooLarge},
			{"reader fails", io.MultiReader(strings.NewReader("part"), errReader{}), -1, errBoom},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := s.Put(ctx, k, tc.r, tc.size, ""); !errors.Is(err, tc.want) {
					t.Fatalf("Put: %v, want %v", err, tc.want)
				}
				if _, err := s.Stat(ctx, k); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Stat after failed Put: %v", err)
				}
			})
		}
		// A failed overwrite keeps the old blob.
		if _, err := s.Put(ctx, k, strings.NewReader("keep"), 4, "text/plain"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, k, strings.NewReader("toolong"), 3, ""); !errors.Is(err, ErrTooLarge) {
			t.Fatal(err)
		}
		if info, err := s.Stat(ctx, k); err != nil || info.Size != 4 {
			t.Fatalf("old blob after failed overwrite: %+v %v", info, err)
		}
		after := objects(t)
		if len(after) != len(before)+1 {
			t.Fatalf("objects before %v after %v: a failed Put left something", before, after)
		}
	})
	t.Run("delete prefix", func(t *testing.T) {
		keys := []string{key("del", "a"), key("del", "b/c"), key("delx", "a")}
		sys, _ := Key("acme", "del", 1, SpaceSystem, "stdout")
		keys = append(keys, sys)
		for _, k := range keys {
			if _, err := s.Put(ctx, k, strings.NewReader("x"), 1, ""); err != nil {
				t.Fatal(err)
			}
		}
		p, _ := Prefix("acme", "del")
		if err := s.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			_, err := s.Stat(ctx, k)
			if i == 2 {
				if err != nil {
					t.Fatalf("%s (another job) was deleted: %v", k, err)
				}
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s after Delete: %v", k, err)
			}
		}
		if err := s.Delete(ctx, p); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
	})
	t.Run("bad keys refused", func(t *testing.T) {
		for _, k := range []string{"", "/abs", "a/../b", "a//b", "a/./b", ".tmp-x", "a\\b", "a/\x00"} {
			if _, err := s.Put(ctx, k, strings.NewReader("x"), 1, ""); !errors.Is(err, ErrBadKey) {
				t.Errorf("Put %q: %v", k, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, ErrBadKey) {
				t.Errorf("Stat %q: %v", k, err)
			}
		}
		for _, p := range []string{"", "/", "acme", "../", "acme/../"} {
			if err := s.Delete(ctx, p); !errors.Is(err, ErrBadKey) {
				t.Errorf("Delete %q: %v", p, err)
			}
		}
	})
}

var errBoom = errors.New("boom")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBoom }

// TestFSCorruptBlob: a file that is not a blob (no trailer) is an error, not
// garbage data.
func TestFSCorruptBlob(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := Key("o", "j", 0, SpaceUser, "f")
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(k)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, k), []byte("no trailer here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(context.Background(), k); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a corrupt blob: %v", err)
	}
}
