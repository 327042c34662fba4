package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// BenchmarkEventLists compares the agent's one list of the namespace's
// Events about the CRs (namespace) with a list per sandbox (perSandbox, a
// field selector on regarding.name), against envtest's API server with
// SANDBOXMESH_BENCH_SANDBOXES sandboxes (default 1,000) of 5 events each.
// An op of perSandbox is one sandbox's list: a status round costs N of them.
//
//	go test -run '^$' -bench EventLists -benchtime 20x ./controlplane/agent/
func BenchmarkEventLists(b *testing.B) {
	ctx := context.Background()
	const evNS = "bench-events"
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: evNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SANDBOXMESH_BENCH_SANDBOXES")); err == nil && v > 0 {
		n = v
	}
	var list eventsv1.EventList
	if err := kube.List(ctx, &list, client.InNamespace(evNS)); err != nil {
		b.Fatal(err)
	}
	if len(list.Items) < n*5 {
		start := time.Now()
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					for j := range 5 {
						ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: evNS, Name: fmt.Sprintf("sb-%04d.%d", i, j)},
							EventTime: metav1.NewMicroTime(time.Now()), ReportingController: "sandboxmesh-operator", ReportingInstance: "sandboxmesh-operator-0",
							Action: "Reconcile", Type: corev1.EventTypeNormal, Reason: "ForkCreated", Note: "created fork Deployment shop/cart-" + strconv.Itoa(i),
							Regarding: corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Sandbox", Namespace: evNS, Name: fmt.Sprintf("sb-%04d", i)}}
						if err := kube.Create(ctx, ev); err != nil && !apierrors.IsAlreadyExists(err) {
							b.Error(err)
							return
						}
					}
				}
			}()
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		b.Logf("created %d events in %v", n*5, time.Since(start))
	}
	sel := fields.OneTermEqualSelector("regarding.apiVersion", v1alpha1.GroupVersion.String())
	b.Run("namespace", func(b *testing.B) {
		var size int
		for b.Loop() {
			var l eventsv1.EventList
			if err := kube.List(ctx, &l, client.InNamespace(evNS), client.MatchingFieldsSelector{Selector: sel}); err != nil {
				b.Fatal(err)
			}
			raw, _ := json.Marshal(l)
			size = len(raw)
			if len(l.Items) < n*5 {
				b.Fatalf("%d events", len(l.Items))
			}
		}
		b.ReportMetric(float64(size), "bytes/list")
	})
	b.Run("perSandbox", func(b *testing.B) {
		i := 0
		for b.Loop() {
			var l eventsv1.EventList
			s := fields.AndSelectors(sel, fields.OneTermEqualSelector("regarding.name", fmt.Sprintf("sb-%04d", i%n)))
			if err := kube.List(ctx, &l, client.InNamespace(evNS), client.MatchingFieldsSelector{Selector: s}); err != nil {
				b.Fatal(err)
			}
			if len(l.Items) != 5 {
				b.Fatalf("%d events", len(l.Items))
			}
			i++
		}
	})
}
