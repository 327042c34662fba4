package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Output formats.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

func checkOutput(o string) error {
	switch o {
	case "", outTable, outJSON, outYAML:
		return nil
	}
	return usageErrorf("-o %q: want json, yaml or table", o)
}

// structured writes v as JSON or YAML; it reports false for table output.
func (a *App) structured(w io.Writer, v any) (bool, error) {
	switch a.flags.output {
	case outJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return true, fmt.Errorf("encode JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return true, err
	case outYAML:
		b, err := json.Marshal(v)
		if err != nil {
			return true, fmt.Errorf("encode YAML: %w", err)
		}
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return true, fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(y)
		return true, err
	}
	return false, nil
}

func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

func row(tw *tabwriter.Writer, cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

// age formats the time since an RFC 3339 timestamp like kubectl does.
func (a *App) age(ts string) string {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return ""
	}
	return humanDuration(a.now().Sub(t))
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func forksReady(sb *client.Sandbox) string {
	total := len(sb.Spec.Forks)
	if len(sb.Status.Forks) > total {
		total = len(sb.Status.Forks)
	}
	ready := 0
	for _, f := range sb.Status.Forks {
		if f.Ready {
			ready++
		}
	}
	if sb.Status.Ready && len(sb.Status.Forks) == 0 {
		ready = total
	}
	return fmt.Sprintf("%d/%d", ready, total)
}

func (a *App) printSandboxes(w io.Writer, sbs []client.Sandbox) error {
	tw := newTable(w, "NAME", "CLUSTER", "TEAM", "ROUTING KEY", "READY", "FORKS", "STATUS", "AGE")
	for i := range sbs {
		sb := &sbs[i]
		row(tw, sb.Name, sb.Spec.Cluster, sb.Team, sb.RoutingKey, fmt.Sprint(sb.Status.Ready), forksReady(sb), sb.Status.Reason, a.age(sb.CreatedAt))
	}
	return tw.Flush()
}

func printEndpoints(w io.Writer, sb *client.Sandbox) error {
	if len(sb.Endpoints) == 0 {
		_, err := fmt.Fprintln(w, "No endpoints: add spec.defaultRouteGroup.endpoints to get preview URLs.")
		return err
	}
	tw := newTable(w, "ENDPOINT", "TARGET", "PREVIEW URL")
	for _, e := range sb.Endpoints {
		row(tw, e.Name, e.Target, e.URL)
	}
	return tw.Flush()
}

func (a *App) printSandbox(w io.Writer, sb *client.Sandbox) error {
	if err := a.printSandboxes(w, []client.Sandbox{*sb}); err != nil {
		return err
	}
	if sb.Status.Message != "" {
		fmt.Fprintf(w, "\nMessage: %s\n", sb.Status.Message)
	}
	if len(sb.Status.Forks) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "FORK", "BASELINE", "READY", "MESSAGE")
		for _, f := range sb.Status.Forks {
			row(tw, f.Name, f.Baseline, fmt.Sprint(f.Ready), f.Message)
		}
		tw.Flush()
	}
	if len(sb.Spec.Local) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "LOCAL", "BASELINE", "PORT", "TO LOCAL", "MACHINE")
		for _, l := range sb.Spec.Local {
			kind := string(l.From.Kind)
			if kind == "" {
				kind = "Deployment"
			}
			for _, m := range l.Mappings {
				row(tw, l.Name, kind+"/"+l.From.Namespace+"/"+l.From.Name, fmt.Sprint(m.Port), m.ToLocal, sb.Spec.LocalMachineID)
			}
		}
		tw.Flush()
	}
	if ovs, _ := sb.Spec.ResolveOverrides(); len(ovs) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "OVERRIDE", "WORKLOAD", "PORT", "TO LOCAL", "FALLS THROUGH", "MACHINE")
		for _, o := range ovs {
			row(tw, o.Forward.Name, o.Entry, fmt.Sprint(o.Forward.Port), o.Forward.ToLocal, fallsThrough(o.Policy), sb.Spec.LocalMachineID)
		}
		tw.Flush()
	}
	if len(sb.Spec.Resources) > 0 {
		fmt.Fprintln(w)
		printResources(w, sb)
	}
	fmt.Fprintln(w)
	return printEndpoints(w, sb)
}

func (a *App) printRouteGroups(w io.Writer, rgs []client.RouteGroup) error {
	tw := newTable(w, "NAME", "CLUSTER", "ROUTING KEY", "READY", "MATCHED", "STATUS", "AGE")
	for _, rg := range rgs {
		row(tw, rg.Name, rg.Spec.Cluster, rg.RoutingKey, fmt.Sprint(rg.Status.Ready), strings.Join(rg.Status.MatchedSandboxes, ","), rg.Status.Reason, a.age(rg.CreatedAt))
	}
	return tw.Flush()
}

func (a *App) printRouteGroup(w io.Writer, rg *client.RouteGroup) error {
	if err := a.printRouteGroups(w, []client.RouteGroup{*rg}); err != nil {
		return err
	}
	if rg.Status.Message != "" {
		fmt.Fprintf(w, "\nMessage: %s\n", rg.Status.Message)
	}
	if len(rg.Endpoints) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "ENDPOINT", "TARGET", "PREVIEW URL")
		for _, e := range rg.Endpoints {
			row(tw, e.Name, e.Target, e.URL)
		}
		return tw.Flush()
	}
	return nil
}

func (a *App) printWorkloads(w io.Writer, ws []client.Workload) error {
	tw := newTable(w, "NAMESPACE", "NAME", "READY", "DEVMESH", "IMAGES", "SERVICES")
	for _, wl := range ws {
		var imgs, svcs []string
		for _, c := range wl.Containers {
			imgs = append(imgs, c.Name+"="+c.Image)
		}
		for _, s := range wl.Services {
			ports := make([]string, 0, len(s.Ports))
			for _, p := range s.Ports {
				ports = append(ports, strconv.Itoa(int(p)))
			}
			svcs = append(svcs, s.Name+":"+strings.Join(ports, "/"))
		}
		devmesh := "no"
		if wl.DevmeshInjected {
			devmesh = "yes"
		}
		row(tw, wl.Namespace, wl.Name, fmt.Sprintf("%d/%d", wl.ReadyReplicas, wl.Replicas), devmesh, strings.Join(imgs, ","), orNone(strings.Join(svcs, ",")))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func (a *App) printClusters(w io.Writer, cls []client.Cluster) error {
	tw := newTable(w, "NAME", "OPERATOR", "LAST SEEN", "AGE")
	for _, c := range cls {
		op := ""
		if c.Operator != nil {
			op = c.Operator.Version
		}
		seen := "never"
		if c.LastSeenAt != "" {
			seen = a.age(c.LastSeenAt) + " ago"
		}
		row(tw, c.Name, op, seen, a.age(c.CreatedAt))
	}
	return tw.Flush()
}

// printResources prints a sandbox's resources: each of spec.resources with
// its status as the operator last reported it (Pending until then).
func printResources(w io.Writer, sb *client.Sandbox) {
	tw := newTable(w, "RESOURCE", "PLUGIN", "PHASE", "STEP", "MESSAGE", "OUTPUTS")
	for _, r := range sb.Spec.Resources {
		phase, step, msg, outs := string(v1alpha1.ResourcePending), "", "", ""
		for _, st := range sb.Status.Resources {
			if st.Name == r.Name {
				phase, step, msg, outs = string(st.Phase), st.Step, st.Message, strings.Join(st.OutputKeys, ",")
			}
		}
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i] + " …" // the log tail of a failure: sandboxmesh sandbox get -o yaml shows it all
		}
		row(tw, r.Name, r.Plugin, phase, step, msg, outs)
	}
	tw.Flush()
}
