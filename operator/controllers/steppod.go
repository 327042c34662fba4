package controllers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/fork"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// StepActiveDeadline bounds a step pod's run (seconds) unless the plugin's
// podTemplateOverlay sets spec.activeDeadlineSeconds.
const StepActiveDeadline = 600

// Env names of step pods that Signadot's plugins know.
const (
	envSignadotSandboxName = "SIGNADOT_SANDBOX_NAME"
	envSignadotRoutingKey  = "SIGNADOT_SANDBOX_ROUTING_KEY"
)

// StepPodInput is what a step pod is built from.
type StepPodInput struct {
	// Sandbox the resource belongs to (name, namespace, UID).
	Sandbox *smv1.Sandbox
	// RoutingKey of the sandbox.
	RoutingKey string
	// Resource is the name of the resource in spec.resources.
	Resource string
	// Plugin provides the resource.
	Plugin *smv1.ResourcePlugin
	// Step to run (one of Plugin's create or delete steps).
	Step *smv1.PluginStep
	// Attempt is 1 for the first run of the step, then 2, 3...
	Attempt int
	// StateSecret is the resource's state Secret in the runner namespace,
	// mounted as the step's inputs.
	StateSecret string
	// RunnerImage is the operator's runner image (--runner-image): its init
	// container installs sandboxmesh-runner into the pod.
	RunnerImage string
}

// PluginNamespace is the namespace the steps of rp run in.
func PluginNamespace(rp *smv1.ResourcePlugin) string {
	if rp.Spec.Runner.Namespace != "" {
		return rp.Spec.Runner.Namespace
	}
	return smv1.DefaultPluginNamespace
}

// StepInputKey is the file (state Secret key) holding the value of input in.
func StepInputKey(in *smv1.StepInput) string {
	if r := in.ValueFromStep; r != nil {
		return "out." + r.Name + "." + r.Output
	}
	return "param." + in.Name
}

// stepInputEnv is the default env var of an input without `as` (Signadot's
// rule: upper-cased, - and . become _).
func stepInputEnv(name string) string {
	return strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(name))
}

// StepSpecOf is the StepSpec the runner receives for step.
func StepSpecOf(step *smv1.PluginStep) smv1.StepSpec {
	spec := smv1.StepSpec{Script: step.Script}
	for i := range step.Inputs {
		in := &step.Inputs[i]
		si := smv1.StepSpecInput{Key: StepInputKey(in)}
		if in.As != nil {
			si.Env, si.Path = in.As.Env, in.As.Path
		} else {
			si.Env = stepInputEnv(in.Name)
		}
		spec.Inputs = append(spec.Inputs, si)
	}
	for _, o := range step.Outputs {
		spec.Outputs = append(spec.Outputs, smv1.StepSpecOutput{Name: o.Name, Path: o.ValueFromPath})
	}
	return spec
}

// StepLabels are the labels of the step pods of resource of sb (and of its
// state Secret); step is empty for the Secret.
func StepLabels(sb *smv1.Sandbox, resource, plugin, step string) map[string]string {
	l := map[string]string{
		smv1.LabelManagedBy:          smv1.ManagedBy,
		naming.LabelSandbox:          sb.Name,
		naming.LabelSandboxNamespace: sb.Namespace,
		smv1.LabelSandboxUID:         string(sb.UID),
		smv1.LabelResource:           resource,
		smv1.LabelResourcePlugin:     plugin,
	}
	if step != "" {
		l[smv1.LabelStep] = step
	}
	return l
}

// StepPod is the pod running attempt in.Attempt of in.Step: a default
// template (one container "main" running runner.image, restartPolicy
// Never, activeDeadlineSeconds 600, no service account token), the
// plugin's podTemplateOverlay strategic-merged onto it, then the
// invariants: main runs `sandboxmesh-runner step` (installed by an init
// container from in.RunnerImage, or from the image itself at
// spec.runner.runnerPath) with the step in its environment, the
// state Secret mounted read-only at /sandboxmesh/inputs, and a termination
// message that falls back to the log tail. The pod has no owner reference
// (it lives in another namespace than the Sandbox); its labels name the
// sandbox, resource, plugin and step. Errors name the plugin field that
// cannot make a pod.
func StepPod(in StepPodInput) (*corev1.Pod, error) {
	rp := in.Plugin
	install := rp.Spec.Runner.RunnerPath == ""
	if install && in.RunnerImage == "" {
		return nil, fmt.Errorf("the operator has no runner image (--runner-image)")
	}
	const overlayPath = "spec.runner.podTemplateOverlay"
	no := false
	deadline := int64(StepActiveDeadline)
	tpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		ActiveDeadlineSeconds:        &deadline,
		AutomountServiceAccountToken: &no,
		Containers:                   []corev1.Container{{Name: smv1.StepContainer, Image: rp.Spec.Runner.Image}},
	}}
	if strings.TrimSpace(rp.Spec.Runner.PodTemplateOverlay) != "" {
		overlay, err := yaml.YAMLToJSON([]byte(rp.Spec.Runner.PodTemplateOverlay))
		if err != nil {
			return nil, fmt.Errorf("%s: not YAML: %w", overlayPath, err)
		}
		var check corev1.PodTemplateSpec
		dec := json.NewDecoder(bytes.NewReader(overlay))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&check); err != nil {
			return nil, fmt.Errorf("%s: not a pod template: %w", overlayPath, err)
		}
		orig, err := json.Marshal(tpl)
		if err != nil {
			return nil, err
		}
		merged, err := fork.StrategicMerge(orig, overlay, corev1.PodTemplateSpec{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", overlayPath, err)
		}
		tpl = corev1.PodTemplateSpec{}
		if err := json.Unmarshal(merged, &tpl); err != nil {
			return nil, fmt.Errorf("%s: %w", overlayPath, err)
		}
	}
	if len(tpl.Spec.Containers) == 0 || tpl.Spec.Containers[0].Name != smv1.StepContainer {
		return nil, fmt.Errorf("%s: spec.containers[0] must be the container %s that runs the step", overlayPath, smv1.StepContainer)
	}
	for _, c := range tpl.Spec.InitContainers {
		if c.Name == smv1.RunnerContainerInstall {
			return nil, fmt.Errorf("%s: spec.initContainers: the name %s is reserved for the runner", overlayPath, smv1.RunnerContainerInstall)
		}
	}
	for _, v := range tpl.Spec.Volumes {
		if v.Name == smv1.RunnerVolume || v.Name == smv1.StepInputsVolume {
			return nil, fmt.Errorf("%s: spec.volumes: the name %s is reserved for the runner", overlayPath, v.Name)
		}
	}
	main := &tpl.Spec.Containers[0]
	if main.Image == "" {
		return nil, fmt.Errorf("%s: spec.containers[0].image: empty", overlayPath)
	}
	spec, err := json.Marshal(StepSpecOf(in.Step))
	if err != nil {
		return nil, fmt.Errorf("step %s of ResourcePlugin %s/%s: %w", in.Step.Name, rp.Namespace, rp.Name, err)
	}
	sb := in.Sandbox
	tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	main.Command = []string{smv1.RunnerBinDir + "/" + smv1.RunnerBinary, "step"}
	if !install {
		main.Command[0] = rp.Spec.Runner.RunnerPath
	}
	main.Args = nil
	main.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	ours := []corev1.EnvVar{
		{Name: smv1.EnvStepSpec, Value: string(spec)},
		{Name: naming.EnvSandboxName, Value: sb.Name},
		{Name: envSignadotSandboxName, Value: sb.Name},
		{Name: naming.EnvRoutingKey, Value: in.RoutingKey},
		{Name: envSignadotRoutingKey, Value: in.RoutingKey},
		{Name: smv1.EnvResourceName, Value: in.Resource},
		{Name: smv1.EnvStepName, Value: in.Step.Name},
		{Name: smv1.EnvResourceID, Value: naming.ResourceID(string(sb.UID), in.Resource)},
	}
	main.Env = slices.DeleteFunc(main.Env, func(e corev1.EnvVar) bool {
		return slices.ContainsFunc(ours, func(o corev1.EnvVar) bool { return o.Name == e.Name })
	})
	main.Env = append(main.Env, ours...)
	main.VolumeMounts = slices.DeleteFunc(main.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == smv1.RunnerBinDir || m.MountPath == smv1.StepInputsDir
	})
	mode := int32(0o444)
	if install {
		main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: smv1.RunnerVolume, MountPath: smv1.RunnerBinDir, ReadOnly: true})
		tpl.Spec.Volumes = append(tpl.Spec.Volumes, runnerBinVolume())
		tpl.Spec.InitContainers = append([]corev1.Container{runnerInstallInit(in.RunnerImage)}, tpl.Spec.InitContainers...)
	}
	main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: smv1.StepInputsVolume, MountPath: smv1.StepInputsDir, ReadOnly: true})
	tpl.Spec.Volumes = append(tpl.Spec.Volumes, corev1.Volume{Name: smv1.StepInputsVolume,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: in.StateSecret, DefaultMode: &mode}}})

	labels := mergeMaps(tpl.Labels, StepLabels(sb, in.Resource, rp.Name, in.Step.Name))
	annotations := mergeMaps(tpl.Annotations, map[string]string{smv1.AnnotationInject: "false"})
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        naming.StepPodName(sb.Namespace, sb.Name, string(sb.UID), in.Resource, in.Step.Name, in.Attempt),
			Namespace:   PluginNamespace(rp),
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: tpl.Spec,
	}, nil
}
