package inject

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sandboxmesh/sandboxmesh/devmesh/proxy"
)

// Environment variables of cmd/devmesh set by the injector.
const (
	EnvNamespace     = "SANDBOXMESH_NAMESPACE"
	EnvPodName       = "SANDBOXMESH_POD_NAME"
	EnvWorkload      = "SANDBOXMESH_WORKLOAD"
	EnvWorkloadKind  = "SANDBOXMESH_WORKLOAD_KIND"
	EnvRouteServer   = "SANDBOXMESH_ROUTE_SERVER"
	EnvKeyNames      = "SANDBOXMESH_KEY_NAMES"
	EnvCustomHeaders = "SANDBOXMESH_CUSTOM_HEADERS"
	EnvAdminListen   = "SANDBOXMESH_ADMIN_LISTEN"
	EnvRedirect      = "SANDBOXMESH_REDIRECT_LISTEN"
	EnvPortProtocols = "SANDBOXMESH_PORT_PROTOCOLS"
	EnvPorts         = "SANDBOXMESH_PORTS"
	EnvCaptureURL    = "SANDBOXMESH_CAPTURE_URL"
)

// AdminPortName names the sidecar's admin container port (for metrics scraping).
const AdminPortName = "devmesh-admin"

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
}

func httpProbe(path string, port int32, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
	}
}

// sidecarContainer builds the devmesh container (without restartPolicy).
func sidecarContainer(cfg *Config, mode Mode, wl workload, ports []appPort) corev1.Container {
	env := []corev1.EnvVar{
		fieldEnv(EnvNamespace, "metadata.namespace"),
		fieldEnv(EnvPodName, "metadata.name"),
		{Name: EnvWorkload, Value: wl.Name},
		{Name: EnvWorkloadKind, Value: wl.Kind},
		{Name: EnvRouteServer, Value: cfg.RouteServer},
		{Name: EnvAdminListen, Value: ":" + strconv.Itoa(int(cfg.AdminPort))},
	}
	if len(cfg.KeyNames) > 0 {
		env = append(env, corev1.EnvVar{Name: EnvKeyNames, Value: strings.Join(cfg.KeyNames, ",")})
	}
	if len(cfg.CustomHeaders) > 0 {
		env = append(env, corev1.EnvVar{Name: EnvCustomHeaders, Value: strings.Join(cfg.CustomHeaders, ",")})
	}
	containerPorts := []corev1.ContainerPort{{Name: AdminPortName, ContainerPort: cfg.AdminPort, Protocol: corev1.ProtocolTCP}}
	switch mode {
	case ModeIPTables:
		env = append(env, corev1.EnvVar{Name: EnvRedirect, Value: ":" + strconv.Itoa(int(cfg.InboundPort))})
		var protos []string
		for _, p := range ports {
			if p.Protocol != proxy.ProtocolAuto {
				protos = append(protos, strconv.Itoa(int(p.App))+"/"+string(p.Protocol))
			}
		}
		if len(protos) > 0 {
			env = append(env, corev1.EnvVar{Name: EnvPortProtocols, Value: strings.Join(protos, ",")})
		}
	case ModeExplicit:
		mappings := make([]string, len(ports))
		taken := map[string]bool{AdminPortName: true}
		for i, p := range ports {
			mappings[i] = proxy.PortMapping{Listen: int(p.Listen), App: p.App, Protocol: p.Protocol}.String()
			containerPorts = append(containerPorts, corev1.ContainerPort{Name: sidecarPortName(p, taken), ContainerPort: p.Listen, Protocol: corev1.ProtocolTCP})
		}
		env = append(env, corev1.EnvVar{Name: EnvPorts, Value: strings.Join(mappings, ",")})
	}
	if cfg.CaptureURL != "" {
		env = append(env, corev1.EnvVar{Name: EnvCaptureURL, Value: cfg.CaptureURL})
	}
	env = append(env, cfg.ExtraEnv...)
	uid := cfg.ProxyUID
	return corev1.Container{
		Name:            SidecarName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Env:             env,
		Ports:           containerPorts,
		Resources:       *cfg.Resources.DeepCopy(),
		// The app starts only once the sidecar answers (native sidecars gate later containers on it).
		StartupProbe:             httpProbe("/healthz", cfg.AdminPort, 1, 60),
		LivenessProbe:            httpProbe("/healthz", cfg.AdminPort, 10, 3),
		ReadinessProbe:           httpProbe("/readyz", cfg.AdminPort, 2, 2),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(uid),
			RunAsGroup:               ptr(uid),
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// initContainer builds the iptables init container running cmd/devmesh-init.
func initContainer(cfg *Config, ports []appPort) corev1.Container {
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = strconv.Itoa(int(p.App))
	}
	return corev1.Container{
		Name:            InitName,
		Image:           cfg.InitImage,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         append([]string(nil), cfg.InitCommand...),
		Args: []string{
			"--ports=" + strings.Join(list, ","),
			"--redirect-to=" + strconv.Itoa(int(cfg.InboundPort)),
			"--proxy-uid=" + strconv.FormatInt(cfg.ProxyUID, 10),
		},
		Resources:                *cfg.InitResources.DeepCopy(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			Privileged:               ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}
}
