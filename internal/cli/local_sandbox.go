package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// localMachineForApply fills in spec.localMachineID of a sandbox with local
// workloads from this machine's identity (when the spec leaves it empty) and
// returns this machine's ID ("" when it has none and the spec names another
// machine, or the sandbox has no local workloads).
func (a *App) localMachineForApply(sb *client.Sandbox) (string, error) {
	if !servedByAMachine(sb) {
		return "", nil
	}
	dir, err := a.localDir()
	if err != nil {
		return "", err
	}
	key := filepath.Join(dir, localKeyFile)
	id, err := localtunnel.LoadIdentity(key)
	if errors.Is(err, fs.ErrNotExist) {
		if sb.Spec.LocalMachineID != "" {
			return "", nil // another machine serves it
		}
		return "", usageErrorf("sandbox %s: spec.local and spec.routing.forwards need a machine to serve them, and this machine has not joined a cluster (no %s): run `sandboxmesh local connect` first, or set spec.localMachineID to the machine that serves it", sb.Name, key)
	}
	if err != nil {
		return "", err
	}
	if sb.Spec.LocalMachineID == "" {
		sb.Spec.LocalMachineID = id.MachineID()
	}
	return id.MachineID(), nil
}

// servedByAMachine reports whether a machine's tunnel serves part of sb: spec.local or the forwards of
// local overrides (spec.routing.forwards).
func servedByAMachine(sb *client.Sandbox) bool {
	return len(sb.Spec.Local) > 0 || (sb.Spec.Routing != nil && len(sb.Spec.Routing.Forwards) > 0)
}

// localServed lists the local mappings and forwards of a sandbox for the daemon's allow-list (the
// operator names a forward's tunnel connections after the forward, as a local workload's after it).
func localServed(sb *client.Sandbox) []LocalServed {
	var out []LocalServed
	for _, l := range sb.Spec.Local {
		for _, m := range l.Mappings {
			out = append(out, LocalServed{Local: l.Name, ToLocal: m.ToLocal})
		}
	}
	if sb.Spec.Routing != nil {
		for _, f := range sb.Spec.Routing.Forwards {
			out = append(out, LocalServed{Local: f.Name, ToLocal: f.ToLocal})
		}
	}
	return out
}

// servesLocal reports whether this machine serves sb's local workloads and forwards.
func servesLocal(sb *client.Sandbox, machine string) bool {
	return machine != "" && servedByAMachine(sb) && sb.Spec.LocalMachineID == machine
}

// syncLocal tells the local daemon whether this machine serves the
// sandbox's local workloads: allow before the apply (so the first routed
// request is not refused), revoke after it (before is true for the first
// call, false for the second). Without a running daemon it updates the
// allow-list file the daemon reads when it starts, and says so.
func (a *App) syncLocal(ctx context.Context, sb *client.Sandbox, machine string, before bool) error {
	if !servesLocal(sb, machine) {
		if before {
			return nil
		}
		if machine != "" && servedByAMachine(sb) {
			fmt.Fprintf(a.Stderr, "note: spec.localMachineID is %s, not this machine (%s): that machine serves the local workloads\n", sb.Spec.LocalMachineID, machine)
		}
		return a.localRevoke(ctx, sb.Name)
	}
	if !before {
		return nil
	}
	dir, err := a.localDir()
	if err != nil {
		return err
	}
	req := allowRequest{Sandbox: sb.Name, Locals: localServed(sb)}
	var st LocalDaemonStatus
	err = controlCall(ctx, filepath.Join(dir, localSocketFile), http.MethodPost, "/allow", req, &st)
	if errors.Is(err, errDaemonNotRunning) {
		l, rerr := readAllowList(dir)
		if rerr != nil {
			return rerr
		}
		l.Sandboxes[sb.Name] = req.Locals
		if err := writeAllowList(dir, l); err != nil {
			return err
		}
		fmt.Fprintf(a.Stderr, "warning: the local daemon is not running: sandbox %s's keyed requests go to the baseline until you run `sandboxmesh local connect`\n", sb.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox %s not applied: the local daemon did not take its local workloads: %w", sb.Name, err)
	}
	if st.Phase != string(localtunnel.PhaseConnected) {
		fmt.Fprintf(a.Stderr, "warning: the local tunnel is %s: sandbox %s's keyed requests go to the baseline until it reconnects (`sandboxmesh local status`)\n", st.Phase, sb.Name)
	}
	return nil
}

// localRevoke stops serving a sandbox on this machine (after delete, or an
// apply that no longer makes this machine serve it). It does nothing when
// this machine never joined a cluster.
func (a *App) localRevoke(ctx context.Context, name string) error {
	dir, err := a.localDir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err = controlCall(ctx, filepath.Join(dir, localSocketFile), http.MethodPost, "/revoke", allowRequest{Sandbox: name}, nil)
	if errors.Is(err, errDaemonNotRunning) {
		l, err := readAllowList(dir)
		if err != nil {
			return err
		}
		if _, ok := l.Sandboxes[name]; !ok {
			return nil
		}
		delete(l.Sandboxes, name)
		return writeAllowList(dir, l)
	}
	if err != nil {
		return fmt.Errorf("tell the local daemon to stop serving sandbox %s: %w", name, err)
	}
	return nil
}
