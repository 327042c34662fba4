package runner

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// BinaryName is the file name Install writes.
const BinaryName = "sandboxmesh-runner"

// Install copies the running executable to dir/sandboxmesh-runner (mode
// 0755) atomically: a temporary file in dir renamed into place, so a reader
// never sees half a binary. The runner pod's init container runs it to put
// the static runner into a volume the job container (any image) shares.
func Install(dir string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install: find own executable: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	src, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	dst := filepath.Join(dir, BinaryName)
	tmp, err := os.CreateTemp(dir, "."+BinaryName+"-*")
	if err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install %s: copy %s: %w", dst, exe, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("install %s: %w", dst, err)
	}
	return dst, nil
}
