package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeConfigs writes every component's configuration and kubeconfig into the state folder.
func (c Config) writeConfigs() error {
	for _, d := range []string{"etc", "etcd", "containerd", "cni/net.d", "cni/ipam", "kubelet/pki", "logs", "bin"} {
		if err := os.MkdirAll(c.path(d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", c.path(d), err)
		}
	}
	files := map[string]string{
		"etc/containerd.toml":               c.containerdConfig(),
		"cni/net.d/10-sandboxmesh.conflist": c.cniConfig(),
		"etc/kubelet.yaml":                  c.kubeletConfig(),
		"etc/kube-proxy.yaml":               c.kubeProxyConfig(),
		"etc/resolv.conf":                   fmt.Sprintf("nameserver %s\n", c.DNSIP()),
	}
	for name, certName := range map[string]string{
		"kubeconfig":                        "admin",
		"etc/controller-manager.kubeconfig": "controller-manager",
		"etc/scheduler.kubeconfig":          "scheduler",
		"etc/kube-proxy.kubeconfig":         "kube-proxy",
		"etc/kubelet.kubeconfig":            "kubelet-client",
		"etc/dns.kubeconfig":                "dns",
	} {
		kc, err := c.kubeconfig(certName)
		if err != nil {
			return err
		}
		files[name] = kc
	}
	for name, content := range files {
		p := c.path(name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

func (c Config) etcdArgs() []string {
	client := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", c.EtcdPort+1)
	return []string{
		"--name=sandboxmesh",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=sandboxmesh=" + peer,
		"--initial-cluster-state=new",
		"--log-level=warn",
	}
}

func (c Config) apiserverArgs() []string {
	pki := func(f string) string { return c.path("pki", f) }
	return []string{
		"--advertise-address=" + c.NodeIP().String(),
		"--bind-address=" + c.NodeIP().String(),
		fmt.Sprintf("--secure-port=%d", c.APIServerPort),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", c.EtcdPort),
		"--service-cluster-ip-range=" + c.ServiceCIDR.String(),
		"--client-ca-file=" + pki("ca.crt"),
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority=" + pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc." + c.ClusterDomain,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--cert-dir=" + c.path("pki", "apiserver-generated"),
		"--profiling=false",
		"--v=1",
	}
}

func (c Config) controllerManagerArgs() []string {
	pki := func(f string) string { return c.path("pki", f) }
	return []string{
		"--kubeconfig=" + c.path("etc", "controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + c.ClusterCIDR.String(),
		fmt.Sprintf("--node-cidr-mask-size=%d", c.PodCIDR.Bits()),
		"--service-cluster-ip-range=" + c.ServiceCIDR.String(),
		"--cluster-signing-cert-file=" + pki("ca.crt"),
		"--cluster-signing-key-file=" + pki("ca.key"),
		"--root-ca-file=" + pki("ca.crt"),
		"--service-account-private-key-file=" + pki("sa.key"),
		"--use-service-account-credentials=true",
		"--cert-dir=" + c.path("pki", "controller-manager-generated"),
		"--profiling=false",
		"--v=1",
	}
}

func (c Config) schedulerArgs() []string {
	return []string{
		"--kubeconfig=" + c.path("etc", "scheduler.kubeconfig"),
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--cert-dir=" + c.path("pki", "scheduler-generated"),
		"--profiling=false",
		"--v=1",
	}
}

func (c Config) kubeletArgs() []string {
	return []string{
		"--config=" + c.path("etc", "kubelet.yaml"),
		"--kubeconfig=" + c.path("etc", "kubelet.kubeconfig"),
		"--root-dir=" + c.path("kubelet"),
		"--cert-dir=" + c.path("kubelet", "pki"),
		"--node-ip=" + c.NodeIP().String(),
		"--hostname-override=" + c.NodeName,
		"--v=1",
	}
}

func (c Config) containerdConfig() string {
	d := func(p ...string) string { return c.path(append([]string{"containerd"}, p...)...) }
	return fmt.Sprintf(`# Written by sandboxmesh sm-cluster; do not edit.
version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
    max_conf_num = 1
`, d("root"), d("state"), c.ContainerdSocket(), c.ContainerdSocket()+".ttrpc", d("opt"), pauseRef(), c.path("cni", "net.d"))
}

func (c Config) cniConfig() string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "sandboxmesh",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %q,
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, c.Bridge, c.path("cni", "ipam"), c.PodCIDR.Masked().String(), c.NodeIP().String())
}

func (c Config) kubeletConfig() string {
	pki := func(f string) string { return c.path("pki", f) }
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
tlsCertFile: %q
tlsPrivateKeyFile: %q
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
clusterDomain: %s
clusterDNS: [%s]
resolvConf: %q
protectKernelDefaults: false
rotateCertificates: false
serverTLSBootstrap: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
maxPods: 110
serializeImagePulls: false
`, c.NodeIP(), pki("ca.crt"), pki("kubelet-serving.crt"), pki("kubelet-serving.key"),
		c.ContainerdSocket(), c.ContainerdSocket(), c.ClusterDomain, c.DNSIP(), c.path("etc", "resolv.conf"))
}

func (c Config) kubeProxyConfig() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: %q
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: %s
nodePortAddresses: [%q]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  masqueradeAll: false
  localhostNodePorts: false
`, c.path("etc", "kube-proxy.kubeconfig"), c.NodeName, c.NodeIP(), c.ClusterCIDR, c.NodeIP().String()+"/32")
}

// listTarballs returns the *.tar files of dir, pause.tar first.
func listTarballs(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
	out := make([]string, 0, len(m))
	for _, p := range m {
		if strings.HasSuffix(p, string(filepath.Separator)+"pause.tar") {
			out = append([]string{p}, out...)
		} else {
			out = append(out, p)
		}
	}
	return out
}
