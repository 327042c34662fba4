package debpkg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestMissing(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "lib", "15", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lib", "15", "bin", "initdb"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	pkgs := []Package{
		{Name: "any-version", File: filepath.Join(dir, "lib", "*", "bin", "initdb")},
		{Name: "absent", File: filepath.Join(dir, "nope")},
		{Name: "bad-pattern", File: filepath.Join(dir, "[")},
	}
	if got, want := Missing(pkgs), []string{"absent", "bad-pattern"}; !slices.Equal(got, want) {
		t.Errorf("Missing = %v, want %v", got, want)
	}
	// Nothing missing: no apt-get, no lock.
	got, err := Ensure(context.Background(), pkgs[:1], Options{})
	if err != nil || got != nil {
		t.Errorf("Ensure with nothing missing = %v, %v", got, err)
	}
}

func TestLockFileSerialises(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.lock")
	unlock, err := lockFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := lockFile(ctx, path); err == nil {
		t.Fatal("a second lock was granted while the first is held")
	}
	done := make(chan error, 1)
	go func() {
		u, err := lockFile(context.Background(), path)
		if err == nil {
			u()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting lock was not granted after the release")
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{}
	for i := range 5000 {
		fmt.Fprintf(tb, "line %d\n", i)
	}
	if got, want := tb.lines(3), "line 4997\nline 4998\nline 4999"; got != want {
		t.Errorf("lines(3) = %q, want %q", got, want)
	}
	if len(tb.b) > 16<<10 {
		t.Errorf("kept %d bytes", len(tb.b))
	}
}
