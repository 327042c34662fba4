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
	img, err := Image("devmesh-init", []byte("#!/bin/false\n"), extra...)
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
