package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// EnvEntry is one variable `sandbox get-env` prints.
type EnvEntry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Source says where the value came from (value, configMap ns/name key,
	// secret ns/name key, field path).
	Source string `json:"source"`
	// Unresolved says why the value could not be read (then Value is empty
	// and the table output prints a comment instead of an export).
	Unresolved string `json:"unresolved,omitempty"`
}

// kubeConfig returns the REST config of a local connection's kubeContext;
// $KUBECONFIG (through App.Getenv) or ~/.kube/config.
func (a *App) kubeConfig(conn localtunnel.Connection) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k := a.getenv("KUBECONFIG"); k != "" {
		rules.Precedence = filepath.SplitList(k)
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: conn.KubeContext})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube config (context %q) for cluster %s: %w", conn.KubeContext, conn.Cluster, err)
	}
	return rc, nil
}

func (a *App) sandboxGetEnvCommand() *cobra.Command {
	var local, container string
	cmd := &cobra.Command{
		Use:   "get-env NAME [--local L] [--container C]",
		Short: "Print the baseline environment of a sandbox's local workload as export lines",
		Long: `get-env reads the baseline workload of the sandbox's local workload
(spec.local[].from) from the cluster — with the kubeContext of the
local.connections[] entry of the sandbox's cluster — and prints its
container's environment as shell export lines, valueFrom resolved
(ConfigMaps, Secrets you may read, metadata fields) and envFrom expanded,
so that eval "$(sandboxmesh sandbox get-env NAME)" prepares the local
process. Values that cannot be read are printed as comments saying why.`,
		Example:           `  eval "$(sandboxmesh sandbox get-env my-sandbox)" && go run ./services/route`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			sb, err := c.GetSandbox(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "sandbox "+args[0])
			}
			l, err := pickLocal(sb.Spec.Local, local, args[0])
			if err != nil {
				return err
			}
			if a.cfg.Local == nil {
				return usageErrorf("no local.connections in the config: get-env reads the baseline with the kubeContext of the sandbox's cluster (docs/local.md)")
			}
			conn, err := a.cfg.Local.Connection(sb.Spec.Cluster)
			if err != nil {
				if conn, err = a.cfg.Local.Connection(""); err != nil {
					return usageErrorf("cluster %s: %v", sb.Spec.Cluster, err)
				}
			}
			rc, err := a.kubeConfig(conn)
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return fmt.Errorf("kube client: %w", err)
			}
			env, err := baselineEnv(cmd.Context(), cs, l.From, container)
			if err != nil {
				return err
			}
			if ok, err := a.structured(a.Stdout, env); ok {
				return err
			}
			return printEnv(a.Stdout, env)
		},
	}
	cmd.Flags().StringVar(&local, "local", "", "local workload (spec.local[].name; default: the only one)")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container (default: the first)")
	return cmd
}

func pickLocal(ls []v1alpha1.Local, name, sandbox string) (v1alpha1.Local, error) {
	var names []string
	for _, l := range ls {
		if l.Name == name {
			return l, nil
		}
		names = append(names, l.Name)
	}
	switch {
	case len(ls) == 0:
		return v1alpha1.Local{}, usageErrorf("sandbox %s has no local workloads (spec.local)", sandbox)
	case name == "" && len(ls) == 1:
		return ls[0], nil
	case name == "":
		return v1alpha1.Local{}, usageErrorf("sandbox %s has several local workloads; name one with --local (%s)", sandbox, strings.Join(names, ", "))
	}
	return v1alpha1.Local{}, usageErrorf("sandbox %s has no local workload %q (%s)", sandbox, name, strings.Join(names, ", "))
}

// baselineEnv reads the container's environment of a Deployment, resolving
// what it can.
func baselineEnv(ctx context.Context, cs kubernetes.Interface, ref v1alpha1.WorkloadRef, container string) ([]EnvEntry, error) {
	if ref.Kind != "" && ref.Kind != "Deployment" {
		return nil, usageErrorf("get-env reads Deployments; %s %s/%s is not supported yet", ref.Kind, ref.Namespace, ref.Name)
	}
	d, err := cs.AppsV1().Deployments(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read Deployment %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	pod := d.Spec.Template
	var ctr *corev1.Container
	var names []string
	for i := range pod.Spec.Containers {
		names = append(names, pod.Spec.Containers[i].Name)
		if container == "" || pod.Spec.Containers[i].Name == container {
			ctr = &pod.Spec.Containers[i]
			break
		}
	}
	if ctr == nil {
		return nil, usageErrorf("Deployment %s/%s has no container %q (%s)", ref.Namespace, ref.Name, container, strings.Join(names, ", "))
	}
	ns := ref.Namespace
	cms, secrets := map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}
	configMap := func(name string) (*corev1.ConfigMap, error) {
		if cm, ok := cms[name]; ok {
			return cm, nil
		}
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		cms[name] = cm
		return cm, nil
	}
	secret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}
	var out []EnvEntry
	for _, ef := range ctr.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := configMap(ef.ConfigMapRef.Name)
			if err != nil {
				out = append(out, EnvEntry{Name: ef.Prefix + "*", Source: "configMap " + ns + "/" + ef.ConfigMapRef.Name, Unresolved: err.Error()})
				continue
			}
			for _, k := range sortedKeys(cm.Data) {
				out = append(out, EnvEntry{Name: ef.Prefix + k, Value: cm.Data[k], Source: "configMap " + ns + "/" + cm.Name})
			}
		case ef.SecretRef != nil:
			s, err := secret(ef.SecretRef.Name)
			if err != nil {
				out = append(out, EnvEntry{Name: ef.Prefix + "*", Source: "secret " + ns + "/" + ef.SecretRef.Name, Unresolved: err.Error()})
				continue
			}
			for _, k := range sortedKeys(s.Data) {
				out = append(out, EnvEntry{Name: ef.Prefix + k, Value: string(s.Data[k]), Source: "secret " + ns + "/" + s.Name})
			}
		}
	}
	for _, e := range ctr.Env {
		en := EnvEntry{Name: e.Name, Value: e.Value, Source: "value"}
		switch vf := e.ValueFrom; {
		case vf == nil:
		case vf.ConfigMapKeyRef != nil:
			en.Source = fmt.Sprintf("configMap %s/%s key %s", ns, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
			cm, err := configMap(vf.ConfigMapKeyRef.Name)
			if err == nil {
				if v, ok := cm.Data[vf.ConfigMapKeyRef.Key]; ok {
					en.Value = v
				} else {
					en.Unresolved = "no such key"
				}
			} else {
				en.Unresolved = err.Error()
			}
		case vf.SecretKeyRef != nil:
			en.Source = fmt.Sprintf("secret %s/%s key %s", ns, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
			s, err := secret(vf.SecretKeyRef.Name)
			if err == nil {
				if v, ok := s.Data[vf.SecretKeyRef.Key]; ok {
					en.Value = string(v)
				} else {
					en.Unresolved = "no such key"
				}
			} else {
				en.Unresolved = err.Error()
			}
		case vf.FieldRef != nil:
			en.Source = "field " + vf.FieldRef.FieldPath
			switch vf.FieldRef.FieldPath {
			case "metadata.namespace":
				en.Value = ns
			default:
				en.Unresolved = "a pod's own field; set it by hand"
			}
		default:
			en.Source, en.Unresolved = "resourceFieldRef", "a container's resources; set it by hand"
		}
		if en.Unresolved != "" && optionalRef(e.ValueFrom) {
			continue // optional and absent: the pod would not have it either
		}
		out = append(out, en)
	}
	return expandRefs(out), nil
}

func optionalRef(vf *corev1.EnvVarSource) bool {
	switch {
	case vf == nil:
	case vf.ConfigMapKeyRef != nil:
		return vf.ConfigMapKeyRef.Optional != nil && *vf.ConfigMapKeyRef.Optional
	case vf.SecretKeyRef != nil:
		return vf.SecretKeyRef.Optional != nil && *vf.SecretKeyRef.Optional
	}
	return false
}

var envRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expandRefs expands $(VAR) in plain values with earlier variables, as the
// kubelet does ($$ is a literal $; unknown references stay).
func expandRefs(env []EnvEntry) []EnvEntry {
	seen := map[string]string{}
	for i, e := range env {
		if e.Source == "value" {
			env[i].Value = envRef.ReplaceAllStringFunc(e.Value, func(m string) string {
				if m == "$$" {
					return "$"
				}
				if v, ok := seen[m[2:len(m)-1]]; ok {
					return v
				}
				return m
			})
		}
		if e.Unresolved == "" {
			seen[e.Name] = env[i].Value
		}
	}
	return env
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func printEnv(w io.Writer, env []EnvEntry) error {
	for _, e := range env {
		var err error
		switch {
		case e.Unresolved != "":
			_, err = fmt.Fprintf(w, "# %s (%s): %s\n", e.Name, e.Source, oneLine(e.Unresolved))
		case !envName.MatchString(e.Name):
			_, err = fmt.Fprintf(w, "# %s (%s): not a shell variable name\n", oneLine(e.Name), e.Source)
		default:
			_, err = fmt.Fprintf(w, "export %s=%s\n", e.Name, shellQuote(e.Value))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }
