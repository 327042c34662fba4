package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// usageCommand is `sandboxmesh usage`: the org's sandbox-hours per team in a
// month (GET /api/v2/orgs/{org}/usage).
func (a *App) usageCommand() *cobra.Command {
	var month string
	cmd := &cobra.Command{
		Use:   "usage [--month YYYY-MM]",
		Short: "Show the org's sandbox-hours per team in a month, with each team's quota",
		Long: `usage shows, per team of the org (and the sandboxes in no team), the
sandbox-hours of a UTC calendar month (each sandbox counts the hours it was
live in the team; one still live counts up to now), how many sandboxes there
were and the most at once, and the sandboxes live now against the team's
quota. -o json or -o yaml prints the API's answer; the portal's usage page
downloads the same figures as CSV.`,
		Example: `  sandboxmesh usage
  sandboxmesh usage --month 2026-11 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			u, err := c.GetUsage(cmd.Context(), a.cfg.Org, month)
			if err != nil {
				return a.explain(err, "usage of org "+a.cfg.Org)
			}
			if ok, err := a.structured(a.Stdout, u); ok {
				return err
			}
			fmt.Fprintf(a.Stdout, "Usage of org %s in %s (UTC, as of %s)\n\n", a.cfg.Org, u.Month, u.AsOf)
			tw := newTable(a.Stdout, "TEAM", "SANDBOX-HOURS", "SANDBOXES", "MOST AT ONCE", "LIVE", "QUOTA")
			quota := func(n int64) string {
				if n == 0 {
					return "none"
				}
				return strconv.FormatInt(n, 10)
			}
			line := func(name string, t client.TeamUsage) {
				row(tw, name, strconv.FormatFloat(t.SandboxHours, 'f', 2, 64), strconv.Itoa(t.Sandboxes), strconv.Itoa(t.PeakSandboxes),
					strconv.FormatInt(t.LiveSandboxes, 10), quota(t.MaxSandboxes))
			}
			for _, t := range u.Teams {
				name := t.Team
				switch {
				case name == "":
					name = "(no team)"
				case t.Deleted:
					name += " (deleted)"
				}
				line(name, t)
			}
			line("TOTAL", u.Total)
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM (UTC; default: this month)")
	return cmd
}
