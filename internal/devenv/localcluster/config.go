// Package localcluster brings up and tears down a real single-node Kubernetes
// cluster on this machine from upstream parts: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet and kube-proxy built from the
// k8s.io/kubernetes module, containerd, runc and the CNI plugins from Debian, and
// a small cluster DNS server of our own (package dns).
//
// It owns the state folder (certificates, configuration, logs, data), the
// network-safety guard (a bridge holding the node address, the Service CIDR
// routed onto it and DROP rules between the bridge and every other interface),
// process supervision by PID, and a tear-down that restores the host: processes,
// mounts, cgroups, bridge, routes, iptables/nft rules, sysctls and folders.
package localcluster

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
)

// DefaultStateDir is where the cluster keeps all of its state unless told otherwise.
const DefaultStateDir = "/var/lib/sandboxmesh-cluster"

// Config describes one local cluster. Zero fields take the defaults of Defaults.
type Config struct {
	// StateDir holds certificates, configuration, data and logs; removed by Down.
	StateDir string
	// RepoDir is the root of the sandboxmesh checkout (hack/k8s-build.sh, cmd/...).
	RepoDir string
	// K8sBinDir, when set, holds prebuilt Kubernetes binaries and skips hack/k8s-build.sh.
	K8sBinDir string
	// ImagesDir holds image tarballs; Up imports every tarball found there.
	ImagesDir string
	// Bridge is the Linux bridge the pods attach to; it carries the node address.
	Bridge string
	// NodeName is the Kubernetes node name.
	NodeName string
	// PodCIDR is the node's pod range; its first address is the node (bridge) address.
	PodCIDR netip.Prefix
	// ClusterCIDR is the cluster's pod range; PodCIDR must be its first /24.
	ClusterCIDR netip.Prefix
	// ServiceCIDR is the Service ClusterIP range; routed onto the bridge.
	ServiceCIDR netip.Prefix
	// APIServerPort is the apiserver's secure port on the node address.
	APIServerPort int
	// EtcdPort is etcd's client port on loopback (peer port is EtcdPort+1).
	EtcdPort int
	// ClusterDomain is the DNS domain of Services.
	ClusterDomain string
	// SelfBinary is an sm-cluster binary used to run the DNS server
	// (`sm-cluster dns`). Empty: the running executable when it is sm-cluster,
	// else one built from RepoDir/cmd/sm-cluster.
	SelfBinary string
	// SkipPackages skips the Debian package check and install.
	SkipPackages bool
	// Progress receives short human progress lines; nil discards them.
	Progress io.Writer
	// Log receives structured debug logs; nil discards them.
	Log *slog.Logger
}

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.ImagesDir == "" {
		c.ImagesDir = DefaultImagesDir()
	}
	if c.Bridge == "" {
		c.Bridge = "smbr0"
	}
	if c.NodeName == "" {
		c.NodeName = "sandboxmesh-node"
	}
	if !c.PodCIDR.IsValid() {
		c.PodCIDR = netip.MustParsePrefix("10.244.0.0/24")
	}
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	}
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	}
	if c.APIServerPort == 0 {
		c.APIServerPort = 6443
	}
	if c.EtcdPort == 0 {
		c.EtcdPort = 23790
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// DefaultImagesDir is the folder image tarballs are written to and loaded from.
func DefaultImagesDir() string {
	if d := os.Getenv("SANDBOXMESH_CACHE"); d != "" {
		return filepath.Join(d, "images")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "sandboxmesh", "images")
	}
	return filepath.Join(os.TempDir(), "sandboxmesh-images")
}

func (c *Config) validate() error {
	if !c.PodCIDR.Addr().Is4() || !c.ServiceCIDR.Addr().Is4() || !c.ClusterCIDR.Addr().Is4() {
		return fmt.Errorf("config: only IPv4 ranges are supported")
	}
	if !c.ClusterCIDR.Contains(c.PodCIDR.Addr()) || c.PodCIDR.Bits() < c.ClusterCIDR.Bits() {
		return fmt.Errorf("config: podCIDR %s is not inside clusterCIDR %s", c.PodCIDR, c.ClusterCIDR)
	}
	if c.ServiceCIDR.Overlaps(c.ClusterCIDR) {
		return fmt.Errorf("config: serviceCIDR %s overlaps clusterCIDR %s", c.ServiceCIDR, c.ClusterCIDR)
	}
	return nil
}

// NodeIP is the node's address: the first host address of PodCIDR, held by the bridge.
func (c Config) NodeIP() netip.Addr { return c.PodCIDR.Masked().Addr().Next() }

// APIServiceIP is the first Service address (the "kubernetes" Service).
func (c Config) APIServiceIP() netip.Addr { return c.ServiceCIDR.Masked().Addr().Next() }

// DNSIP is the address pods use as their nameserver: the node address, where our DNS server listens.
func (c Config) DNSIP() netip.Addr { return c.NodeIP() }

// KubeconfigPath is the admin kubeconfig written by Up.
func (c Config) KubeconfigPath() string { return filepath.Join(c.StateDir, "kubeconfig") }

// ContainerdSocket is the node's containerd socket.
func (c Config) ContainerdSocket() string {
	return filepath.Join(c.StateDir, "containerd", "containerd.sock")
}

// APIServerURL is the apiserver's address.
func (c Config) APIServerURL() string {
	return fmt.Sprintf("https://%s", netip.AddrPortFrom(c.NodeIP(), uint16(c.APIServerPort)))
}

func (c Config) path(p ...string) string         { return filepath.Join(append([]string{c.StateDir}, p...)...) }
func (c Config) logPath(component string) string { return c.path("logs", component+".log") }
