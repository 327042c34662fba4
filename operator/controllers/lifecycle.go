package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// The steps every Sandbox and RouteGroup reconcile shares, written once (the
// shape of Cluster API's controllers: reconcileDelete for a deleting object,
// else finalizer and routing key, TTL, then reconcileNormal).

// ensureFinalizerAndKey adds the finalizer and the routing-key annotation in
// one metadata patch, once per object. The key comes from the annotation (the
// control plane's agent sets it), else from statusKey (an operator that crashed
// after writing the status), else routingkey.New. It returns the key and
// whether it patched the object. After a patch the caller ends the reconcile:
// the routing engine reads keys from the informer cache, so routes synced
// before the cache has seen the patch would leave the new key out while the
// status said Ready; the patch's own watch event reconciles again.
func ensureFinalizerAndKey(ctx context.Context, c client.Client, obj client.Object, statusKey string) (string, bool, error) {
	if k := obj.GetAnnotations()[smv1.AnnotationRoutingKey]; k != "" && controllerutil.ContainsFinalizer(obj, naming.Finalizer) {
		return k, false, nil
	}
	before := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, naming.Finalizer)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	if ann[smv1.AnnotationRoutingKey] == "" {
		key := statusKey
		if key == "" {
			key = routingkey.New()
		}
		ann[smv1.AnnotationRoutingKey] = key
	}
	obj.SetAnnotations(ann)
	if err := c.Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return "", false, fmt.Errorf("add finalizer and routing key to %s %s/%s: %w", kindName(obj), obj.GetNamespace(), obj.GetName(), err)
	}
	return ann[smv1.AnnotationRoutingKey], true, nil
}

// removeFinalizer is the last step of reconcileDelete.
func removeFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	before := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, naming.Finalizer)
	if err := c.Patch(ctx, obj, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer of %s %s/%s: %w", kindName(obj), obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// ttlDeadline is when ttl expires for an object: counted from its creation
// (createdAt), from the last write of its spec (updatedAt), else from dflt
// (Sandboxes: creation; RouteGroups: since they matched nothing, nil while
// they match). Nil without a TTL or deadline.
func ttlDeadline(ttl *smv1.TTL, m *metav1.ObjectMeta, dflt *time.Time) *time.Time {
	if ttl == nil {
		return nil
	}
	d, err := ParseTTL(ttl.Duration)
	if err != nil { // the CRD's pattern makes this unreachable
		return nil
	}
	var from time.Time
	switch ttl.OffsetFrom {
	case smv1.TTLFromCreatedAt:
		from = m.CreationTimestamp.Time
	case smv1.TTLFromUpdatedAt:
		from = lastSpecUpdate(m)
	default:
		if dflt == nil {
			return nil
		}
		from = *dflt
	}
	at := from.Add(d)
	return &at
}

// expire deletes obj when its TTL deadline has passed (with an Expired event)
// and reports whether it did.
func expire(ctx context.Context, c client.Client, rec recorder.EventRecorder, obj client.Object, ttl *smv1.TTL, at *time.Time, now time.Time) (bool, error) {
	if at == nil || now.Before(*at) {
		return false, nil
	}
	log.FromContext(ctx).Info("TTL expired, deleting", "kind", kindName(obj), "scheduledDeleteTime", *at)
	event(rec, obj, corev1.EventTypeNormal, "Expired", "Delete", "TTL %s expired at %s", ttl.Duration, at.Format(time.RFC3339))
	if err := c.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return true, fmt.Errorf("delete expired %s %s/%s: %w", kindName(obj), obj.GetNamespace(), obj.GetName(), err)
	}
	return true, nil
}

// requeueFor is how long to wait before reconciling again for a TTL deadline (0: none).
func requeueFor(at *time.Time, now time.Time) time.Duration {
	if at == nil {
		return 0
	}
	return at.Sub(now) + time.Second
}

func metaTime(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	return &metav1.Time{Time: *t}
}

// lastSpecUpdate approximates "updatedAt": the last time a manager wrote the spec.
func lastSpecUpdate(m *metav1.ObjectMeta) time.Time {
	t := m.CreationTimestamp.Time
	for _, f := range m.ManagedFields {
		if f.Subresource == "" && f.Time != nil && f.Time.After(t) && f.FieldsV1 != nil && strings.Contains(string(f.FieldsV1.Raw), `"f:spec"`) {
			t = f.Time.Time
		}
	}
	return t
}

// event records an event about obj, if there is a recorder.
func event(rec recorder.EventRecorder, obj runtime.Object, typ, reason, action, note string, args ...any) {
	if rec != nil {
		rec.Eventf(obj, nil, typ, reason, action, note, args...)
	}
}

func kindName(obj client.Object) string {
	switch obj.(type) {
	case *smv1.Sandbox:
		return "Sandbox"
	case *smv1.RouteGroup:
		return "RouteGroup"
	case *smv1.JobRunnerGroup:
		return "JobRunnerGroup"
	}
	return fmt.Sprintf("%T", obj)
}
