package inject

import (
	"bytes"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// WebhookName is the name of the webhook inside the MutatingWebhookConfiguration.
const WebhookName = "devmesh.sidecar.sandboxmesh.dev"

// DefaultWebhookConfigurationName is the MutatingWebhookConfiguration's default object name.
const DefaultWebhookConfigurationName = "sandboxmesh-devmesh-injector"

// WebhookOptions describe where the API server reaches the operator's webhook server.
type WebhookOptions struct {
	// Name of the MutatingWebhookConfiguration (default DefaultWebhookConfigurationName).
	Name string
	// ServiceNamespace and ServiceName name the operator's webhook Service (unless URL is set).
	ServiceNamespace, ServiceName string
	// ServicePort is the Service port (default 443).
	ServicePort int32
	// URL reaches the webhook directly (https://host:port/mutate-v1-pod-devmesh) instead of a Service.
	URL string
	// CABundle verifies the webhook's serving certificate (often injected by cert-manager instead).
	CABundle []byte
	// FailClosed sets failurePolicy Fail; the default Ignore admits pods unchanged when the webhook is
	// unreachable.
	FailClosed bool
	// NamespaceOptOutLabel is the label whose value NamespaceOptOutValue excludes a namespace
	// (default DefaultNamespaceOptOutLabel).
	NamespaceOptOutLabel string
	// ExcludeNamespaces are never sent to the webhook (default kube-system, kube-public,
	// kube-node-lease; an empty non-nil slice excludes none).
	ExcludeNamespaces []string
	// TimeoutSeconds bounds a call (default 5).
	TimeoutSeconds int32
}

// MutatingWebhookConfiguration returns the webhook configuration that sends Pod CREATE requests to the
// injector at Path: failurePolicy Ignore (unless FailClosed), sideEffects None, reinvocationPolicy
// Never, and a namespaceSelector that leaves out opted-out and excluded namespaces.
func MutatingWebhookConfiguration(o WebhookOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	if o.Name == "" {
		o.Name = DefaultWebhookConfigurationName
	}
	if o.ServicePort == 0 {
		o.ServicePort = 443
	}
	if o.NamespaceOptOutLabel == "" {
		o.NamespaceOptOutLabel = DefaultNamespaceOptOutLabel
	}
	if o.ExcludeNamespaces == nil {
		o.ExcludeNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 5
	}
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: o.CABundle}
	switch {
	case o.URL != "":
		cc.URL = ptr(o.URL)
	case o.ServiceNamespace != "" && o.ServiceName != "":
		cc.Service = &admissionregistrationv1.ServiceReference{Namespace: o.ServiceNamespace, Name: o.ServiceName, Path: ptr(Path), Port: ptr(o.ServicePort)}
	default:
		return nil, fmt.Errorf("webhook configuration %s: URL or ServiceNamespace and ServiceName: %w", o.Name, ErrInvalidConfig)
	}
	failure := admissionregistrationv1.Ignore
	if o.FailClosed {
		failure = admissionregistrationv1.Fail
	}
	selector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: o.NamespaceOptOutLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{NamespaceOptOutValue}},
	}}
	if len(o.ExcludeNamespaces) > 0 {
		selector.MatchExpressions = append(selector.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: o.ExcludeNamespaces,
		})
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: map[string]string{"app.kubernetes.io/part-of": "sandboxmesh", "app.kubernetes.io/component": "devmesh-injector"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         WebhookName,
			ClientConfig: cc,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{""},
					APIVersions: []string{"v1"},
					Resources:   []string{"pods"},
					Scope:       ptr(admissionregistrationv1.NamespacedScope),
				},
			}},
			FailurePolicy:           ptr(failure),
			MatchPolicy:             ptr(admissionregistrationv1.Equivalent),
			NamespaceSelector:       selector,
			ObjectSelector:          &metav1.LabelSelector{},
			SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr(o.TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}, nil
}

// MutatingWebhookConfigurationYAML renders MutatingWebhookConfiguration as YAML (for `make manifests`
// and Helm-less installs).
func MutatingWebhookConfigurationYAML(o WebhookOptions) ([]byte, error) {
	c, err := MutatingWebhookConfiguration(o)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("webhook configuration %s: marshal: %w", c.Name, err)
	}
	// ObjectMeta's zero creationTimestamp marshals as null; it has no place in a manifest.
	return bytes.ReplaceAll(b, []byte("  creationTimestamp: null\n"), nil), nil
}
