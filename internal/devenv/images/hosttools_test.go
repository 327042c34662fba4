package images

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostToolsRunInImage packs devmesh-init's iptables from the host into an
// image, unpacks its layer into a folder and runs iptables-save and
// iptables-restore from there with chroot: the copied programs find their
// libraries and extensions without the host's /usr.
func TestHostToolsRunInImage(t *testing.T) {
	set := HostTools["devmesh-init"]
	if _, err := os.Stat(set.Required[0]); err != nil {
		t.Skipf("%s not installed (apt-get install iptables)", set.Required[0])
	}
	extra, err := set.collect()
	if err != nil {
		t.Fatal(err)
	}
	root, names := unpack(t, "devmesh-init", extra)
	for _, n := range []string{"usr/sbin/iptables-save", "usr/sbin/iptables-restore", "usr/sbin/ip6tables-restore", "usr/sbin/xtables-nft-multi"} {
		if !names[n] {
			t.Errorf("image lacks %s", n)
		}
	}
	owner := false
	for n := range names {
		owner = owner || strings.HasSuffix(n, "/xtables/libxt_owner.so")
	}
	if !owner {
		t.Error("image lacks the xtables owner extension (devmesh-init uses -m owner)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	out, err := exec.Command("chroot", root, "/usr/sbin/iptables-restore", "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nf_tables") {
		t.Fatalf("iptables-restore in the image: %v\n%s", err, out)
	}
	// The rules devmesh-init writes (tcp and owner matches, REDIRECT), in a
	// network namespace of their own: the extensions load from the image.
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	rules := `*nat
:SANDBOXMESH_INBOUND - [0:0]
:SANDBOXMESH_OUTPUT - [0:0]
-A SANDBOXMESH_INBOUND -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15006
-A SANDBOXMESH_OUTPUT -m owner --uid-owner 2103 -j RETURN
-A SANDBOXMESH_OUTPUT -d 127.0.0.0/8 -j RETURN
-A PREROUTING -p tcp -j SANDBOXMESH_INBOUND
-A OUTPUT -p tcp -j SANDBOXMESH_OUTPUT
COMMIT
`
	restore := exec.Command("unshare", "-n", "chroot", root, "/usr/sbin/iptables-restore", "--noflush", "--wait")
	restore.Stdin = strings.NewReader(rules)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("iptables-restore of devmesh-init's rules from the image: %v\n%s", err, out)
	}
}

// unpack packs binary (a stand-in) and extra into an image and unpacks its
// layer into a folder; it returns the folder and the layer's entry names.
func unpack(t *testing.T, binary string, extra []File) (string, map[string]bool) {
	t.Helper()
	img, err := Image(binary, []byte("#!/bin/false\n"), extra...)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d: %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	root := t.TempDir()
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root, names
}

// TestRunnerImageHasShell packs the sandboxmesh-runner host tools (Debian's
// static busybox) into an image: /bin/sh and the applets job scripts use are
// there (a HostToolSet with its own Dir), and, as root, a #!/bin/sh script
// runs in the unpacked image with chroot using them.
func TestRunnerImageHasShell(t *testing.T) {
	set := HostTools["sandboxmesh-runner"]
	if _, err := os.Stat(set.Required[0]); err != nil {
		t.Skipf("%s not installed (apt-get install busybox-static)", set.Required[0])
	}
	extra, err := set.collect()
	if err != nil {
		t.Fatal(err)
	}
	root, names := unpack(t, "sandboxmesh-runner", extra)
	for _, a := range append([]string{"busybox"}, RunnerApplets...) {
		if !names["bin/"+a] {
			t.Errorf("image lacks /bin/%s", a)
		}
		if names["usr/sbin/"+a] {
			t.Errorf("image has usr/sbin/%s: the set's Dir is bin", a)
		}
	}
	if !names["usr/bin/env"] {
		t.Error("image lacks /usr/bin/env (#!/usr/bin/env sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	list, err := exec.Command("chroot", root, "/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatalf("busybox in the image: %v", err)
	}
	have := map[string]bool{}
	for _, a := range strings.Fields(string(list)) {
		have[a] = true
	}
	for _, a := range RunnerApplets {
		if !have[a] {
			t.Errorf("the host's busybox has no applet %q", a)
		}
	}
	script := "#!/bin/sh\nset -e\nprintf 'a b\\nc d\\n' > /tmp/f\n[ \"$(grep -c . /tmp/f)\" = 2 ]\nhead -n1 /tmp/f | cut -d' ' -f2 | tr b B\nwget --help 2>&1 | head -n1 | grep -q BusyBox\nenv | grep -q '^PATH='\n"
	if err := os.WriteFile(filepath.Join(root, "job.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("chroot", root, "/job.sh")
	cmd.Env = []string{"PATH=/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "B\n" {
		t.Fatalf("#!/bin/sh script in the runner image: %v\n%s", err, out)
	}
}

// TestDBRunnerTools: the resource plugins' runner image gets the real psql
// and mariadb clients with their libraries.
func TestDBRunnerTools(t *testing.T) {
	files, err := TagHostTools["sandboxmesh-runner:db"]().collect()
	if err != nil {
		t.Skipf("clients not installed here: %v", err)
	}
	names := map[string]bool{}
	for _, f := range files {
		names[f.Name] = true
	}
	for _, want := range []string{"usr/bin/psql", "usr/bin/mariadb", "usr/bin/mysql"} {
		if !names[want] {
			t.Errorf("no %s among %d files", want, len(files))
		}
	}
	libs := 0
	for n := range names {
		if strings.Contains(n, "libpq") || strings.Contains(n, "libmariadb") {
			libs++
		}
	}
	if libs < 1 {
		t.Errorf("no client library copied")
	}
}
