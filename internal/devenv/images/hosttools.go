package images

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// collect reads the host programs of s, their shared libraries (as ldd
// resolves them, including the dynamic loader), the extension folders and the
// extra files, as image files. Symbolic links of library names are kept so
// the loader finds them by soname.
func (s HostToolSet) collect() ([]File, error) {
	for _, r := range s.Required {
		if _, err := os.Stat(r); err != nil {
			return nil, fmt.Errorf("host program %s is missing (install the Debian package %q: apt-get install -y %s): %w", r, s.Package, s.Package, err)
		}
	}
	files := map[string]File{}
	add := func(hostPath string) error {
		return addHostPath(files, hostPath)
	}
	var libDirs []string
	hosts := make([]string, 0, len(s.Programs))
	for h := range s.Programs {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	for _, h := range hosts {
		real, err := filepath.EvalSymlinks(h)
		if err != nil {
			continue // optional program (e.g. iptables-legacy) not installed
		}
		if err := add(real); err != nil {
			return nil, err
		}
		dir := s.Dir
		if dir == "" {
			dir = "usr/sbin"
		}
		for _, n := range s.Programs[h] {
			name := path.Join(dir, n)
			if strings.Contains(n, "/") {
				name = path.Clean(n)
			}
			if "/"+name == real {
				continue
			}
			files[name] = File{Name: name, Link: path.Base(real)}
			if path.Dir("/"+name) != path.Dir(real) {
				files[name] = File{Name: name, Link: real}
			}
		}
		libs, err := lddLibs(real)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			if err := add(l); err != nil {
				return nil, err
			}
			libDirs = append(libDirs, filepath.Dir(l))
		}
	}
	slices.Sort(libDirs)
	libDirs = slices.Compact(libDirs)
	for _, d := range s.Dirs {
		for _, ld := range libDirs {
			// The real path: programs look for their extensions at the folder
			// they were built with (/usr/lib/...), not through /lib -> usr/lib.
			dir, err := filepath.EvalSymlinks(filepath.Join(ld, d))
			if err != nil {
				continue
			}
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				continue
			}
			err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				if err := add(p); err != nil {
					return err
				}
				if strings.HasSuffix(p, ".so") {
					libs, err := lddLibs(p)
					if err != nil {
						return err
					}
					for _, l := range libs {
						if err := add(l); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("copy %s: %w", dir, err)
			}
		}
	}
	for _, f := range s.Files {
		if _, err := os.Stat(f); err == nil {
			if err := add(f); err != nil {
				return nil, err
			}
		}
	}
	out := make([]File, 0, len(files))
	for _, f := range files {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// addHostPath adds hostPath, following symbolic links hop by hop so that each
// link and its final target are both in the image.
func addHostPath(files map[string]File, hostPath string) error {
	for range 16 {
		name := strings.TrimPrefix(filepath.Clean(hostPath), "/")
		if _, ok := files[name]; ok {
			return nil
		}
		st, err := os.Lstat(hostPath)
		if err != nil {
			return fmt.Errorf("host file %s: %w", hostPath, err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(hostPath)
			if err != nil {
				return fmt.Errorf("host file %s: %w", hostPath, err)
			}
			files[name] = File{Name: name, Link: target}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(hostPath), target)
			}
			hostPath = target
			continue
		}
		data, err := os.ReadFile(hostPath)
		if err != nil {
			return fmt.Errorf("host file %s: %w", hostPath, err)
		}
		files[name] = File{Name: name, Mode: int64(st.Mode().Perm()), Data: data}
		return nil
	}
	return fmt.Errorf("host file %s: too many symbolic links", hostPath)
}

// lddLibs returns the absolute paths of the shared libraries bin loads,
// including the dynamic loader.
func lddLibs(bin string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("ldd", bin)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// glibc's ldd says so on stderr (exit status 1) for a static program.
		if bytes.Contains(out, []byte("not a dynamic executable")) || bytes.Contains(stderr.Bytes(), []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "libx.so.1 => /lib/x/libx.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
				break
			}
		}
	}
	return libs, nil
}

// writeExtra writes extra files into tw, creating their missing parent folders
// (those not in have).
func writeExtra(tw *tar.Writer, have []string, extra []File) error {
	dirs := map[string]bool{}
	for _, d := range have {
		dirs[strings.TrimSuffix(d, "/")] = true
	}
	for _, f := range extra {
		var parents []string
		for d := path.Dir(f.Name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755, Format: tar.FormatPAX}); err != nil {
				return fmt.Errorf("layer %s: %w", parents[i], err)
			}
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.Name, Linkname: f.Link, Mode: 0o777, Format: tar.FormatPAX}); err != nil {
				return fmt.Errorf("layer %s: %w", f.Name, err)
			}
			continue
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: mode, Size: int64(len(f.Data)), Format: tar.FormatPAX}); err != nil {
			return fmt.Errorf("layer %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return fmt.Errorf("layer %s: %w", f.Name, err)
		}
	}
	return nil
}
